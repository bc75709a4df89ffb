"""The demo's stand-in for an app: `examples/webhook_receiver.py` on a local port, added
as a webhook endpoint, so the demo shows the campaign's events arriving signed and verified.

A receiver from an earlier demo run is gone with its process; its endpoint is disabled
first, so nothing keeps retrying deliveries to a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from temporalio.client import Client

from db.engine import SessionFactory, unit_of_work
from db.webhooks import ENABLED, disable
from runtime.settings import Settings
from starter.devserver import free_port
from starter.webhook_admin import WebhookAdmin

DESCRIPTION = "outbound demo receiver"
EVENTS = ["campaign.launched", "step.finished", "campaign.completed"]


@dataclass
class DemoReceiver:
    app: Any
    endpoint_id: int

    @property
    def received(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.app.state.received)

    async def until_completed(self, timeout: float = 15.0) -> None:
        """Deliveries follow their commits by a fraction of a second; wait for the last."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not any(event["type"] == "campaign.completed" for _, event in self.received):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.2)


@asynccontextmanager
async def demo_receiver(client: Client, sessions: SessionFactory, settings: Settings) -> AsyncIterator[DemoReceiver]:
    """`settings` must allow private addresses (the receiver is on 127.0.0.1)."""
    from examples.webhook_receiver import create_app

    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="demo-receiver", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        await asyncio.sleep(0.05)
    admin = WebhookAdmin(client, sessions, settings)
    _disable_earlier(admin, sessions)
    endpoint, secret = await admin.add(f"http://127.0.0.1:{port}/webhooks", EVENTS, DESCRIPTION)
    app.state.verifiers = [Webhook(secret)]
    try:
        yield DemoReceiver(app, endpoint.id)
    finally:
        with unit_of_work(sessions) as session:
            disable(session, endpoint.id, "the demo ended", datetime.now(UTC))
        with suppress(Exception):
            await admin.wake(endpoint.id)
        server.should_exit = True
        await asyncio.to_thread(thread.join, 5)


def _disable_earlier(admin: WebhookAdmin, sessions: SessionFactory) -> None:
    earlier = [row.id for row in admin.all() if row.description == DESCRIPTION and row.status == ENABLED]
    with unit_of_work(sessions) as session:
        for endpoint_id in earlier:
            disable(session, endpoint_id, "a later demo run replaced it", datetime.now(UTC))
