"""`outbound contacts import --verify` and `outbound contacts verify` as a user runs them:
a bulk job on the built-in `verify-email` queue (no jobs file needed) checks each address
against a real DNS server, and `contacts list` shows the verdicts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from db.models import Contact
from runtime.settings import VerificationSettings
from starter.cli_contacts import contacts_app
from starter.cli_jobs import jobs_app
from starter.context import UserError
from tests.dns_support import DnsServer, Zone, dns_server
from tests.jobs_support import jobs_closed
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)

CSV = """email,first_name
jane@acme.example,Jane
sales@acme.example,Sales
joe@nomail.example,Joe
ann@nowhere.example,Ann
"""


@dataclass
class Cli:
    outbound: Outbound
    dns: DnsServer

    async def run(self, app: object, *args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args))  # type: ignore[arg-type]

    async def ok(self, app: object, *args: str) -> str:
        result = await self.run(app, *args)
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"
        return result.output

    def statuses(self) -> dict[str, str | None]:
        with self.outbound.sessions() as session:
            rows = session.execute(select(Contact.email, Contact.email_status))
            return {email: status for email, status in rows if email is not None}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server({"acme.example": Zone("mx"), "nomail.example": Zone("null_mx")}) as server:
        yield server


@pytest.fixture
async def cli(outbound: Outbound, dns: DnsServer, monkeypatch: pytest.MonkeyPatch) -> Cli:
    outbound.overrides = {**outbound.overrides, "verification": VerificationSettings(nameservers=[dns.nameserver])}
    for name, value in {
        "OUTBOUND_DATABASE_URL": str(outbound.database_url),
        "OUTBOUND_TEMPORAL_ADDRESS": outbound.client.service_client.config.target_host,
        "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
        "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
        "OUTBOUND_VERIFICATION__NAMESERVERS": json.dumps([dns.nameserver]),
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    return Cli(outbound, dns)


async def until_verified(cli: Cli, count: int) -> None:
    for _ in range(300):
        if sum(status is not None for status in cli.statuses().values()) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not every address was verified: {cli.statuses()}")


async def test_import_with_verify_checks_each_address_and_the_list_shows_the_verdicts(cli: Cli, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(CSV)
    async with cli.outbound.worker():
        imported = await cli.ok(contacts_app, "import", str(leads), "--group", "leads", "--verify")
        assert "Verifying 4 address(es) of 'leads': bulk job" in imported
        await until_verified(cli, 4)
        assert cli.statuses() == {
            "jane@acme.example": "deliverable",
            "sales@acme.example": "risky",
            "joe@nomail.example": "undeliverable",
            "ann@nowhere.example": "undeliverable",
        }
        listed = await cli.ok(contacts_app, "list", "--group", "leads")
        assert "risky (role_address)" in listed
        assert "undeliverable (null_mx)" in listed
        assert "undeliverable (no_domain)" in listed

        again = await cli.ok(contacts_app, "verify", "--group", "leads")
        assert "nothing to verify" in again, "verified within 30 days: not asked again"
        everything = await cli.ok(contacts_app, "verify", "--group", "leads", "--all")
        job_id = everything.split("bulk job ")[1].split()[0]
        for _ in range(300):
            if '"status": "completed"' in await cli.ok(jobs_app, "show", job_id, "--json"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the second verification job did not complete")
        await jobs_closed(cli.outbound)
    assert cli.dns.queries[("acme.example", "MX")] == 1, "the worker's cache answered the second time"


async def test_verifying_a_group_that_does_not_exist_or_with_a_bad_age_is_refused(cli: Cli) -> None:
    missing = await cli.run(contacts_app, "verify", "--group", "nobody")
    assert isinstance(missing.exception, UserError)
    assert "no lead group named 'nobody'" in str(missing.exception)
    bad_age = await cli.run(contacts_app, "verify", "--group", "nobody", "--older-than", "a while")
    assert isinstance(bad_age.exception, UserError)
    assert "--older-than" in str(bad_age.exception)
