"""Inbound classification: real-world shaped samples (tests/samples/inbound) and the edge cases
that make a classifier wrong in production."""

from __future__ import annotations

import base64
import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from domain.inbound_classify import InboundClassification, InboundKind, classify_email, strip_quoted

SAMPLES = Path(__file__).parent / "samples" / "inbound"


def sample(name: str) -> InboundClassification:
    return classify_email((SAMPLES / name).read_bytes())


def mail(
    body: str = "",
    *,
    subject: str = "Re: Quick question about Acme",
    sender: str = "Jordan Lee <jordan.lee@example.com>",
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Sam Seller <sales@outbound.example>"
    message["Subject"] = subject
    message["Message-ID"] = "<reply-1@example.com>"
    for name, value in (headers or {}).items():
        message[name] = value
    if html is not None and not body:
        message.set_content(html, subtype="html")
    else:
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
    return bytes(message)


def dsn(action: str, status: str, diagnostic: str, *, encoding: str | None = None) -> bytes:
    """A minimal RFC 3464 report for one recipient."""
    fields = (
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; someone@example.org\nAction: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
    )
    cte = ""
    if encoding == "base64":
        fields = base64.encodebytes(fields.encode()).decode()
        cte = "Content-Transfer-Encoding: base64\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        "To: sales@outbound.example\nSubject: Delivery report\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain\n\nA delivery report.\n\n"
        f"--b1\nContent-Type: message/delivery-status\n{cte}\n{fields}\n"
        "--b1\nContent-Type: text/rfc822-headers\n\n"
        "From: sales@outbound.example\nTo: someone@example.org\nMessage-ID: <outbound.3.9@outbound.example>\n\n"
        "--b1--\n"
    ).encode()


# --- the samples ---------------------------------------------------------------------------


def test_gmail_address_not_found_is_a_hard_bounce_of_the_failed_recipient() -> None:
    found = sample("gmail_hard_bounce_5_1_1.eml")
    assert found.kind is InboundKind.BOUNCE_HARD
    assert found.bounced_recipient == "nobody@example.org"
    assert found.bounce_status == "5.1.1"
    assert found.diagnostic is not None
    assert "does not exist" in found.diagnostic
    assert found.original_message_id == "<outbound.7.42@outbound.example>"
    assert found.from_address == "mailer-daemon@googlemail.com"


def test_office_365_recipient_not_found_is_a_hard_bounce_found_through_the_returned_message() -> None:
    found = sample("exchange_ndr_5_1_10.eml")
    assert found.kind is InboundKind.BOUNCE_HARD
    assert found.bounced_recipient == "j.doe@example.net"
    assert found.bounce_status == "5.1.10"
    assert found.diagnostic is not None
    assert "RecipientNotFound" in found.diagnostic
    assert found.in_reply_to is None, "Exchange does not thread its NDRs..."
    assert found.referenced_ids == ("<outbound.7.43@outbound.example>",), "...the attached original tells"


def test_postfix_delayed_mailbox_full_is_a_soft_bounce() -> None:
    found = sample("postfix_soft_bounce_4_2_2.eml")
    assert found.kind is InboundKind.BOUNCE_SOFT
    assert found.bounced_recipient == "full.inbox@example.com"
    assert found.bounce_status == "4.2.2"
    assert found.original_message_id == "<outbound.7.47@outbound.example>"


def test_plain_text_bounce_without_a_delivery_report_is_read_from_its_wording() -> None:
    found = sample("yahoo_plain_text_bounce.eml")
    assert found.kind is InboundKind.BOUNCE_HARD
    assert found.bounced_recipient == "gone.user@example.org"
    assert found.bounce_status == "554"
    assert found.original_message_id == "<outbound.7.44@outbound.example>", "from the copy below the report"


def test_a_full_mailbox_is_soft_even_when_the_server_calls_it_permanent() -> None:
    found = sample("exim_mailbox_full_5_2_2.eml")
    assert found.kind is InboundKind.BOUNCE_SOFT
    assert found.bounced_recipient == "packed@example.org"
    assert found.bounce_status == "5.2.2"
    assert found.original_message_id == "<outbound.7.48@outbound.example>"


def test_gmail_vacation_responder_is_an_auto_reply_whatever_its_subject() -> None:
    found = sample("gmail_vacation_responder.eml")
    assert found.kind is InboundKind.AUTO_REPLY
    assert found.subject == "Away until December 1"
    assert found.in_reply_to == "<outbound.7.42@outbound.example>"


def test_outlook_automatic_reply_is_an_auto_reply_even_when_it_mentions_unsubscribing() -> None:
    found = sample("outlook_automatic_reply.eml")
    assert found.kind is InboundKind.AUTO_REPLY
    assert found.text is not None
    assert "unsubscribe" in found.text
    assert found.from_address == "priya.patel@example.com", "addresses are lower-cased"


def test_german_abwesenheitsnotiz_is_an_auto_reply_by_its_subject_alone() -> None:
    found = sample("german_abwesenheitsnotiz.eml")
    assert found.kind is InboundKind.AUTO_REPLY
    assert "Auto-Submitted" not in found.headers
    assert found.subject == "Abwesenheitsnotiz: Kurze Frage zu Acme"
    assert found.text is not None
    assert "Büro" in found.text


def test_a_human_reply_threads_to_our_message_and_its_quote_is_not_its_text() -> None:
    found = sample("human_reply_with_quote.eml")
    assert found.kind is InboundKind.REPLY
    assert found.from_address == "jordan.lee@example.com"
    assert found.to_address == "sales@outbound.example"
    assert found.in_reply_to == "<outbound.7.42@outbound.example>"
    assert found.references == ("<outbound.7.41@outbound.example>", "<outbound.7.42@outbound.example>")
    assert found.referenced_ids[0] == "<outbound.7.42@outbound.example>", "the direct parent first"
    assert found.reply_text.startswith("Hi Sam,")
    assert found.reply_text.endswith("Jordan"), "the wrapped 'On ... wrote:' line and the quote are cut"
    assert found.html is not None
    assert "gmail_quote" in found.html


def test_unsubscribe_please_is_an_opt_out() -> None:
    found = sample("unsubscribe_reply.eml")
    assert found.kind is InboundKind.UNSUBSCRIBE
    assert found.from_address == "alex.kim@example.org"
    assert found.in_reply_to == "<outbound.7.46@outbound.example>"


def test_a_newsletter_is_other_even_though_it_says_unsubscribe_at_the_top() -> None:
    found = sample("newsletter.eml")
    assert found.kind is InboundKind.OTHER
    assert found.headers["List-Id"] == "Example Weekly <weekly.news.example.com>"


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.eml")), ids=lambda path: path.stem)
def test_every_sample_keeps_a_small_json_safe_header_selection(path: Path) -> None:
    found = classify_email(path.read_bytes())
    assert "Received" not in found.headers
    assert all(len(value) <= 998 for value in found.headers.values())
    assert json.loads(json.dumps(found.headers)) == found.headers
    assert found.headers["From"]


# --- replies, opt-outs and auto-replies --------------------------------------------------


def test_unsubscribe_deep_inside_a_long_reply_is_still_a_reply() -> None:
    body = (
        "Hi Sam,\n\nThanks for the note. We looked at three vendors last quarter and the main gap was reporting.\n"
        "Our team needs exports by region, and a weekly digest for the managers.\n\n"
        "One more thing: some of our customers complained that your competitor made it hard to unsubscribe,\n"
        "so please show me how opt-out works in your product.\n\nBest,\nJordan\n\n"
        "On Mon, Nov 23, 2026 at 9:02 AM Sam Seller <sales@outbound.example> wrote:\n"
        '> Would a call make sense?\n> To unsubscribe, reply "unsubscribe".\n'
    )
    assert classify_email(mail(body)).kind is InboundKind.REPLY


def test_a_quoted_unsubscribe_footer_under_a_short_answer_is_a_reply() -> None:
    body = 'Sounds good, call me Tuesday.\n\n> Sam\n> Reply "unsubscribe" to opt out.\n'
    assert classify_email(mail(body)).kind is InboundKind.REPLY


@pytest.mark.parametrize(
    "body",
    [
        "Please remove me from your list.",
        "Hi Sam,\n\nplease take me off your mailing list.\n\nThanks",
        "Stop emailing me.",
        "opt out",
        "Not interested. Don't contact me again.",
    ],
)
def test_a_short_request_to_stop_is_an_opt_out(body: str) -> None:
    assert classify_email(mail(body)).kind is InboundKind.UNSUBSCRIBE


def test_an_unsubscribe_subject_with_an_empty_body_is_an_opt_out() -> None:
    assert classify_email(mail("", subject="Re: unsubscribe")).kind is InboundKind.UNSUBSCRIBE


def test_an_html_only_opt_out_is_read_from_the_html_above_the_quote() -> None:
    html = '<div>Remove me please.</div><div class="gmail_quote">On Mon Sam wrote:<blockquote>Hi</blockquote></div>'
    assert classify_email(mail(html=html)).kind is InboundKind.UNSUBSCRIBE
    quoted_only = '<div>Sure, Tuesday.</div><blockquote>reply "unsubscribe" to opt out</blockquote>'
    assert classify_email(mail(html=quoted_only)).kind is InboundKind.REPLY


def test_an_auto_reply_is_not_a_reply() -> None:
    auto = mail("Thanks, I'll get back to you.", headers={"Auto-Submitted": "auto-replied"})
    assert classify_email(auto).kind is InboundKind.AUTO_REPLY
    assert classify_email(mail("Thanks", subject="Automatic reply: Quick question")).kind is InboundKind.AUTO_REPLY
    assert classify_email(mail("Back Monday", subject="Out of Office: Re: hi")).kind is InboundKind.AUTO_REPLY
    assert classify_email(mail("Absent", subject="Réponse automatique : Acme")).kind is InboundKind.AUTO_REPLY
    assert classify_email(mail("Away", headers={"X-Autoreply": "yes"})).kind is InboundKind.AUTO_REPLY
    assert classify_email(mail("Ticket #1 opened", headers={"Precedence": "bulk"})).kind is InboundKind.AUTO_REPLY


def test_outlook_suppression_header_alone_does_not_make_a_reply_automatic() -> None:
    found = classify_email(mail("Yes, let's talk.", headers={"X-Auto-Response-Suppress": "All"}))
    assert found.kind is InboundKind.REPLY
    assert classify_email(mail("Sure", headers={"Auto-Submitted": "no"})).kind is InboundKind.REPLY


def test_a_list_message_answering_our_email_is_a_reply_not_a_newsletter() -> None:
    headers = {"List-Id": "<sales.example.com>", "In-Reply-To": "<outbound.7.42@outbound.example>"}
    assert classify_email(mail("Forwarding to the team, we are interested.", headers=headers)).kind is InboundKind.REPLY


def test_a_read_receipt_is_other() -> None:
    raw = (
        b"From: jordan.lee@example.com\nTo: sales@outbound.example\nSubject: Read: Quick question\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification; boundary="r"\n\n'
        b"--r\nContent-Type: text/plain\n\nYour message was read.\n"
        b"--r\nContent-Type: message/disposition-notification\n\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n"
        b"--r--\n"
    )
    assert classify_email(raw).kind is InboundKind.OTHER


# --- bounces ---------------------------------------------------------------------------------


def test_a_delivered_report_is_not_a_bounce() -> None:
    assert classify_email(dsn("delivered", "2.0.0", "250 OK")).kind is InboundKind.OTHER


def test_a_failure_after_retries_with_a_temporary_status_is_soft() -> None:
    found = classify_email(dsn("failed", "4.4.7", "delivery time expired"))
    assert (found.kind, found.bounce_status) == (InboundKind.BOUNCE_SOFT, "4.4.7")


def test_a_policy_block_is_soft_because_the_address_itself_is_fine() -> None:
    found = classify_email(dsn("failed", "5.7.1", "550 5.7.1 Message rejected as spam"))
    assert found.kind is InboundKind.BOUNCE_SOFT
    found = classify_email(dsn("failed", "5.7.1", "550 5.7.1 Recipient address rejected: user unknown"))
    assert found.kind is InboundKind.BOUNCE_HARD


def test_a_base64_encoded_delivery_report_is_still_read() -> None:
    found = classify_email(dsn("failed", "5.1.1", "550 5.1.1 user unknown", encoding="base64"))
    assert found.kind is InboundKind.BOUNCE_HARD
    assert found.bounced_recipient == "someone@example.org"
    assert found.original_message_id == "<outbound.3.9@outbound.example>"


def test_a_person_writing_undeliverable_in_a_reply_is_not_a_bounce() -> None:
    body = "Your last message was undeliverable to my old address, use this one. Code 550 they said."
    headers = {"In-Reply-To": "<outbound.7.42@outbound.example>"}
    found = classify_email(mail(body, subject="Undeliverable: Quick question", headers=headers))
    assert found.kind is InboundKind.REPLY


def test_a_null_return_path_and_numbers_in_the_text_do_not_make_a_bounce() -> None:
    body = "Sure, call me on 415 555 0101 tomorrow, or 450 5th Avenue works for lunch."
    assert classify_email(mail(body, headers={"Return-Path": "<>"})).kind is InboundKind.REPLY
    away = mail(body, subject="Out of office", headers={"Return-Path": "<>"})
    assert classify_email(away).kind is InboundKind.AUTO_REPLY


def test_a_forwarded_bounce_attached_by_a_person_is_the_persons_message() -> None:
    bounce = dsn("failed", "5.1.1", "user unknown")
    assert classify_email(bounce).kind is InboundKind.BOUNCE_HARD
    outer = EmailMessage()
    outer["From"] = "jordan.lee@example.com"
    outer["To"] = "sales@outbound.example"
    outer["Subject"] = "Fwd: see below"
    outer["In-Reply-To"] = "<outbound.7.42@outbound.example>"
    outer.set_content("Looks like my colleague's address changed, try robin@example.com instead.")
    outer.add_attachment(BytesParser(policy=policy.default).parsebytes(bounce))
    assert classify_email(bytes(outer)).kind is InboundKind.REPLY


# --- robustness and quoting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe garbage", b"Subject: =?utf-8?B?!!!?=\n\n\xff\xfe", b"Content-Type: multipart/mixed\n\n--"],
)
def test_malformed_mail_is_other_and_never_raises(raw: bytes) -> None:
    found = classify_email(raw)
    assert found.kind is InboundKind.OTHER
    json.dumps(found.headers)


def test_text_is_made_safe_for_the_database() -> None:
    raw = b"From: a@example.com\nSubject: hi\nContent-Type: text/plain; charset=utf-8\n\nnul\x00 and bad \xff bytes\n"
    found = classify_email(raw)
    assert found.text is not None
    assert "\x00" not in found.text
    found.text.encode("utf-8")


@pytest.mark.parametrize(
    "quote",
    [
        "On Mon, Nov 23, 2026 at 9:02 AM Sam Seller <sales@outbound.example> wrote:\n> hi",
        "On Mon, Nov 23, 2026 at 9:02 AM Sam Seller <sales@outbound.example>\nwrote:\n\n> hi",
        "-----Original Message-----\nFrom: Sam\nSent: Monday\nhi",
        "________________________________\nFrom: Sam Seller <sales@outbound.example>\nSent: Monday\nhi",
        "From: Sam Seller <sales@outbound.example>\nSent: Monday, November 23, 2026 9:02 AM\nTo: Jordan\nhi",
        "Am Mo., 23. Nov. 2026 um 09:02 Uhr schrieb Sam Seller <sales@outbound.example>:\n> hallo",
        "Le lun. 23 nov. 2026 à 09:02, Sam Seller <sales@outbound.example> a écrit :\n> salut",
        "> hi",
    ],
)
def test_strip_quoted_keeps_only_the_new_text(quote: str) -> None:
    assert strip_quoted(f"Tuesday works.\n\nJordan\n\n{quote}\n") == "Tuesday works.\n\nJordan"


def test_strip_quoted_keeps_a_line_that_merely_starts_with_on() -> None:
    assert strip_quoted("On Tuesday I am free.\nJordan") == "On Tuesday I am free.\nJordan"
