"""The `http` handler: delegate a job to the feature service that owns it (seed 002).

`POST <endpoint>/internal/process-job` with `{"jobId", "queueName", "name", "data",
"attemptsMade"}`, `Idempotency-Key: <job id>` and Standard Webhooks signature headers
(HMAC-SHA256 with the queue's own secret, `outbound queues secret QUEUE`), so the service
can check the request came from this deployment and drop a job it already did.

How the answer is read: `{"success": true, "result": ...}` completes the job; `success:
false`, 5xx, a timeout or a broken connection is retried with backoff; any other 4xx
(except 408, 409, 425 and 429) fails the job at once; `Retry-After` sets when the next
attempt may run; `progress` in any answer is kept on the job.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from handlers.base import JobDone, JobFailed, JobRequest, ProgressReport

PROCESS_PATH = "/internal/process-job"
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
_ERROR_TEXT = 300  # of a service's error message kept on the job


class HttpDelegation:
    def __init__(self, endpoint: str, secret: str, timeout_seconds: float, client: httpx.Client | None = None) -> None:
        self.url = endpoint.rstrip("/") + PROCESS_PATH
        self.webhook = Webhook(secret)
        self.timeout = timeout_seconds
        self.client = client or httpx.Client()

    def run(self, request: JobRequest, report_progress: ProgressReport) -> JobDone:
        body = json.dumps(
            {
                "jobId": request.job_key,
                "queueName": request.queue,
                "name": request.name,
                "data": request.data,
                "attemptsMade": request.attempts_made,
            },
            separators=(",", ":"),
        )
        message_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "idempotency-key": request.job_key,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(message_id, now, body),
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise JobFailed(f"the feature service did not answer within {self.timeout:g} s", retryable=True) from None
        except httpx.HTTPError as error:
            raise JobFailed(f"cannot reach the feature service: {type(error).__name__}", retryable=True) from None
        return _read(response, report_progress)


def _read(response: httpx.Response, report_progress: ProgressReport) -> JobDone:
    answer = _json_object(response)
    progress = answer.get("progress")
    if progress is not None:
        report_progress(progress)
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    status = response.status_code
    if 200 <= status < 300:
        if answer.get("success") is True:
            return JobDone(result=answer.get("result"), progress=progress)
        reason = _reason(answer) or "the service answered success: false"
        raise JobFailed(reason, retryable=True, retry_after=retry_after, progress=progress)
    reason = f"HTTP {status}" + (f": {_reason(answer)}" if _reason(answer) else "")
    retryable = status >= 500 or status in RETRYABLE_4XX  # a redirect or other 4xx is a configuration error
    raise JobFailed(reason, retryable=retryable, retry_after=retry_after, progress=progress)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        parsed = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _reason(answer: dict[str, Any]) -> str:
    error = answer.get("error") or answer.get("message")
    return str(error)[:_ERROR_TEXT] if error else ""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
