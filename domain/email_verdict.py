"""What an address's checks add up to: deliverable, risky, undeliverable or unknown.

Verification here is what can be known without talking to the recipient's mail server:
the address's syntax, where its domain says mail goes (MX, null MX, or the A/AAAA records
of RFC 5321's implicit MX) and what kind of address it is (a disposable domain, a role
mailbox). SMTP probing is not attempted: port 25 is closed on most clouds, catch-all
domains answer yes to everything, and probing gets the prober's addresses listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EmailStatus(StrEnum):
    DELIVERABLE = "deliverable"
    RISKY = "risky"
    UNDELIVERABLE = "undeliverable"
    UNKNOWN = "unknown"


class MailRoute(StrEnum):
    """Where the domain's DNS says mail for it goes."""

    MX = "mx"  # one or more mail exchangers
    IMPLICIT = "implicit"  # no MX, but an A or AAAA record (RFC 5321 §5.1)
    NULL_MX = "null_mx"  # a single `MX 0 .`: the domain accepts no mail (RFC 7505)
    NO_DOMAIN = "no_domain"  # NXDOMAIN
    NO_MAIL = "no_mail"  # the domain exists but has no MX, A or AAAA
    UNANSWERED = "unanswered"  # timeouts or server failures: nothing can be said yet


class Reason(StrEnum):
    INVALID_SYNTAX = "invalid_syntax"
    NO_DOMAIN = "no_domain"
    NULL_MX = "null_mx"
    NO_MAIL_SERVER = "no_mail_server"
    DNS_UNANSWERED = "dns_unanswered"
    IMPLICIT_MX = "implicit_mx"
    DISPOSABLE = "disposable"
    ROLE_ADDRESS = "role_address"


# Mailboxes that belong to a function rather than a person: mail to them reaches a shared
# inbox or a ticket queue, replies are rare and complaints likelier.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse", "accounts", "admin", "administrator", "billing", "careers", "contact", "customerservice",
        "dev", "enquiries", "feedback", "finance", "hello", "help", "helpdesk", "hostmaster", "hr", "info",
        "inquiries", "investors", "jobs", "legal", "mail", "marketing", "media", "noc", "no-reply", "noreply",
        "office", "ops", "orders", "postmaster", "press", "privacy", "recruiting", "root", "sales", "security",
        "service", "support", "team", "webmaster",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    status: EmailStatus
    reasons: tuple[Reason, ...]


def is_role(local_part: str) -> bool:
    """`sales@` and `Sales+eu@` are roles; `jane.sales@` is a person."""
    return local_part.lower().split("+", 1)[0] in ROLE_LOCAL_PARTS


def invalid_syntax() -> Verdict:
    return Verdict(EmailStatus.UNDELIVERABLE, (Reason.INVALID_SYNTAX,))


def judge(route: MailRoute, *, disposable: bool, role: bool) -> Verdict:
    """The verdict for a well-formed address whose domain routes mail as `route`.

    Nowhere to deliver is undeliverable; no answer yet is unknown; otherwise anything
    that makes a reply unlikely or a complaint likelier is risky."""
    nowhere = {
        MailRoute.NO_DOMAIN: Reason.NO_DOMAIN,
        MailRoute.NULL_MX: Reason.NULL_MX,
        MailRoute.NO_MAIL: Reason.NO_MAIL_SERVER,
    }
    if route in nowhere:
        return Verdict(EmailStatus.UNDELIVERABLE, (nowhere[route],))
    if route is MailRoute.UNANSWERED:
        return Verdict(EmailStatus.UNKNOWN, (Reason.DNS_UNANSWERED,))
    doubts = [
        reason
        for reason, applies in (
            (Reason.IMPLICIT_MX, route is MailRoute.IMPLICIT),
            (Reason.DISPOSABLE, disposable),
            (Reason.ROLE_ADDRESS, role),
        )
        if applies
    ]
    return Verdict(EmailStatus.RISKY if doubts else EmailStatus.DELIVERABLE, tuple(doubts))
