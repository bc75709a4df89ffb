"""A hand-built campaign whose analytics are known: executions in every state across two
days (and one slot on a third), replies, a bounce and opt-outs, written straight into the
database so the expected numbers can be read off this file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from db.engine import SessionFactory, unit_of_work
from db.enrollment import enroll
from db.models import Campaign, Contact, InboundMessage, Step, StepExecution
from schemas.enums import CampaignStatus
from tests.support import EMAIL_STEP, SMS_STEP, campaign_spec, people, seed

D1 = datetime(2026, 11, 2, tzinfo=UTC)
D2 = datetime(2026, 11, 3, tzinfo=UTC)
D3 = datetime(2026, 11, 4, tzinfo=UTC)
# Shortly after the last event: the "now" of a periodic run.
AFTER = datetime(2026, 11, 3, 18, 5, tzinfo=UTC)


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute)


# (contact index) -> step 1 (email) and step 2 (SMS): status, slot, sent_at / closed at, skip reason
STEP_1: dict[int, tuple[str, datetime | None, datetime | None, str | None]] = {
    0: ("SENT", at(D1, 9), at(D1, 9, 1), None),
    1: ("SENT", at(D1, 9, 30), at(D1, 10, 5), None),
    2: ("SENT", at(D1, 10), at(D2, 9), None),  # deferred to the next day
    3: ("SKIPPED", at(D1, 9), at(D1, 8), "suppressed"),
    4: ("FAILED", at(D1, 11), at(D1, 11, 30), None),
    5: ("SENT", at(D1, 9), at(D1, 9, 2), None),
    6: ("SENT", at(D1, 9, 10), at(D1, 9, 10), None),
}
STEP_2: dict[int, tuple[str, datetime | None, datetime | None, str | None]] = {
    0: ("SKIPPED", at(D2, 10), at(D1, 15), "replied"),
    1: ("SENT", at(D2, 10), at(D2, 10), None),
    2: ("SKIPPED", at(D3, 10), at(D2, 9, 30), "bounced"),
    4: ("CANCELLED", None, at(D2, 13), None),  # never planned: closed by a cancel
    5: ("SKIPPED", at(D2, 10), at(D2, 12), "unsubscribed"),
}

# The expected day buckets: (step position, day) -> non-zero counters.
EXPECTED_DAYS: dict[tuple[int, datetime], dict[str, Any]] = {
    (1, D1): {
        "scheduled": 7,
        "sent": 4,
        "skipped": 1,
        "skipped_by_reason": {"suppressed": 1},
        "failed": 1,
        "replied": 1,
    },
    (1, D2): {"sent": 1, "bounced": 1, "replied": 1, "unsubscribed": 1},
    (2, D1): {"skipped": 1, "skipped_by_reason": {"replied": 1}},
    (2, D2): {
        "scheduled": 3,
        "sent": 1,
        "skipped": 2,
        "skipped_by_reason": {"bounced": 1, "unsubscribed": 1},
        "cancelled": 1,
        "replied": 1,
    },
    (2, D3): {"scheduled": 1},
}
COUNTERS = ("scheduled", "sent", "skipped", "failed", "cancelled", "replied", "bounced", "unsubscribed")


@dataclass(frozen=True)
class Built:
    campaign_id: int
    steps: dict[int, int]  # position -> step id
    contacts: list[int]
    executions: dict[tuple[int, int], int]  # (position, contact index) -> execution id


def build_campaign(sessions: SessionFactory) -> Built:
    campaign_id = seed(sessions, campaign_spec([EMAIL_STEP, SMS_STEP]), {"A": people("an", 7)})
    with unit_of_work(sessions) as session:
        campaign = session.get_one(Campaign, campaign_id)
        enroll(session, campaign, at(D1, 7))
        campaign.status = CampaignStatus.ACTIVE.value
        campaign.launched_at = at(D1, 7)
        found = session.execute(select(Step.position, Step.id).where(Step.campaign_id == campaign_id))
        steps = {position: step_id for position, step_id in found}
        contacts = list(
            session.scalars(select(Contact.id).where(Contact.email.like("an%@example.com")).order_by(Contact.email))
        )
        executions: dict[tuple[int, int], int] = {}
        for position, plan in ((1, STEP_1), (2, STEP_2)):
            for index, (status, slot, moment, reason) in plan.items():
                row = StepExecution(
                    campaign_id=campaign_id,
                    step_id=steps[position],
                    contact_id=contacts[index],
                    status=status,
                    scheduled_for=slot,
                    sent_at=moment if status == "SENT" else None,
                    updated_at=moment,
                    skip_reason=reason,
                )
                session.add(row)
                session.flush()
                executions[(position, index)] = row.id
        built = Built(campaign_id, steps, contacts, executions)
        _responses(session, built)
    return built


def _responses(session: Any, built: Built) -> None:
    c = built.contacts
    inbound = [
        # (contact, execution or None, channel, classification, received)
        (0, built.executions[(1, 0)], "email", "reply", at(D1, 15)),
        (0, built.executions[(1, 0)], "email", "reply", at(D2, 8)),  # the same contact again: counted once
        (1, None, "sms", "reply", at(D2, 11)),  # no execution: the latest send before it (step 2)
        (1, None, "email", "auto_reply", at(D2, 11, 30)),  # not a response
        (2, built.executions[(1, 2)], "email", "bounce_hard", at(D2, 9, 30)),
        (5, None, "sms", "opt_out", at(D2, 12)),  # latest send before it: step 1
    ]
    intents = {0: "interested", 1: "meeting_request"}  # what the two email replies meant
    for number, (index, execution, channel, classification, received) in enumerate(inbound):
        session.add(
            InboundMessage(
                channel=channel,
                provider_message_id=f"m{number}",
                classification=classification,
                intent=intents.get(number),
                contact_id=c[index],
                execution_id=execution,
                received_at=received,
                created_at=received,
                headers={},
            )
        )
    stops = {0: ("replied", at(D1, 15, 1)), 1: ("replied", at(D2, 11)), 2: ("bounced", at(D2, 9, 31))}
    stops |= {5: ("unsubscribed", at(D2, 12)), 6: ("replied", at(D2, 16))}  # 6: `contacts mark-replied`
    for index, (reason, moment) in stops.items():
        contact = session.get(Contact, c[index])
        contact.stopped_reason = reason
        contact.stopped_at = moment
