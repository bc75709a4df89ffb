"""Worker wiring: which workflows and activities listen on which task queue.

The campaign queue runs the workflows and the bookkeeping activities; each channel has
its own queue for send activities, so email, SMS and voicemail get their own
concurrency and rate limits and can be scaled apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.analytics import AnalyticsActivities
from activities.campaign import CampaignActivities
from activities.contact_jobs import ContactJobActivities
from activities.dead_letters import DeadLetterActivities
from activities.inbound import InboundActivities
from activities.jobs import JobActivities
from activities.maintenance import FollowUpActivities, WarmupActivities
from activities.message_links import MessageLinks
from activities.retention import RetentionActivities
from activities.send_observer import SendObserver
from activities.sending import SendActivities
from activities.stepping import StepActivities
from activities.webhooks import WebhookActivities
from db.engine import SessionFactory
from handlers.base import JobHandler
from providers.base import Provider
from providers.gmail import GmailProvider
from providers.gmail_auth import CredentialSource
from providers.gmail_mailbox import GmailMailbox
from providers.outbox import OutboxProvider
from providers.stored_credentials import KeylessCredentials, StoredGmailCredentials
from providers.twilio_provider import TwilioSmsProvider, TwilioVoicemailProvider, make_twilio_client
from runtime.ai import ReplyClassifier
from runtime.job_queues import configured_jobs, job_handlers
from runtime.metrics import OutboundMetrics, client_meter
from runtime.names import (
    all_queues,
    campaign_queue,
    channel_queue,
    inbound_queue,
    job_queue,
    queue_kind,
    webhook_queue,
)
from runtime.secrets import SecretBox, SecretKeyMissing
from runtime.settings import Settings
from schemas.enums import Channel
from schemas.jobs_file import JobsFile, QueueSpec
from workflows.analytics import AnalyticsWorkflow
from workflows.campaign import CampaignWorkflow
from workflows.dead_letter_retry import DeadLetterRetryWorkflow
from workflows.job import BulkJobWorkflow, JobWorkflow, RepeatJobWorkflow
from workflows.mailbox_sync import MailboxSyncWorkflow
from workflows.maintenance import FollowUpWorkflow, WarmupResetWorkflow
from workflows.retention import RetentionWorkflow
from workflows.step import CampaignStepWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS: list[type] = [
    CampaignWorkflow,
    CampaignStepWorkflow,
    MailboxSyncWorkflow,
    DeadLetterRetryWorkflow,  # `outbound dlq retry`
    # started by the schedules (runtime/schedules.py)
    WarmupResetWorkflow,
    FollowUpWorkflow,
    AnalyticsWorkflow,
    RetentionWorkflow,
]


def require_key_for_email(settings: Settings, queues: Sequence[str]) -> None:
    """Every email carries a signed unsubscribe link: no email queue without the key."""
    if settings.secret_key is None and channel_queue(Channel.EMAIL, settings.task_queue_prefix) in queues:
        raise SecretKeyMissing(
            "OUTBOUND_SECRET_KEY is not set, so this worker cannot send email: every email carries a signed"
            " unsubscribe link. Make a key with `outbound secret-key` and keep it in your secret store"
            " (on SQLite, `outbound worker` makes and keeps a local one), or run this worker with"
            " --task-queue for the other queues only."
        )


def default_providers(settings: Settings, sessions: SessionFactory) -> dict[str, Provider]:
    """The outbox always; Gmail when a secret key can decrypt stored mailbox tokens; Twilio
    when an account is configured. A sender whose provider is missing here fails its sends
    with a clear `ProviderMissing` error."""
    providers: dict[str, Provider] = {"outbox": OutboxProvider(settings.outbox_dir, settings.outbox_faults)}
    if settings.secret_key is not None:
        providers["gmail"] = GmailProvider(gmail_credentials(settings, sessions), settings.gmail)
    if settings.twilio.account_sid and settings.twilio.auth_token:
        client = make_twilio_client(settings.twilio)
        providers["twilio:sms"] = TwilioSmsProvider(settings.twilio, client)
        providers["twilio:voicemail"] = TwilioVoicemailProvider(settings.twilio, client)
    return providers


def dead_letter_and_retention_activities(settings: Settings, sessions: SessionFactory) -> list[Callable[..., Any]]:
    """Campaign-queue activities of `dlq retry` and of the retention schedule."""
    dead_letters = DeadLetterActivities(sessions)
    retention = RetentionActivities(sessions, settings.retention)
    return [
        dead_letters.begin_dead_letter_retry,
        dead_letters.claim_dead_letter_retry,
        dead_letters.finish_dead_letter_retry,
        retention.purge_expired,
    ]


def gmail_credentials(settings: Settings, sessions: SessionFactory) -> CredentialSource:
    if settings.secret_key is None:
        return KeylessCredentials()
    return StoredGmailCredentials(sessions, SecretBox(settings.secret_key), settings.gmail)


def maintenance_activities(client: Client, settings: Settings, sessions: SessionFactory) -> list[Callable[..., Any]]:
    """The scheduled warmup reset and follow-up processor; the latter signals campaigns."""
    warmup = WarmupActivities(sessions)
    follow_up = FollowUpActivities(sessions, client, settings.task_queue_prefix)
    return [warmup.reset_warmup, follow_up.restart_due_steps, follow_up.reconcile_campaigns]


@dataclass
class WorkerSet:
    """The workers of one process and their activity thread pools: one for the campaigns
    queue, one shared by the sending and inbound queues."""

    workers: list[Worker]
    executors: list[ThreadPoolExecutor]

    async def run(self) -> None:
        import asyncio

        try:
            await asyncio.gather(*(worker.run() for worker in self.workers))
        finally:
            self.close_executors()

    async def shutdown(self) -> None:
        import asyncio

        await asyncio.gather(*(worker.shutdown() for worker in self.workers))
        self.close_executors()

    def close_executors(self) -> None:
        for executor in self.executors:
            executor.shutdown(wait=False, cancel_futures=True)


def build_workers(
    client: Client,
    settings: Settings,
    sessions: SessionFactory,
    providers: dict[str, Provider] | None = None,
    task_queues: Sequence[str] | None = None,
    *,
    jobs: JobsFile | None = None,
    job_handler_map: Mapping[str, JobHandler] | None = None,
    **worker_options: Any,
) -> WorkerSet:
    """The workers of one process: the campaign queues and, with a jobs file (`jobs`, else
    `OUTBOUND_JOBS_FILE`), one per job queue (`job_handler_map` replaces the handlers)."""
    prefix = settings.task_queue_prefix
    jobs = jobs if jobs is not None else configured_jobs(settings)
    job_queues = {job_queue(queue.name, prefix): queue for queue in jobs.queues} if jobs else {}
    known = [*all_queues(prefix), *job_queues]
    queues = list(task_queues or known)
    unknown = set(queues) - set(known)
    if unknown:
        raise ValueError(f"unknown task queue(s) {sorted(unknown)}; known: {known}")
    require_key_for_email(settings, queues)
    serving_jobs = [job_queues[queue] for queue in queues if queue in job_queues]
    campaign_queues = [queue for queue in queues if queue not in job_queues]
    executor = ThreadPoolExecutor(max_workers=settings.activity_threads(), thread_name_prefix="sends")
    control_executor = ThreadPoolExecutor(max_workers=settings.control_threads(), thread_name_prefix="control")
    campaign_activities = CampaignActivities(sessions)
    metrics = OutboundMetrics(client_meter(client))  # the client's runtime: one /metrics for all
    step_activities = StepActivities(sessions, metrics)
    send_activities = SendActivities(
        sessions,
        providers or default_providers(settings, sessions),
        MessageLinks.from_settings(settings),
        SendObserver(metrics),
        settings.mailbox_pause,
    )
    worker_options.setdefault("graceful_shutdown_timeout", timedelta(seconds=settings.graceful_shutdown_seconds))
    workers = []
    for queue in campaign_queues:
        limits = settings.worker_limits(queue_kind(queue, prefix))
        if queue == campaign_queue(prefix):
            activities: list[Callable[..., Any]] = [
                campaign_activities.prepare_campaign,
                campaign_activities.apply_lifecycle,
                campaign_activities.settle_lifecycle,
                campaign_activities.stop_contact,
                step_activities.plan_step,
                step_activities.fetch_due,
                step_activities.finish_step,
                step_activities.dead_letter,
                *maintenance_activities(client, settings, sessions),
                *dead_letter_and_retention_activities(settings, sessions),
                AnalyticsActivities(sessions).aggregate_analytics,
                *_verification_activities(sessions, jobs),
            ]
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=WORKFLOWS,
                    activities=activities,
                    activity_executor=control_executor,
                    **limits,
                    **worker_options,
                )
            )
        elif queue == inbound_queue(prefix):
            inbound = InboundActivities(
                sessions,
                GmailMailbox(gmail_credentials(settings, sessions), settings.gmail),
                settings.soft_bounce_threshold,
                ReplyClassifier(settings.ai),
            )
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    activities=[inbound.sync_mailbox],
                    activity_executor=executor,
                    **limits,
                    **worker_options,
                )
            )
        elif queue == webhook_queue(prefix):
            webhooks = WebhookActivities(sessions, settings.secret_key, settings.webhooks)
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=[WebhookDeliveryWorkflow],
                    activities=[webhooks.claim_webhooks, webhooks.deliver_webhooks],
                    activity_executor=executor,
                    **limits,
                    **worker_options,
                )
            )
        else:
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    activities=[
                        send_activities.send_message,
                        send_activities.send_batch,
                        send_activities.settle_cancelled,
                    ],
                    activity_executor=executor,
                    **limits,
                    **worker_options,
                )
            )
    executors = [control_executor, executor]
    if serving_jobs:
        assert jobs is not None
        handlers = job_handler_map if job_handler_map is not None else job_handlers(settings, jobs, sessions)
        job_activities = JobActivities(sessions, handlers, jobs, metrics)
        jobs_executor = ThreadPoolExecutor(max_workers=job_threads(serving_jobs), thread_name_prefix="jobs")
        executors.append(jobs_executor)
        for spec in serving_jobs:
            job_limits: dict[str, Any] = {"max_concurrent_activities": spec.slots}
            if spec.rate_limit is not None:
                job_limits["max_task_queue_activities_per_second"] = spec.rate_limit
            workers.append(
                Worker(
                    client,
                    task_queue=job_queue(spec.name, prefix),
                    workflows=[JobWorkflow, RepeatJobWorkflow, BulkJobWorkflow],
                    activities=[
                        job_activities.run_job,
                        job_activities.finish_job,
                        job_activities.add_repeat_job,
                        job_activities.claim_items,
                        job_activities.run_item,
                        job_activities.run_items,
                        job_activities.fail_item,
                        job_activities.finish_bulk,
                    ],
                    activity_executor=jobs_executor,
                    **job_limits,
                    **worker_options,
                )
            )
    return WorkerSet(workers, executors)


def job_threads(queues: Sequence[QueueSpec]) -> int:
    """Threads (and database connections) for the job queues one process serves."""
    return min(sum(queue.slots for queue in queues), 256) + 2


def _verification_activities(sessions: SessionFactory, jobs: JobsFile) -> list[Callable[..., Any]]:
    """A campaign's `verification:` (its bulk job goes to the queue running verify-email)."""
    contact_jobs = ContactJobActivities(sessions, jobs)
    return [contact_jobs.plan_verification, contact_jobs.apply_verification, contact_jobs.plan_writing]
