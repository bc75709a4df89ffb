"""A campaign file's `verification:`: a contact whose recent verdict fails the requirement is
skipped from enrollment on (reason `unverified`, every step), one without a recent verdict
is verified by a bulk job before the first step, and only the addresses that pass are
sent to (time-skipping server, a real DNS server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from db.engine import unit_of_work
from db.jobs import view
from db.models import Contact, Enrollment, Job, StepExecution
from domain.contacts_csv import ContactRecord
from runtime.settings import VerificationSettings
from schemas.campaign_file import CampaignFile
from tests.dns_support import DnsServer, Zone, dns_server
from tests.jobs_support import jobs_closed
from tests.support import EMAIL_STEP, SMS_STEP, Outbound, campaign_spec, seed

pytestmark = pytest.mark.timeout(120)

CONTACTS = [
    ContactRecord(line=2, email="jane@acme.example", phone="+12025550101", first_name="Jane"),  # never verified
    ContactRecord(line=3, email="sales@acme.example", phone="+12025550102", first_name="Sales"),  # a role: risky
    ContactRecord(line=4, email="joe@nomail.example", phone="+12025550103", first_name="Joe"),  # verified: bad
    ContactRecord(line=5, email="ann@acme.example", phone="+12025550104", first_name="Ann"),  # verified long ago
]


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server({"acme.example": Zone("mx"), "nomail.example": Zone("null_mx")}) as server:
        yield server


async def verified_earlier(
    outbound: Outbound, workflow_env: WorkflowEnvironment, email: str, status: str, days_ago: int
) -> None:
    """A verdict `days_ago` by the clock the campaign's workflow reads (the time-skipping
    server's, days ahead of the wall clock after other tests' timers)."""
    now = await workflow_env.get_current_time()
    with unit_of_work(outbound.sessions) as session:
        session.execute(
            update(Contact)
            .where(Contact.email == email)
            .values(email_status=status, email_reasons=[], email_checked_at=now - timedelta(days=days_ago))
        )


def skips(outbound: Outbound, campaign: int) -> dict[tuple[str, int], str]:
    """(email, step id) → status or skip reason."""
    with outbound.sessions() as session:
        rows = session.execute(
            select(Contact.email, StepExecution.step_id, StepExecution.status, StepExecution.skip_reason)
            .join(Contact, Contact.id == StepExecution.contact_id)
            .where(StepExecution.campaign_id == campaign)
        )
        return {(email, step): reason or status for email, step, status, reason in rows if email}


async def test_only_addresses_that_meet_the_requirement_are_sent_to(
    outbound: Outbound, dns: DnsServer, workflow_env: WorkflowEnvironment
) -> None:
    outbound.overrides = {**outbound.overrides, "verification": VerificationSettings(nameservers=[dns.nameserver])}
    spec = campaign_spec([EMAIL_STEP, SMS_STEP], verification={"require": "deliverable", "max_age": "30d"})
    campaign = seed(outbound.sessions, spec, {"A": CONTACTS})
    await verified_earlier(outbound, workflow_env, "joe@nomail.example", "undeliverable", days_ago=2)
    await verified_earlier(outbound, workflow_env, "ann@acme.example", "deliverable", days_ago=60)
    async with outbound.worker():
        await (await outbound.launch(campaign)).result()
        await jobs_closed(outbound)

    outcome = skips(outbound, campaign)
    by_email: dict[str, set[str]] = {}
    for (email, _), status in outcome.items():
        by_email.setdefault(email, set()).add(status)
    assert by_email == {
        "jane@acme.example": {"SENT"},
        "ann@acme.example": {"SENT"},
        "sales@acme.example": {"unverified"},
        "joe@nomail.example": {"unverified"},
    }, "every step of a contact that fails is skipped, the SMS step too"
    assert len(outbound.files("email")) == 2
    assert dns.queries[("nomail.example", "MX")] == 0, "a recent verdict is trusted, not asked again"
    with outbound.sessions() as session:
        [job] = [view(row) for row in session.scalars(select(Job))]
        statuses = dict(session.execute(select(Contact.email, Contact.email_status)).all())
        enrollments = dict(
            session.execute(
                select(Contact.email, Enrollment.status).join(Enrollment, Enrollment.contact_id == Contact.id)
            ).all()
        )
    assert (job.queue, job.items, job.status.value) == ("verify-email", 3, "completed"), "jane, sales and ann"
    assert statuses["ann@acme.example"] == "deliverable"
    assert statuses["sales@acme.example"] == "risky"
    assert enrollments["joe@nomail.example"] == enrollments["sales@acme.example"] == "unverified"


async def test_not_undeliverable_lets_risky_addresses_through(outbound: Outbound, dns: DnsServer) -> None:
    outbound.overrides = {**outbound.overrides, "verification": VerificationSettings(nameservers=[dns.nameserver])}
    spec = campaign_spec([EMAIL_STEP], verification={"require": "not_undeliverable"})
    campaign = seed(outbound.sessions, spec, {"A": CONTACTS})
    async with outbound.worker():
        await (await outbound.launch(campaign)).result()
        await jobs_closed(outbound)
    outcome = {email: status for (email, _), status in skips(outbound, campaign).items()}
    assert outcome == {
        "jane@acme.example": "SENT",
        "ann@acme.example": "SENT",
        "sales@acme.example": "SENT",
        "joe@nomail.example": "unverified",
    }


def test_verification_is_for_campaigns_that_send_email() -> None:
    sms_only = {**campaign_spec([EMAIL_STEP]).model_dump(mode="json"), "steps": [{"channel": "sms", "body": "Hi"}]}
    sms_only["verification"] = {"require": "deliverable"}
    with pytest.raises(ValueError, match="verification: checks email addresses"):
        CampaignFile.model_validate(sms_only)
    with pytest.raises(ValueError, match="require"):
        campaign_spec([EMAIL_STEP], verification={"require": "maybe"})


async def test_a_cancel_while_the_addresses_are_verified_ends_the_campaign_and_sends_nothing(
    outbound_on_dev_server: Outbound, dns: DnsServer
) -> None:
    """No worker polls the verify-email queue here, so the campaign waits on its job; the
    cancel still ends it at once (the job, abandoned, would finish its verdicts later)."""
    import asyncio

    from runtime.names import campaign_queue, job_workflow_id
    from starter.client import OutboundClient
    from workers.worker import build_workers

    outbound = outbound_on_dev_server
    outbound.overrides = {**outbound.overrides, "verification": VerificationSettings(nameservers=[dns.nameserver])}
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP], verification={"require": "deliverable"}),
                    {"A": CONTACTS})  # fmt: skip
    workers = build_workers(
        outbound.client, outbound.settings, outbound.sessions, task_queues=[campaign_queue(outbound.prefix)]
    )
    running = asyncio.create_task(workers.run())
    try:
        handle = await outbound.launch(campaign)
        for _ in range(100):
            with outbound.sessions() as session:
                job = session.scalars(select(Job)).one_or_none()
            if job is not None:
                break
            await asyncio.sleep(0.1)
        assert job is not None, "the verification job was written"
        ack = await OutboundClient(outbound.client, outbound.prefix).cancel_now(campaign)
        assert ack.state.value == "CANCELLED"
        await asyncio.wait_for(handle.result(), timeout=30)
    finally:
        await workers.shutdown()
        await asyncio.gather(running, return_exceptions=True)
    verifier = outbound.client.get_workflow_handle(job_workflow_id("verify-email", job.job_key, outbound.prefix))
    assert (await verifier.describe()).status.name == "RUNNING", "abandoned, not cancelled with the campaign"
    await verifier.terminate("the test is over")
    assert outbound.files("email") == []
    assert set(skips(outbound, campaign).values()) == {"CANCELLED"}, "every enrolled contact's message cancelled"
