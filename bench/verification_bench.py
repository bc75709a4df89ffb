"""Email verification of `--addresses` contacts over `--domains` domains, against a local
DNS server (the tests' `tests.dns_support`, counting every query), in one run:

- the handler alone: addresses per second through `check_address` with one worker's DNS
  cache, in `--threads` threads (the queue's slots);
- the whole path: `outbound contacts verify`'s bulk job on the built-in `verify-email`
  queue, on a dev server with the worker in this process (production wiring), verdicts
  stored in PostgreSQL: addresses per second, DNS queries per address (target ≤ 0.05);
- the bulk job's longest history.

    uv run python -m bench.verification_bench --addresses 100000 --domains 2000

Most domains have MX records; a few have a null MX, only an A record, or do not exist,
so the cache's NXDOMAIN and NODATA answers count too. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from bench.database import DEFAULT_ADMIN_URL
from bench.in_process import dev_server_and_database, longest_history, run_and_keep
from db.contacts_repo import import_contacts
from db.engine import unit_of_work
from db.models import Contact
from domain.contacts_csv import ContactRecord
from handlers.mail_routes import MailRoutes
from handlers.verify_email import check_address
from runtime.job_queues import configured_jobs
from runtime.names import job_queue, job_workflow_id
from runtime.secrets import new_secret_key
from runtime.settings import Settings, VerificationSettings
from starter.contact_jobs import enqueue_verification
from starter.job_producer import JobProducer
from tests.dns_support import DnsServer, Zone, dns_server
from workers.worker import build_workers

console = Console()
KINDS = ["mx"] * 90 + ["null_mx"] * 3 + ["a_only"] * 4 + ["nxdomain"] * 3  # per 100 domains


def say(message: str) -> None:
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/] {message}", highlight=False)


def zones(count: int, seed: int = 7) -> dict[str, Zone]:
    chooser = random.Random(seed)
    return {f"company{n}.example": Zone(chooser.choice(KINDS), ttl=3600) for n in range(count)}


def addresses(count: int, domains: Sequence[str], seed: int = 11) -> list[str]:
    chooser = random.Random(seed)
    locals_ = ["jane", "joe", "ann", "li", "sales", "info", "maria", "sam"]
    return [f"{chooser.choice(locals_)}.{n}@{chooser.choice(domains)}" for n in range(count)]


def handler_alone(server: DnsServer, emails: list[str], threads: int) -> dict[str, float]:
    routes = MailRoutes(VerificationSettings(nameservers=[server.nameserver]))
    before = server.total
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda email: check_address(email, routes), emails, chunksize=256))
    seconds = time.perf_counter() - started
    return {"per_s": len(emails) / seconds, "queries_per_address": (server.total - before) / len(emails)}


async def measure(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    server = stack.enter_context(dns_server(zones(args.domains)))
    emails = addresses(args.addresses, list(server.zones))
    say(f"the handler alone: {len(emails):,} addresses over {args.domains:,} domains, {args.threads} threads")
    figures["handler"] = handler_alone(server, emails, args.threads)

    deployment = await dev_server_and_database(
        scratch, stack, admin_url=args.admin_url, name="verify", pool_size=args.threads + 8, say=say
    )
    client, url, sessions = deployment.client, deployment.database_url, deployment.sessions
    say(f"importing {len(emails):,} contacts into the group 'bench'")
    with unit_of_work(sessions) as session:
        records = (ContactRecord(line=n + 2, email=email) for n, email in enumerate(emails))
        import_contacts(session, records, "bench", datetime.now(UTC))
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    settings = Settings(
        database_url=url,
        secret_key=SecretStr(new_secret_key()),
        task_queue_prefix=prefix,
        verification=VerificationSettings(nameservers=[server.nameserver]),
    )
    workers = build_workers(client, settings, sessions, task_queues=[job_queue("verify-email", prefix)])
    running = asyncio.create_task(workers.run())
    try:
        before = server.total
        say("the bulk job of `outbound contacts verify --group bench`")
        started = time.perf_counter()
        enqueued = await enqueue_verification(
            client, sessions, settings, group="bench", older_than=None, now=datetime.now(UTC)
        )
        assert enqueued.job is not None
        producer = JobProducer(client, sessions, configured_jobs(settings), prefix)
        await producer.bulk_handle(enqueued.job).result()
        seconds = time.perf_counter() - started
        with sessions() as session:
            verified = session.scalar(select(func.count()).where(Contact.email_status.is_not(None))) or 0
        figures["job"] = {
            "per_s": len(emails) / seconds,
            "queries_per_address": (server.total - before) / len(emails),
            "verified": verified,
            "seconds": seconds,
        }
        figures["longest_history"] = await longest_history(
            client, job_workflow_id("verify-email", enqueued.job.job_key, prefix)
        )
    finally:
        await workers.shutdown()
        await asyncio.gather(running, return_exceptions=True)
    figures["addresses"], figures["domains"] = len(emails), args.domains
    return figures


def show(figures: dict[str, Any]) -> None:
    table = Table("figure", "measured", "target")
    handler, job = figures["handler"], figures["job"]
    table.add_row("handler alone: addresses/s", f"{handler['per_s']:,.0f}", "")
    table.add_row("handler alone: DNS queries per address", f"{handler['queries_per_address']:.4f}", "≤ 0.05")
    table.add_row("bulk job: addresses/s (verdicts stored)", f"{job['per_s']:,.0f}", "")
    table.add_row("bulk job: DNS queries per address", f"{job['queries_per_address']:.4f}", "≤ 0.05")
    table.add_row("bulk job: contacts with a verdict", f"{job['verified']:,} of {figures['addresses']:,}", "all")
    table.add_row("bulk job: longest history", f"{figures['longest_history']:,}", "≤ 5,000")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verification_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--domains", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=16, help="Threads for the handler alone (the queue's slots).")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="Where the PostgreSQL database is made.")
    return run_and_keep("verification", parser.parse_args(argv), measure, show, console)


if __name__ == "__main__":
    raise SystemExit(main())
