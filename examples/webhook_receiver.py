"""An app's webhook receiver: where Outbound's events arrive (`outbound webhooks add URL`).

    WEBHOOK_SECRET=whsec_... uv run uvicorn examples.webhook_receiver:from_environment --factory --port 3002

It verifies each request with the `standardwebhooks` package (the signature over the
`webhook-id`, the timestamp and the raw body, with the endpoint's secret; during a secret
rotation any of its secrets may be given, comma-separated), drops an event it has already
handled (the `webhook-id` is the same on every retry and replay), logs the event and
answers 204. `app.state.received` keeps what came, for tests and the demo.

For trying retries, `app.state.answers` may hold status codes to answer first (429 with a
`Retry-After` of `app.state.retry_after` seconds, 500, 410 ...), one per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any

from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

log = logging.getLogger("uvicorn.error")  # uvicorn prints it


def create_app(*secrets: str) -> FastAPI:
    lock = threading.Lock()
    app = FastAPI(title="Example webhook receiver", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.verifiers = [Webhook(secret) for secret in secrets]
    app.state.received = []  # (webhook-id, event) in the order they came, repeats included
    app.state.handled = {}  # webhook-id -> event: each handled once
    app.state.answers = []  # status codes to answer before accepting
    app.state.retry_after = None
    app.state.rejected = 0  # requests whose signature did not verify
    app.state.delay = 0.0  # seconds to take over each request (a slow app)

    @app.post("/webhooks")
    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        if app.state.delay:
            await asyncio.sleep(app.state.delay)
        if not any(_verifies(verifier, body, headers) for verifier in app.state.verifiers):
            with lock:
                app.state.rejected += 1
            return Response(status_code=401)
        event = json.loads(body)
        message_id = headers["webhook-id"]
        with lock:
            app.state.received.append((message_id, event))
            if app.state.answers:
                status = app.state.answers.pop(0)
                retry_after = app.state.retry_after
                extra = {"Retry-After": str(retry_after)} if status == 429 and retry_after is not None else None
                return Response(status_code=status, headers=extra)
            first = message_id not in app.state.handled
            app.state.handled.setdefault(message_id, event)
        if first:
            log.info("%s %s: %s", message_id, event["type"], json.dumps(event["data"]))
        return Response(status_code=204)

    return app


def _verifies(verifier: Webhook, body: bytes, headers: dict[str, Any]) -> bool:
    try:
        verifier.verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def from_environment() -> FastAPI:
    """For `uvicorn --factory`: the secret(s) from WEBHOOK_SECRET (comma-separated)."""
    secrets = [part.strip() for part in os.environ.get("WEBHOOK_SECRET", "").split(",") if part.strip()]
    if not secrets or not all(secret.startswith("whsec_") for secret in secrets):
        raise SystemExit("set WEBHOOK_SECRET to the endpoint's secret (printed by `outbound webhooks add`)")
    return create_app(*secrets)
