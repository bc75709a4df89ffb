"""Email verification against a real DNS server started by the test: each verdict and its
reasons, the cache (one query per domain for the answer's TTL, NXDOMAIN included), and
the `verify-email` handler storing the verdict on the contact — never on a contact whose
address changed meanwhile, and retrying when DNS does not answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from db.contacts_repo import import_contacts
from db.engine import unit_of_work
from db.models import Contact
from domain.contacts_csv import ContactRecord
from domain.email_verdict import EmailStatus, MailRoute, Reason, is_role, judge
from handlers.base import JobFailed, JobRequest
from handlers.mail_routes import MailRoutes, nameserver
from handlers.verify_email import VerifyEmail, check_address, is_disposable
from runtime.settings import VerificationSettings
from tests.conftest import Database
from tests.dns_support import DnsServer, Zone, dns_server

ZONES = {
    "acme.example": Zone("mx"),
    "mailinator.com": Zone("mx"),
    "nomail.example": Zone("null_mx"),
    "web-only.example": Zone("a_only"),
    "v6-only.example": Zone("aaaa_only"),
    "parked.example": Zone("empty"),
    "slow.example": Zone("silent"),
    "broken.example": Zone("servfail"),
    "xn--bcher-kva.example": Zone("mx"),  # bücher.example
}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server(ZONES) as server:
        yield server


def routes_for(server: DnsServer, timeout: float = 1.0) -> MailRoutes:
    return MailRoutes(VerificationSettings(nameservers=[server.nameserver], timeout=timeout))


@pytest.mark.parametrize(
    ("address", "status", "reasons"),
    [
        ("jane@acme.example", EmailStatus.DELIVERABLE, []),
        ("Jane.Doe+news@ACME.example", EmailStatus.DELIVERABLE, []),
        ("sales@acme.example", EmailStatus.RISKY, [Reason.ROLE_ADDRESS]),
        ("someone@mailinator.com", EmailStatus.RISKY, [Reason.DISPOSABLE]),
        ("jane@web-only.example", EmailStatus.RISKY, [Reason.IMPLICIT_MX]),
        ("jane@v6-only.example", EmailStatus.RISKY, [Reason.IMPLICIT_MX]),
        ("jane@nomail.example", EmailStatus.UNDELIVERABLE, [Reason.NULL_MX]),
        ("jane@nowhere.example", EmailStatus.UNDELIVERABLE, [Reason.NO_DOMAIN]),
        ("jane@parked.example", EmailStatus.UNDELIVERABLE, [Reason.NO_MAIL_SERVER]),
        ("jane@slow.example", EmailStatus.UNKNOWN, [Reason.DNS_UNANSWERED]),
        ("jane@broken.example", EmailStatus.UNKNOWN, [Reason.DNS_UNANSWERED]),
        ("jane@bücher.example", EmailStatus.DELIVERABLE, []),
        ("jane@@acme.example", EmailStatus.UNDELIVERABLE, [Reason.INVALID_SYNTAX]),
        ("jane at acme.example", EmailStatus.UNDELIVERABLE, [Reason.INVALID_SYNTAX]),
    ],
)
def test_each_address_gets_a_status_and_the_reasons_for_it(
    dns: DnsServer, address: str, status: EmailStatus, reasons: list[Reason]
) -> None:
    checked = check_address(address, routes_for(dns, timeout=0.5))
    assert checked.verdict.status is status
    assert list(checked.verdict.reasons) == reasons


def test_an_address_is_normalised_and_a_syntax_error_says_what_is_wrong(dns: DnsServer) -> None:
    routes = routes_for(dns)
    assert check_address("Jane@ACME.example", routes).normalized == "Jane@acme.example"
    assert check_address("jane@bücher.example", routes).normalized == "jane@bücher.example"
    wrong = check_address("jane@@acme.example", routes)
    assert wrong.normalized is None
    assert "@" in (wrong.detail or "")


def test_one_query_per_domain_while_its_answer_lives_nxdomain_included(dns: DnsServer) -> None:
    routes = routes_for(dns)
    for index in range(50):
        check_address(f"person{index}@acme.example", routes)
        check_address(f"person{index}@nowhere.example", routes)
        check_address(f"person{index}@web-only.example", routes)
    assert dns.queries[("acme.example", "MX")] == 1
    assert dns.queries[("nowhere.example", "MX")] == 1, "NXDOMAIN is cached for the SOA's minimum"
    assert dns.queries[("web-only.example", "MX")] == 1, "an empty answer is cached too"
    assert dns.queries[("web-only.example", "A")] == 1


def test_an_answer_is_asked_again_once_its_ttl_has_passed() -> None:
    with dns_server({"short.example": Zone("mx", ttl=1)}) as server:
        routes = routes_for(server)
        check_address("a@short.example", routes)
        check_address("b@short.example", routes)
        time.sleep(1.2)
        check_address("c@short.example", routes)
    assert server.queries[("short.example", "MX")] == 2


def test_the_verdict_rules() -> None:
    assert judge(MailRoute.MX, disposable=False, role=False).status is EmailStatus.DELIVERABLE
    both = judge(MailRoute.IMPLICIT, disposable=True, role=True)
    assert (both.status, both.reasons) == (
        EmailStatus.RISKY,
        (Reason.IMPLICIT_MX, Reason.DISPOSABLE, Reason.ROLE_ADDRESS),
    )
    assert judge(MailRoute.NULL_MX, disposable=True, role=True).reasons == (Reason.NULL_MX,)
    assert [is_role(part) for part in ("Sales+emea", "no-reply", "jane.sales")] == [True, True, False]
    domains = ("mailinator.com", "inbox.mailinator.com", "acme.example", "com")
    assert [is_disposable(domain) for domain in domains] == [True, True, False, False]


def test_a_nameserver_is_an_address_with_an_optional_port() -> None:
    assert (nameserver("10.0.0.2").address, nameserver("10.0.0.2").port) == ("10.0.0.2", 53)
    assert nameserver("127.0.0.1:5353").port == 5353
    assert (nameserver("[::1]:5353").address, nameserver("[::1]:5353").port) == ("::1", 5353)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        nameserver("dns.example.com")


def request(data: dict[str, object]) -> JobRequest:
    return JobRequest(job_key="v-1", queue="verify-email", name=None, data=data, attempts_made=0)


def contact(db: Database, email: str) -> int:
    now = datetime.now(UTC)
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [ContactRecord(line=2, email=email)], "leads", now)
        return int(session.scalars(select(Contact.id).where(Contact.email == email)).one())


def stored(db: Database, contact_id: int) -> tuple[str | None, list[str] | None, bool]:
    with db.sessions() as session:
        row = session.get_one(Contact, contact_id)
        return row.email_status, row.email_reasons, row.email_checked_at is not None


def test_the_handler_stores_the_verdict_on_the_contact_and_returns_it(db: Database, dns: DnsServer) -> None:
    handler = VerifyEmail(db.sessions, routes_for(dns))
    jane = contact(db, "sales@acme.example")
    done = handler.run(request({"contact_id": jane}), lambda _: None)
    assert (done.result["status"], done.result["reasons"]) == ("risky", ["role_address"])
    assert stored(db, jane) == ("risky", ["role_address"], True)
    loose = handler.run(request({"email": "jane@nomail.example"}), lambda _: None)
    assert loose.result["status"] == "undeliverable", "an address alone: the verdict is the job's result"


def test_a_verdict_for_an_address_the_contact_no_longer_has_is_not_stored(
    db: Database, dns: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.verify_email

    jane = contact(db, "jane@nomail.example")
    real_check = handlers.verify_email.check_address

    def check_while_the_address_changes(address: str, routes: MailRoutes) -> handlers.verify_email.Checked:
        with unit_of_work(db.sessions) as session:
            session.get_one(Contact, jane).email = "jane@acme.example"
        return real_check(address, routes)

    monkeypatch.setattr(handlers.verify_email, "check_address", check_while_the_address_changes)
    VerifyEmail(db.sessions, routes_for(dns)).run(request({"contact_id": jane}), lambda _: None)
    assert stored(db, jane) == (None, None, False)


def test_bad_job_data_fails_at_once_and_dns_silence_is_retried(db: Database, dns: DnsServer) -> None:
    handler = VerifyEmail(db.sessions, routes_for(dns, timeout=0.5))
    for data, message in [
        ({}, "contact_id"),
        ({"contact_id": 1, "email": "a@acme.example"}, "contact_id"),
        ({"contact_id": "7"}, "integer"),
        ({"contact_id": 999}, "no contact 999"),
    ]:
        with pytest.raises(JobFailed, match=message) as failed:
            handler.run(request(data), lambda _: None)
        assert not failed.value.retryable
    slow = contact(db, "jane@slow.example")
    with pytest.raises(JobFailed, match=r"DNS did not answer for slow\.example") as unanswered:
        handler.run(request({"contact_id": slow}), lambda _: None)
    assert unanswered.value.retryable
    assert stored(db, slow) == ("unknown", ["dns_unanswered"], True)
