"""The life of the examples' local servers (DNS, a stand-in model): a `socketserver` server
on 127.0.0.1 served by a daemon thread while the `with` block runs, shut down after it."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self


class ServedInAThread:
    _server: socketserver.BaseServer
    _thread_name = "local-server"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, name=self._thread_name, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
