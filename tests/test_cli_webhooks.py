"""`outbound webhooks add | list | test | deliveries | rotate-secret | replay | disable |
enable` as an operator runs them, against a running worker and the example receiver (the
time-skipping test server): what each prints, and a clear refusal for bad input with
nothing written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner, Result

from runtime.settings import WebhookSettings
from starter.cli_webhooks import webhooks_app
from starter.context import UserError
from tests.jobs_support import Receiver, delivering, until, webhook_receiver
from tests.support import EMAIL_STEP, Outbound, campaign_spec, people, seed

pytestmark = pytest.mark.timeout(120)


@dataclass
class Cli:
    outbound: Outbound
    receiver: Receiver

    async def run(self, *args: str) -> Result:
        """One `outbound webhooks …` command in a thread, as a separate process would run it
        beside the worker that runs in this event loop."""
        return await asyncio.to_thread(CliRunner().invoke, webhooks_app, list(args))

    async def ok(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.exit_code == 0, result.output
        return result.output

    async def refused(self, *args: str) -> str:
        """The message `outbound` prints after `error:` (a UserError), or click's usage error."""
        result = await self.run(*args)
        assert result.exit_code != 0, result.output
        if isinstance(result.exception, UserError):
            return str(result.exception)
        return result.output


@pytest.fixture
async def cli(outbound: Outbound, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cli]:
    outbound.overrides = {**outbound.overrides, "webhooks": WebhookSettings(allow_private=True, poll=0)}
    for name, value in {
        "OUTBOUND_DATABASE_URL": str(outbound.database_url),
        "OUTBOUND_TEMPORAL_ADDRESS": outbound.client.service_client.config.target_host,
        "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
        "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
        "OUTBOUND_SECRET_KEY": outbound.settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "OUTBOUND_WEBHOOKS__ALLOW_PRIVATE": "true",
        "OUTBOUND_WEBHOOKS__POLL": "0",
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    with webhook_receiver() as receiver:
        yield Cli(outbound, receiver)


def secret_in(output: str) -> str:
    [secret] = [line.strip() for line in output.splitlines() if line.strip().startswith("whsec_")]
    return secret


async def test_an_operator_adds_an_endpoint_sees_its_deliveries_rotates_its_secret_and_replays(cli: Cli) -> None:
    outbound, receiver = cli.outbound, cli.receiver
    async with delivering(outbound):
        added = await cli.ok("add", receiver.url, "--events", "message.sent", "--description", "CRM sync")
        assert "Endpoint 1 added" in added
        assert "message.sent" in added
        secret = secret_in(added)
        receiver.trust(secret)
        [listed] = json.loads(await cli.ok("list", "--json"))
        assert (listed["url"], listed["events"], listed["status"]) == (receiver.url, ["message.sent"], "enabled")
        assert listed["description"] == "CRM sync"
        assert secret not in await cli.ok("list"), "the secret is shown once, at `add`"

        assert "answered 204" in await cli.ok("test", "1")
        assert receiver.received[-1][1]["type"] == "webhook.ping"

        campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
        await (await outbound.launch(campaign)).result()
        await until(lambda: len(receiver.received) >= 3, "the ping and two message.sent")
        shown = json.loads(await cli.ok("deliveries", "--endpoint", "1", "--event", "message.sent", "--json"))
        assert [(row["status"], row["last_status_code"]) for row in shown] == [("delivered", 204)] * 2
        assert json.loads(await cli.ok("deliveries", "--failed", "--json")) == []
        table = await cli.ok("deliveries")
        assert "message.sent" in table
        assert "delivered" in table

        rotated = await cli.ok("rotate-secret", "1")
        new_secret = secret_in(rotated)
        assert new_secret != secret
        assert "the old one also signs until" in rotated
        receiver.trust(new_secret)
        first_id = receiver.received[1][0]
        assert "1 delivery queued again" in await cli.ok("replay", first_id)
        await until(lambda: len(receiver.received) >= 4, "the replay")
        assert receiver.received[3][0] == first_id, "a replay keeps its webhook-id"
        assert "2 deliveries queued again" in await cli.ok("replay", "--endpoint", "1", "--since", "2h")
        await until(lambda: len(receiver.received) >= 6, "the endpoint's replays")
        assert receiver.app.state.rejected == 0, "the new secret verifies what is sent after the rotation"

        assert "Endpoint 1 disabled" in await cli.ok("disable", "1")
        assert "disabled" in json.loads(await cli.ok("list", "--json"))[0]["status"]
        assert "Endpoint 1 enabled" in await cli.ok("enable", "1")
        assert json.loads(await cli.ok("list", "--json"))[0]["status"] == "enabled"


async def test_bad_input_is_refused_with_the_reason_and_nothing_is_written(cli: Cli) -> None:
    assert "http:// or https://" in await cli.refused("add", "ftp://example.com/hook")
    assert "unknown event type" in await cli.refused("add", cli.receiver.url, "--events", "contact.exploded")
    assert json.loads(await cli.ok("list", "--json")) == [], "nothing half-written"
    assert "endpoint 7" in (await cli.refused("disable", "7")).lower()
    assert "endpoint 7" in (await cli.refused("rotate-secret", "7")).lower()
    assert "--since" in await cli.refused("replay", "--endpoint", "1", "--since", "soon")
    assert "EVENT_ID" in await cli.refused("replay")
