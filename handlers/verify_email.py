"""The `verify-email` handler: is an address worth sending to?

A job's data names a contact (`{"contact_id": 42}`: the verdict is stored on it) or just
an address (`{"email": "jane@acme.example"}`: the verdict is the job's result). Checks:
syntax and normalisation (email-validator), where the domain's mail goes (MX, null MX,
implicit MX; `handlers.mail_routes`), disposable domains (the disposable-email-domains
list) and role mailboxes. No SMTP probing (see `domain.email_verdict`).

When DNS does not answer, the contact is marked `unknown` and the attempt fails as
retryable, so the job's retries ask again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from disposable_email_domains import blocklist
from email_validator import EmailNotValidError, validate_email

from db.engine import SessionFactory, unit_of_work
from db.models import Contact
from db.verification import record_verdict
from domain.email_verdict import EmailStatus, Reason, Verdict, invalid_syntax, is_role, judge
from handlers.base import JobDone, JobFailed, JobRequest, ProgressReport
from handlers.mail_routes import MailRoutes


def is_disposable(domain: str) -> bool:
    """The domain or any parent of it is on the list (`x.mailinator.com` too)."""
    labels = domain.lower().rstrip(".").split(".")
    return any(".".join(labels[start:]) in blocklist for start in range(len(labels) - 1))


@dataclass(frozen=True, slots=True)
class Checked:
    email: str
    normalized: str | None
    verdict: Verdict
    detail: str | None = None  # why the syntax is wrong

    def as_result(self, checked_at: datetime) -> dict[str, Any]:
        return {
            "email": self.email,
            "normalized": self.normalized,
            "status": self.verdict.status.value,
            "reasons": [reason.value for reason in self.verdict.reasons],
            "detail": self.detail,
            "checked_at": checked_at.isoformat(),
        }


def check_address(address: str, routes: MailRoutes) -> Checked:
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return Checked(address, None, invalid_syntax(), str(error))
    domain = valid.ascii_domain.lower()
    verdict = judge(routes.route(domain), disposable=is_disposable(domain), role=is_role(valid.local_part))
    return Checked(address, valid.normalized, verdict)


class VerifyEmail:
    def __init__(self, sessions: SessionFactory, routes: MailRoutes) -> None:
        self.sessions = sessions
        self.routes = routes

    def run(self, request: JobRequest, report_progress: ProgressReport) -> JobDone:
        contact_id, address = self._subject(request.data)
        checked = check_address(address, self.routes)
        now = datetime.now(UTC)
        if contact_id is not None:
            with unit_of_work(self.sessions) as session:
                reasons = [reason.value for reason in checked.verdict.reasons]
                record_verdict(session, contact_id, address, checked.verdict.status.value, reasons, now)
        if checked.verdict.status is EmailStatus.UNKNOWN and Reason.DNS_UNANSWERED in checked.verdict.reasons:
            raise JobFailed(f"DNS did not answer for {address.rpartition('@')[2]}", retryable=True)
        return JobDone(result=checked.as_result(now))

    def _subject(self, data: dict[str, Any]) -> tuple[int | None, str]:
        """(contact id, address) from the job's data; bad data fails the job at once."""
        contact_id, email = data.get("contact_id"), data.get("email")
        if (contact_id is None) == (email is None):
            raise JobFailed("verify-email takes {'contact_id': N} or {'email': '...'}", retryable=False)
        if email is not None:
            if not isinstance(email, str):
                raise JobFailed("email must be a string", retryable=False)
            return None, email
        if not isinstance(contact_id, int) or isinstance(contact_id, bool):
            raise JobFailed("contact_id must be an integer", retryable=False)
        with self.sessions() as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                raise JobFailed(f"no contact {contact_id}", retryable=False)
            if not contact.email:
                raise JobFailed(f"contact {contact_id} has no email address", retryable=False)
            return contact_id, contact.email
