"""Names shared by clients, workers and workflows: defined once, used everywhere."""

from __future__ import annotations

from typing import Literal, cast

from temporalio.common import SearchAttributeKey

from schemas.enums import Channel

CAMPAIGN_ID = SearchAttributeKey.for_keyword("CampaignId")
CAMPAIGN_STATUS = SearchAttributeKey.for_keyword("CampaignStatus")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
JOB_QUEUE = SearchAttributeKey.for_keyword("JobQueue")
JOB_STATUS = SearchAttributeKey.for_keyword("JobStatus")
SEARCH_ATTRIBUTES = (CAMPAIGN_ID, CAMPAIGN_STATUS, CHANNEL, JOB_QUEUE, JOB_STATUS)

CAMPAIGN_QUEUE = "campaigns"
# Workflow types, by name: an app starts them without importing the workflow code.
CAMPAIGN_WORKFLOW = "CampaignWorkflow"
MAILBOX_SYNC_WORKFLOW = "MailboxSyncWorkflow"
JOB_WORKFLOW = "JobWorkflow"
REPEAT_JOB_WORKFLOW = "RepeatJobWorkflow"
BULK_JOB_WORKFLOW = "BulkJobWorkflow"
WEBHOOK_DELIVERY_WORKFLOW = "WebhookDeliveryWorkflow"
WEBHOOK_WAKE_SIGNAL = "wake"
INBOUND_QUEUE = "inbound"
WEBHOOK_QUEUE = "webhooks"


def campaign_workflow_id(campaign_id: int, prefix: str = "") -> str:
    """The prefix separates deployments (and tests) sharing one Temporal namespace."""
    return f"{prefix}campaign-{campaign_id}"


def step_workflow_id(campaign_id: int, position: int, prefix: str = "") -> str:
    return f"{campaign_workflow_id(campaign_id, prefix)}-step-{position}"


def channel_queue(channel: Channel, prefix: str = "") -> str:
    return f"{prefix}{channel.value}"


def campaign_queue(prefix: str = "") -> str:
    return f"{prefix}{CAMPAIGN_QUEUE}"


def inbound_queue(prefix: str = "") -> str:
    """Mailbox syncs: network-bound, kept off the campaign queue's activity slots."""
    return f"{prefix}{INBOUND_QUEUE}"


def mailbox_sync_workflow_id(sender_id: int, prefix: str = "") -> str:
    return f"{prefix}mailbox-sync-{sender_id}"


def webhook_queue(prefix: str = "") -> str:
    """Deliveries to the app's endpoints: network-bound, apart from sends and syncs."""
    return f"{prefix}{WEBHOOK_QUEUE}"


def webhook_workflow_id(endpoint_id: int, prefix: str = "") -> str:
    """One delivery workflow per endpoint (DESIGN W3)."""
    return f"{prefix}webhooks-{endpoint_id}"


def job_queue(queue: str, prefix: str = "") -> str:
    """Each job queue is its own task queue (DESIGN J5): its slots, its rate limit."""
    return f"{prefix}jobs-{queue}"


def job_workflow_id(queue: str, job_key: str, prefix: str = "") -> str:
    """One workflow per (queue, job id): starting it twice is one job (DESIGN J1)."""
    return f"{prefix}job-{queue}-{job_key}"


def dead_letter_retry_workflow_id(dead_letter_id: int, prefix: str = "") -> str:
    """One retry per dead letter: the id is started with reject-duplicate."""
    return f"{prefix}dlq-retry-{dead_letter_id}"


QueueKind = Literal["campaigns", "email", "sms", "voicemail", "inbound", "webhooks"]


def queue_kind(queue: str, prefix: str = "") -> QueueKind:
    """`campaigns`, `email`, ...: one of `all_queues(prefix)` without the prefix."""
    return cast(QueueKind, queue.removeprefix(prefix))


def all_queues(prefix: str = "") -> list[str]:
    return [
        campaign_queue(prefix),
        *(channel_queue(c, prefix) for c in Channel),
        inbound_queue(prefix),
        webhook_queue(prefix),
    ]
