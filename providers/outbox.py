"""The embedded default provider: real RFC 5322 `.eml` files and JSON records in a folder.

Files are written atomically and named by execution id, so "was it sent?" is a file
lookup, which makes the exactly-once protocol testable offline. Fault settings let tests
crash between the provider call and the database write.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from providers.base import FailureKind, OutgoingMessage, ProviderError, SentReceipt
from providers.mime import build_email, serialise
from runtime.settings import OutboxFaults
from schemas.enums import Channel


class OutboxProvider:
    name = "outbox"

    def __init__(self, directory: Path, faults: OutboxFaults | None = None) -> None:
        self.directory = directory
        self.faults = faults or OutboxFaults()

    def path_for(self, message: OutgoingMessage) -> Path:
        suffix = "eml" if message.channel is Channel.EMAIL else "json"
        return self.directory / message.channel.value / f"{message.execution_id}.{suffix}"

    def find_sent(self, message: OutgoingMessage) -> SentReceipt | None:
        return self._receipt(message) if self.path_for(message).exists() else None

    def send(self, message: OutgoingMessage) -> SentReceipt:
        attempt = self._count_attempt(message)
        self._inject_failures_before_write(message, attempt)
        if self.faults.send_delay_seconds:
            time.sleep(self.faults.send_delay_seconds)  # a slow provider call, for shutdown tests
        content = _render_email(message) if message.channel is Channel.EMAIL else _render_record(message)
        _write_atomically(self.path_for(message), content)
        if self.faults.crash_after_write and attempt == 1:
            raise ProviderError(FailureKind.RETRYABLE, "outbox fault: connection lost after the write", "crash")
        return self._receipt(message)

    def _receipt(self, message: OutgoingMessage) -> SentReceipt:
        thread = message.thread_id or (message.references[0] if message.references else message.key)
        return SentReceipt(provider_message_id=message.key, provider_thread_id=thread)

    def _inject_failures_before_write(self, message: OutgoingMessage, attempt: int) -> None:
        marker = self.faults.permanent_failure_marker
        if marker and marker in message.to:
            raise ProviderError(FailureKind.PERMANENT, "outbox fault: recipient rejected", "invalid_recipient")
        if self.faults.quota_exhausted:
            raise ProviderError(FailureKind.QUOTA_EXHAUSTED, "outbox fault: daily sending limit reached", "quota")
        flaky = self.faults.transient_failure_marker
        if attempt <= self.faults.transient_failures and (not flaky or flaky in message.to):
            raise ProviderError(FailureKind.THROTTLED, f"outbox fault: 503 on attempt {attempt}", "503")

    def _count_attempt(self, message: OutgoingMessage) -> int:
        """Attempts per message, kept on disk so they survive worker restarts."""
        if not (self.faults.transient_failures or self.faults.crash_after_write):
            return 1
        counter = self.directory / ".attempts" / str(message.execution_id)
        counter.parent.mkdir(parents=True, exist_ok=True)
        attempt = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(attempt))
        return attempt


def _render_email(message: OutgoingMessage) -> bytes:
    return serialise(build_email(message))


def _render_record(message: OutgoingMessage) -> bytes:
    record = {
        "execution_id": message.execution_id,
        "key": message.key,
        "channel": message.channel.value,
        "from": message.sender_address,
        "to": message.to,
        "body": message.body,
        "say": message.say,
        "audio_url": message.audio_url,
        "written_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(record, indent=2).encode()


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
