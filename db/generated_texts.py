"""Texts a model wrote per contact and campaign: stored once per (campaign, contact, name),
read when a message is composed, counted for the jobs that write them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from db.dialect import dialect_insert
from db.models import CampaignLeadGroup, Enrollment, GeneratedText, LeadGroupMember
from schemas.enums import EnrollmentStatus


def store_text(
    session: Session,
    campaign_id: int,
    contact_id: int,
    name: str,
    now: datetime,
    *,
    text: str | None,
    error: str | None = None,
    usage: dict[str, Any] | None = None,
) -> None:
    """Keep what the model wrote (or why it wrote nothing); a later success replaces a failure.
    `usage`: the call's `model`, `prompt_tokens`, `completion_tokens` and `latency_ms`."""
    usage = usage or {}
    values = {
        "campaign_id": campaign_id, "contact_id": contact_id, "name": name, "text": text,
        "error": error[:500] if error else None, "model": usage.get("model"),
        "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0),
        "latency_ms": usage.get("latency_ms"), "created_at": now,
    }  # fmt: skip
    statement = dialect_insert(session, GeneratedText).values(**values)
    update = {key: statement.excluded[key] for key in ("text", "error", "model", "prompt_tokens",
                                                          "completion_tokens", "latency_ms", "created_at")}  # fmt: skip
    session.execute(statement.on_conflict_do_update(index_elements=["campaign_id", "contact_id", "name"], set_=update))


def written_texts(session: Session, campaign_id: int, contact_id: int) -> dict[str, str]:
    """The texts the model wrote for the contact (failures left out: the default stands in)."""
    rows = session.execute(
        select(GeneratedText.name, GeneratedText.text).where(
            GeneratedText.campaign_id == campaign_id,
            GeneratedText.contact_id == contact_id,
            GeneratedText.text.is_not(None),
        )
    )
    return {name: text for name, text in rows if text is not None}


def contacts_without_texts(
    session: Session, campaign_id: int, names: Sequence[str], *, enrolled_only: bool
) -> list[int]:
    """The campaign's contacts (enrolled and active, or before launch every contact of its
    lead groups) that lack a written text or a recorded failure for one of `names`."""
    if enrolled_only:
        contacts = select(Enrollment.contact_id.label("id")).where(
            Enrollment.campaign_id == campaign_id, Enrollment.status == EnrollmentStatus.ACTIVE
        )
    else:
        contacts = (
            select(LeadGroupMember.contact_id.label("id"))
            .join(CampaignLeadGroup, CampaignLeadGroup.group_id == LeadGroupMember.group_id)
            .where(CampaignLeadGroup.campaign_id == campaign_id)
        )
    candidates = contacts.subquery()
    missing = [
        ~exists().where(
            and_(
                GeneratedText.campaign_id == campaign_id,
                GeneratedText.contact_id == candidates.c.id,
                GeneratedText.name == name,
            )
        )
        for name in names
    ]

    query = select(candidates.c.id).distinct().where(or_(*missing)).order_by(candidates.c.id)
    return list(session.scalars(query))
