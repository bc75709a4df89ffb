"""Contacts' email verification: recording a verdict, and the contacts a verification
job should cover."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.enrollment import failing_verdict
from db.models import DEFAULT_WORKSPACE_ID, Contact, Enrollment, LeadGroup, LeadGroupMember
from schemas.campaign_file import VerificationRequirement
from schemas.enums import EnrollmentStatus


def record_verdict(
    session: Session, contact_id: int, email: str, status: str, reasons: Sequence[str], at: datetime
) -> bool:
    """Store the verdict on the contact if its address is still the one verified (an import
    may have changed it meanwhile: that address's verdict would be stale on arrival)."""
    result = session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.email == email)
        .values(email_status=status, email_reasons=list(reasons), email_checked_at=at)
    )
    return changed_rows(result) == 1


def contacts_with_email(
    session: Session,
    *,
    group: str | None = None,
    contact_ids: Sequence[int] | None = None,
    checked_before: datetime | None = None,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> list[int]:
    """Ids of contacts with an email address, in a group or among `contact_ids`; with
    `checked_before`, only those never verified or verified before it (what to verify)."""
    query = select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.email.is_not(None))
    if group is not None:
        query = query.join(LeadGroupMember, LeadGroupMember.contact_id == Contact.id).join(
            LeadGroup, (LeadGroup.id == LeadGroupMember.group_id) & (LeadGroup.name == group)
        )
    if contact_ids is not None:
        query = query.where(Contact.id.in_(contact_ids))
    if checked_before is not None:
        query = query.where((Contact.email_checked_at.is_(None)) | (Contact.email_checked_at < checked_before))
    return list(session.scalars(query.order_by(Contact.id)))


def enrolled_needing_verification(
    session: Session, campaign_id: int, requirement: VerificationRequirement, now: datetime
) -> list[int]:
    """The campaign's enrolled contacts with an address and no verdict younger than the
    requirement's `max_age`: they are verified before the first step."""
    cutoff = now - timedelta(seconds=requirement.max_age.approx_seconds)
    query = (
        select(Contact.id)
        .join(Enrollment, Enrollment.contact_id == Contact.id)
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Contact.email.is_not(None),
            (Contact.email_checked_at.is_(None)) | (Contact.email_checked_at < cutoff),
        )
        .order_by(Contact.id)
    )
    return list(session.scalars(query))


def apply_requirement(session: Session, campaign_id: int, requirement: VerificationRequirement) -> int:
    """Enrollments whose contact's verdict (as it stands after verification) fails the
    requirement become `unverified`: every step skips them. How many."""
    failing = select(Contact.id).where(Contact.email.is_not(None), failing_verdict(requirement))
    result = session.execute(
        update(Enrollment)
        .where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Enrollment.contact_id.in_(failing),
        )
        .values(status=EnrollmentStatus.UNVERIFIED)
        .execution_options(synchronize_session=False)
    )
    return changed_rows(result)
