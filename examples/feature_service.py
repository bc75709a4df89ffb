"""A feature service that owns a job type: Outbound's `http` handler delegates each job of
a queue to it (`POST /internal/process-job`), as the centralised worker of seed 002 does.

Run it beside a worker, with the queue's secret (`outbound queues secret QUEUE`):

    FEATURE_SERVICE_SECRET=$(uv run outbound queues secret enrich) \\
        uv run uvicorn examples.feature_service:from_environment --factory --port 3001

It checks the Standard Webhooks signature, drops a job it has already done (the
`Idempotency-Key` is the job id), does the work, and answers `{"success": true, "result":
...}`. For trying retries, a job's data may ask it to misbehave: `{"fail_times": 2}` answers
503 to the first two attempts, `{"retry_after": 5}` adds a `Retry-After`, `{"refuse": true}`
answers 422 (the job fails at once), `{"sleep": 3}` takes that many seconds.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook, WebhookVerificationError


def create_app(secret: str) -> FastAPI:
    verifier = Webhook(secret)
    done: dict[str, Any] = {}  # job id -> result: a repeated request gets the same answer
    attempts: dict[str, int] = {}  # job id -> attempts at the work (a repeat of done work is not one)
    requests: dict[str, int] = {}  # job id -> requests received
    lock = threading.Lock()
    app = FastAPI(title="Example feature service", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.done = done
    app.state.attempts = attempts
    app.state.requests = requests

    @app.post("/internal/process-job")
    async def process_job(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            job = verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return JSONResponse({"success": False, "error": "bad signature"}, status_code=401)
        key = request.headers.get("idempotency-key") or str(job["jobId"])
        data = job.get("data") or {}
        with lock:
            requests[key] = requests.get(key, 0) + 1
            if key in done:
                return JSONResponse({"success": True, "result": done[key]})
            attempts[key] = attempts.get(key, 0) + 1
            attempt = attempts[key]
        if data.get("sleep"):
            time.sleep(float(data["sleep"]))
        if data.get("refuse"):
            return JSONResponse({"success": False, "error": "refused: not a job this service can do"}, 422)
        if attempt <= int(data.get("fail_times", 0)):
            headers = {"Retry-After": str(data["retry_after"])} if data.get("retry_after") else None
            return JSONResponse({"success": False, "error": "busy, try later", "progress": 10}, 503, headers)
        result = {"job": job["jobId"], "name": job.get("name"), "items": len(data), "attempt": attempt}
        with lock:
            done.setdefault(key, result)
        return JSONResponse({"success": True, "result": done[key], "progress": 100})

    return app


def from_environment() -> FastAPI:
    """For `uvicorn --factory`: the secret comes from FEATURE_SERVICE_SECRET."""
    secret = os.environ.get("FEATURE_SERVICE_SECRET", "")
    if not secret.startswith("whsec_"):
        raise SystemExit("set FEATURE_SERVICE_SECRET to the queue's secret: `outbound queues secret QUEUE`")
    return create_app(secret)
