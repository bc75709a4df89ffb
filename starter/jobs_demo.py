"""`outbound demo --jobs`: the job platform end to end on the embedded defaults.

Starts a Temporal dev server (unless one answers), the example feature service
(`examples/feature_service.py`) and a worker for its queue, then adds four jobs — one
that completes, one the service is too busy for twice (retried with backoff), one it
refuses (failed, dead-lettered) — and a bulk job of twenty items, and shows them until
they are done. Then lead intelligence: five addresses verified by the built-in
`verify-email` queue against a local DNS server (`examples/local_dns.py`), and four written
replies read for their intent by the model `OUTBOUND_AI__MODEL` names, or else by a local
stand-in for one (`examples/local_model.py`), with the rules deciding when its answer is unusable.
Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from db.contacts_repo import import_contacts
from db.engine import make_engine, make_session_factory, unit_of_work
from db.jobs import list_jobs, view
from db.migrate import upgrade
from db.models import Contact, LeadGroup, LeadGroupMember
from domain.contacts_csv import ContactRecord
from domain.jobs_yaml import load_jobs_file
from domain.reply_intent import new_text
from examples.feature_service import create_app
from examples.local_dns import LocalDns
from examples.local_model import Answer, LocalModel
from runtime.ai import ReplyClassifier
from runtime.job_queues import queue_secret
from runtime.names import job_queue
from runtime.search_attributes import register_search_attributes
from runtime.settings import AiSettings, Settings
from runtime.temporal import connect
from starter.contact_jobs import enqueue_verification
from starter.devserver import free_port, port_open, start_dev_server, stop
from starter.job_producer import JobProducer
from workers.worker import build_workers

QUEUE = "enrich"


async def run_jobs_demo(settings: Settings, console: Console, *, home: Path, ui_port: int | None = None) -> int:
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = ui_port or int(port) + 1000
    server = None
    if not port_open(host or "127.0.0.1", int(port)):
        console.print(f"Starting the Temporal dev server on {settings.temporal_address} (Web UI on :{ui_port}) ...")
        server = start_dev_server(home, port=int(port), ui_port=ui_port, namespace=settings.temporal_namespace)
    service = _FeatureService(queue_secret(settings, QUEUE))
    try:
        service.start()
        console.print(f"Example feature service on {service.url} (examples/feature_service.py)")
        return await _demo(settings, console, home, service.url, ui_port)
    finally:
        service.stop()
        if server is not None:
            stop(server)


async def _demo(settings: Settings, console: Console, home: Path, endpoint: str, ui_port: int) -> int:
    jobs_file = home / "demo-jobs.yaml"
    queue = {"name": QUEUE, "handler": "http", "endpoint": endpoint, "slots": 8, "attempts": 3, "timeout": "10s"}
    jobs_file.write_text(yaml.safe_dump({"queues": [queue]}))
    settings = settings.model_copy(update={"jobs_file": jobs_file})
    jobs = load_jobs_file(jobs_file)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    client = await connect(settings)
    await register_search_attributes(client, settings.temporal_namespace)
    prefix = settings.task_queue_prefix
    local_dns = LocalDns(DEMO_DOMAINS).__enter__()
    settings = settings.model_copy(
        update={"verification": settings.verification.model_copy(update={"nameservers": [local_dns.address]})}
    )
    queues = [job_queue(QUEUE, prefix), job_queue("verify-email", prefix)]
    workers = build_workers(client, settings, sessions, task_queues=queues, jobs=jobs.with_builtins())
    running = asyncio.create_task(workers.run())
    try:
        producer = JobProducer(client, sessions, jobs, prefix)
        run = f"{time.time():.0f}"
        added = [
            await producer.add(QUEUE, {"domain": "acme.example"}, name="company", job_key=f"acme-{run}"),
            await producer.add(
                QUEUE, {"domain": "busy.example", "fail_times": 2}, name="company", job_key=f"busy-{run}"
            ),
            await producer.add(QUEUE, {"domain": "nope", "refuse": True}, name="company", job_key=f"refused-{run}"),
        ]
        items = [{"domain": f"lead{n}.example"} for n in range(1, 21)]
        bulk = await producer.add_bulk(QUEUE, items, name="refresh", job_key=f"bulk-{run}")
        keys = [enqueued.job.job_key for enqueued in [*added, bulk]]
        console.print(f"Added {len(keys)} jobs to queue {QUEUE!r}: " + ", ".join(keys))
        while True:
            with sessions() as session:
                shown = [view(job) for job in list_jobs(session, QUEUE, limit=200) if job.job_key in keys]
            if all(job.status.finished for job in shown) and len(shown) == len(keys):
                break
            await asyncio.sleep(0.5)
        table = Table("Job", "Status", "Attempts", "Result / error")
        for job in sorted(shown, key=lambda job: job.id):
            detail = str(job.result if job.result is not None else job.error or "")
            table.add_row(job.job_key, job.status.value, f"{job.attempts_made}/{job.attempts_allowed}", detail[:70])
        console.print(table)
        counts = {status: sum(job.status.value == status for job in shown) for status in ("completed", "failed")}
        console.print(f"Jobs finished: {counts['completed']} completed, {counts['failed']} failed (a dead letter)")
        web_ui = f"http://localhost:{ui_port}/namespaces/{settings.temporal_namespace}/workflows"
        console.print(f'Web UI: {web_ui}?query=JobQueue%3D"{QUEUE}"')
        console.print("Try: outbound jobs list, outbound dlq list (with OUTBOUND_JOBS_FILE=" + str(jobs_file) + ")")
        verified = await _verification(client, sessions, settings, console, run)
        _replies(settings, console)
        return 0 if counts == {"completed": 3, "failed": 1} and verified else 1
    finally:
        await workers.shutdown()
        await asyncio.gather(running, return_exceptions=True)
        local_dns.__exit__(None, None, None)
        engine.dispose()


DEMO_DOMAINS = {"acme.example": "mx", "mailinator.com": "mx", "nomail.example": "null_mx"}
DEMO_ADDRESSES = ["jane@acme.example", "sales@acme.example", "temp@mailinator.com", "joe@nomail.example",
                  "ann@gone.example"]  # fmt: skip
DEMO_REPLIES = [
    "Sounds interesting - could you send me pricing?\n\nOn Mon, Sam wrote:\n> Hi Jane",
    "I'm out of the office until 2027-01-05 with limited access to email.",
    "Not the right person, please reach out to maria@acme.example who runs ops.",
    "Can we schedule a call on Thursday?",
]
# What the stand-in answers each reply (by a phrase of it), as a model following
# prompts/classify_reply.md would; the last is a model ignoring JSON mode.
STAND_IN_ANSWERS: dict[str, Answer] = {
    "pricing": {"intent": "interested", "referral": None, "return_date": None},
    "out of the office": {"intent": "out_of_office", "referral": None, "return_date": "2027-01-05"},
    "maria@acme.example": {"intent": "referral", "referral": {"name": "Maria", "email": "maria@acme.example"}},
    "schedule a call": "Sounds like they want a meeting!",
}


async def _verification(client: Any, sessions: Any, settings: Settings, console: Console, run: str) -> bool:
    """Five addresses through `contacts verify`'s path; True when each got its verdict."""
    group = f"demo-verify-{run}"
    with unit_of_work(sessions) as session:
        records = [ContactRecord(line=n + 2, email=email) for n, email in enumerate(DEMO_ADDRESSES)]
        import_contacts(session, records, group, datetime.now(UTC))
    enqueued = await enqueue_verification(client, sessions, settings, group=group, older_than=None,
                                          now=datetime.now(UTC))  # fmt: skip
    console.print(f"Verifying {enqueued.contacts} addresses against a local DNS server (examples/local_dns.py) ...")
    deadline = time.monotonic() + 60
    while True:
        with sessions() as session:
            rows = session.execute(
                select(Contact.email, Contact.email_status, Contact.email_reasons)
                .join(LeadGroupMember, LeadGroupMember.contact_id == Contact.id)
                .join(LeadGroup, LeadGroup.id == LeadGroupMember.group_id)
                .where(LeadGroup.name == group)
                .order_by(Contact.id)
            ).all()
        if all(status is not None for _, status, _ in rows) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    table = Table("Address", "Verdict", "Reasons")
    for email, status, reasons in rows:
        table.add_row(email, status or "(not yet)", ", ".join(reasons or []))
    console.print(table)
    return all(status is not None for _, status, _ in rows)


def _replies(settings: Settings, console: Console) -> None:
    """The demo's replies read by the model `OUTBOUND_AI__MODEL` names, else by a local
    stand-in for one (`examples/local_model.py`), which answers the last reply with text that
    is not JSON: the rules decide that one, as they do whenever a model fails."""
    if settings.ai.model is not None:
        _classify_replies(ReplyClassifier(settings.ai), console)
        return
    with LocalModel(STAND_IN_ANSWERS) as model:
        console.print(f"Reading {len(DEMO_REPLIES)} replies with a stand-in for a model (examples/local_model.py) ...")
        _classify_replies(ReplyClassifier(AiSettings(model=model.model, base_url=model.base_url, retries=0)), console)
    console.print(
        "The stand-in answers from a script and its last answer was not JSON, so the rules decided that reply;"
        " set OUTBOUND_AI__MODEL (and __BASE_URL, __API_KEY) to ask a real model."
    )


def _classify_replies(classifier: ReplyClassifier, console: Console) -> None:
    table = Table("Reply (new text)", "Intent", "Details", "Decided by")
    for reply in DEMO_REPLIES:
        verdict = classifier.classify(reply)
        details = verdict.model_dump(mode="json", include={"referral", "return_date"}, exclude_none=True)
        table.add_row(new_text(reply)[:60], verdict.intent.value, str(details or ""), verdict.source)
    console.print(table)


class _FeatureService:
    """examples/feature_service.py on a free local port, in a thread of this process."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(secret), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the example feature service did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
