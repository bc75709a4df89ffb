"""Jobs over a lead group's contacts: email verification (`outbound contacts verify`) and
enrichment (`outbound contacts enrich`), each one bulk job with an item per contact."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client

from db.contacts_repo import count_contacts, find_contact_by_email
from db.engine import SessionFactory
from db.generated_texts import contacts_without_texts
from db.models import Campaign
from db.verification import contacts_with_email
from runtime.job_queues import configured_jobs
from runtime.settings import Settings
from schemas.campaign_file import CampaignFile
from schemas.jobs import JobView
from schemas.jobs_file import ENRICH_HANDLER, VERIFY_HANDLER, WRITE_HANDLER, JobsFile
from starter.job_producer import JobError, JobProducer


@dataclass(frozen=True)
class ContactsEnqueued:
    contacts: int
    job: JobView | None  # None: no contact needed it


async def enqueue_verification(
    client: Client,
    sessions: SessionFactory,
    settings: Settings,
    *,
    group: str,
    older_than: timedelta | None,
    now: datetime,
) -> ContactsEnqueued:
    """Verify the group's contacts never verified or verified before `now - older_than`
    (all of them when `older_than` is None)."""
    jobs = configured_jobs(settings)
    queue = jobs.for_handler(VERIFY_HANDLER)
    with sessions() as session:
        count_contacts(session, group_name=group)  # LookupError: no such group
        ids = contacts_with_email(
            session, group=group, checked_before=now - older_than if older_than is not None else None
        )
    items = ({"contact_id": contact_id} for contact_id in ids)
    return await _enqueue(client, sessions, settings, jobs, queue.name, items, len(ids), f"verify {group}")


async def enqueue_enrichment(
    client: Client, sessions: SessionFactory, settings: Settings, *, group: str, provider: str
) -> ContactsEnqueued:
    """Ask the provider (the queue of that name, handler `enrich`) about every contact of the group."""
    jobs = configured_jobs(settings)
    try:
        queue = jobs.queue(provider)
    except LookupError as error:
        raise JobError(str(error.args[0])) from None
    if queue.handler != ENRICH_HANDLER:
        known = ", ".join(q.name for q in jobs.queues if q.handler == ENRICH_HANDLER) or "none"
        raise JobError(f"queue {provider!r} does not run the enrich handler (enrichment providers: {known})")
    with sessions() as session:
        count_contacts(session, group_name=group)
        ids = contacts_with_email(session, group=group)
    # A provider with a batch endpoint gets a whole activity's contacts in one request.
    batch = queue.provider.batch.size if queue.provider is not None and queue.provider.batch else None
    items = ({"contact_id": contact_id} for contact_id in ids)
    return await _enqueue(client, sessions, settings, jobs, queue.name, items, len(ids), f"enrich {group}", batch)


async def enqueue_writing(
    client: Client, sessions: SessionFactory, settings: Settings, *, campaign_id: int, email: str | None = None
) -> ContactsEnqueued:
    """Have the model write the campaign's `ai:` texts for the contacts of its lead groups
    that lack them (or only for `email`)."""
    jobs = configured_jobs(settings)
    queue = jobs.for_handler(WRITE_HANDLER)
    with sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise LookupError(f"campaign {campaign_id} does not exist")
        names = list(CampaignFile.model_validate(campaign.definition).ai)
        if not names:
            raise LookupError(f"campaign {campaign_id} declares no `ai:` texts")
        ids = contacts_without_texts(session, campaign_id, names, enrolled_only=False)
        if email is not None:
            contact = find_contact_by_email(session, email, workspace_id=campaign.workspace_id)
            if contact is None:
                raise LookupError(f"no contact with the email {email!r}")
            ids = [contact_id for contact_id in ids if contact_id == contact.id]
    items = ({"campaign_id": campaign_id, "contact_id": contact_id} for contact_id in ids)
    name = f"write campaign {campaign_id}"
    # A model call takes seconds: an activity per contact, so one slow answer holds no others.
    return await _enqueue(client, sessions, settings, jobs, queue.name, items, len(ids), name, batch=1)


async def _enqueue(
    client: Client, sessions: SessionFactory, settings: Settings, jobs: JobsFile, queue: str,
    items: Iterable[dict[str, Any]], count: int, name: str, batch: int | None = None,
) -> ContactsEnqueued:  # fmt: skip
    if not count:
        return ContactsEnqueued(0, None)
    producer = JobProducer(client, sessions, jobs, settings.task_queue_prefix)
    enqueued = await producer.add_bulk(queue, items, name=name, window=100, batch=batch)
    return ContactsEnqueued(count, enqueued.job)
