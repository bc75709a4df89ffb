"""Where webhooks may go: the connection itself is made only to an address found public at
that moment, so a name re-pointed after the endpoint's check (DNS rebinding) reaches
nothing internal; a public name is reached by its name (Host and TLS stay the name's)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import runtime.webhook_targets as targets
from runtime.webhook_targets import TargetRefused, check_target, public_only_client

LIMITS = httpx.Limits(max_connections=1)


class _Recorder(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_POST(self) -> None:
        self.hosts.append(self.headers["Host"])
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[int]:
    _Recorder.hosts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def resolving_to(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Every name resolves to `address`, as a re-pointed DNS record would make it."""

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_re_pointed_at_a_private_address_after_its_check_is_not_connected_to(
    monkeypatch: pytest.MonkeyPatch, local_server: int
) -> None:
    resolving_to(monkeypatch, "93.184.215.14")
    check_target(f"http://hooks.example.com:{local_server}/in", allow_private=False)  # public when checked
    resolving_to(monkeypatch, "127.0.0.1")  # then re-pointed inward
    with public_only_client(LIMITS) as client, pytest.raises(httpx.ConnectError, match="public addresses only"):
        client.post(f"http://hooks.example.com:{local_server}/in", content=b"{}")
    assert _Recorder.hosts == [], "the internal service heard nothing"


def test_a_public_name_is_reached_at_the_address_just_checked_and_keeps_its_host(
    monkeypatch: pytest.MonkeyPatch, local_server: int
) -> None:
    resolving_to(monkeypatch, "127.0.0.1")
    monkeypatch.setattr(targets, "_public", lambda address: address == "127.0.0.1")  # this test's "internet"
    with public_only_client(LIMITS) as client:
        answer = client.post(f"http://hooks.example.com:{local_server}/in", content=b"{}")
    assert answer.status_code == 204
    assert _Recorder.hosts == [f"hooks.example.com:{local_server}"]


def test_every_address_of_a_name_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_answers(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("93.184.215.14", "10.0.0.5")]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(TargetRefused, match=r"resolves to 10\.0\.0\.5"):
        check_target("https://hooks.example.com/in", allow_private=False)
