"""Events out to the app (DESIGN W1): what each event's body says, as the app receives it.

A webhook's body is `{"type": ..., "timestamp": ..., "data": {...}}` (Standard Webhooks'
shape), and `webhook-id` is the event's id, `evt_<n>`, the same on every retry and replay.
The body goes to the app, never into workflow history, so it carries what an app needs
to act without calling back: the contact's address, the campaign, the step.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    MESSAGE_SENT = "message.sent"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_DELIVERY = "message.delivery"
    CONTACT_REPLIED = "contact.replied"
    CONTACT_BOUNCED = "contact.bounced"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    CONTACT_RESUBSCRIBED = "contact.resubscribed"
    CAMPAIGN_LAUNCHED = "campaign.launched"
    CAMPAIGN_PAUSED = "campaign.paused"
    CAMPAIGN_RESUMED = "campaign.resumed"
    CAMPAIGN_CANCELLED = "campaign.cancelled"
    CAMPAIGN_COMPLETED = "campaign.completed"
    STEP_FINISHED = "step.finished"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    MAILBOX_PAUSED = "mailbox.paused"
    MAILBOX_DISABLED = "mailbox.disabled"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"
    WEBHOOK_PING = "webhook.ping"  # `outbound webhooks test`: to one endpoint, never stored as an event


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactRef(_Data):
    id: int
    email: str | None = None
    phone: str | None = None


class MessageData(_Data):
    """message.sent, message.failed, message.delivery: one message of a campaign step."""

    message_id: int = Field(description="The step execution: one message per (step, contact).")
    campaign_id: int
    step: int = Field(description="The step's position in the campaign, from 1.")
    channel: str
    contact: ContactRef
    sender: str | None = Field(None, description="The mailbox or number it was sent from.")
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    error_type: str | None = Field(None, description="message.failed: why it could not be sent.")
    error: str | None = None
    attempts: int | None = None
    delivery_status: str | None = Field(None, description="message.delivery: the provider's status (delivered ...).")


class ContactData(_Data):
    """contact.replied, contact.bounced, contact.unsubscribed, contact.resubscribed."""

    contact: ContactRef
    reason: str = Field(description="replied, bounced, unsubscribed (link or SMS STOP), resubscribed (START).")
    source: str | None = Field(None, description="Where it was learned: gmail, twilio, link, cli, api.")
    campaign_id: int | None = Field(None, description="The campaign the reply or bounce answered, when known.")
    message_id: int | None = Field(None, description="The message it answered, when known.")
    stopped_messages: int = Field(0, description="Messages that will not be sent because of it.")
    intent: str | None = Field(
        None,
        description="contact.replied: what the reply means (interested, not_interested, meeting_request,"
        " referral, out_of_office, unsubscribe_request, unclear), by the model or the rules.",
    )
    referral: dict[str, str | None] | None = Field(None, description="A referral's name and email, as named.")
    return_date: date | None = Field(None, description="An out-of-office reply's return date, if given.")
    at: datetime


class CampaignData(_Data):
    """campaign.launched | paused | resumed | cancelled | completed."""

    campaign_id: int
    name: str
    status: str
    at: datetime


class StepData(_Data):
    """step.finished: every message of the step has an outcome."""

    campaign_id: int
    step: int
    counts: dict[str, int] = Field(description="Messages by final status: SENT, SKIPPED, FAILED, CANCELLED.")
    at: datetime


class JobData(_Data):
    """job.completed, job.failed."""

    job_id: str = Field(description="The producer's job id.")
    queue: str
    name: str | None = None
    status: str
    attempts_made: int
    result: Any = None
    error: str | None = None
    items: dict[str, int] | None = Field(None, description="A bulk job: items completed and failed.")
    at: datetime


class MailboxData(_Data):
    """mailbox.paused (repeated rate limits or provider errors), mailbox.disabled."""

    sender_id: int
    address: str
    reason: str
    paused_until: datetime | None = None
    at: datetime


class EndpointData(_Data):
    """webhook.endpoint_disabled: an endpoint answered 410, or failed for days."""

    endpoint_id: int
    url: str
    reason: str
    at: datetime


class PingData(_Data):
    endpoint_id: int
    at: datetime


EVENT_DATA: dict[EventType, type[_Data]] = {
    EventType.MESSAGE_SENT: MessageData,
    EventType.MESSAGE_FAILED: MessageData,
    EventType.MESSAGE_DELIVERY: MessageData,
    EventType.CONTACT_REPLIED: ContactData,
    EventType.CONTACT_BOUNCED: ContactData,
    EventType.CONTACT_UNSUBSCRIBED: ContactData,
    EventType.CONTACT_RESUBSCRIBED: ContactData,
    EventType.CAMPAIGN_LAUNCHED: CampaignData,
    EventType.CAMPAIGN_PAUSED: CampaignData,
    EventType.CAMPAIGN_RESUMED: CampaignData,
    EventType.CAMPAIGN_CANCELLED: CampaignData,
    EventType.CAMPAIGN_COMPLETED: CampaignData,
    EventType.STEP_FINISHED: StepData,
    EventType.JOB_COMPLETED: JobData,
    EventType.JOB_FAILED: JobData,
    EventType.MAILBOX_PAUSED: MailboxData,
    EventType.MAILBOX_DISABLED: MailboxData,
    EventType.WEBHOOK_ENDPOINT_DISABLED: EndpointData,
    EventType.WEBHOOK_PING: PingData,
}


class EventBody(BaseModel):
    """What a webhook delivers (the JSON body); `webhook-id` carries the event's id."""

    type: EventType
    timestamp: datetime = Field(description="When the change happened.")
    data: dict[str, Any]


def event_id(row_id: int) -> str:
    """The id an app sees (`webhook-id`): stable for the event across retries and replays."""
    return f"evt_{row_id}"
