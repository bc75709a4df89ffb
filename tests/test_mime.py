"""The MIME every email provider sends: alternatives, threading headers, the idempotency key."""

from __future__ import annotations

import random
import re
import string
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from providers.base import OutgoingMessage
from providers.mime import _POLICY, build_email, reference_chain, serialise, text_to_html
from providers.outbox import OutboxProvider
from schemas.enums import Channel

UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://outbound.example/u/tok3n>, <mailto:unsubscribe@outbound.example?subject=tok3n>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def message(**overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "execution_id": 42,
        "key": "<outbound.7.42@sales.example>",
        "channel": Channel.EMAIL,
        "sender_address": "rep@sales.example",
        "to": "jane@acme.test",
        "subject": "Quick idea for Acme",
        "body": "Hi Jane,\n\nI had an idea.\nWorth a call?\n\nRep",
        "headers": dict(UNSUBSCRIBE),
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def reparse(mail: Message) -> EmailMessage:
    """What a receiving client sees: the message serialised for the wire, parsed again."""
    parsed = BytesParser(policy=policy.default).parsebytes(serialise(mail, crlf=True))
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_identify_the_execution_and_sender() -> None:
    sent_at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    mail = reparse(build_email(message(), date=sent_at))

    assert mail["From"] == "rep@sales.example"
    assert mail["To"] == "jane@acme.test"
    assert mail["Subject"] == "Quick idea for Acme"
    assert parsedate_to_datetime(str(mail["Date"])) == sent_at
    assert mail["Message-ID"] == "<outbound.7.42@sales.example>"
    assert mail["X-Outbound-Execution"] == "42"
    assert mail["In-Reply-To"] is None
    assert mail["References"] is None
    assert not mail.defects


def test_one_click_unsubscribe_headers_are_carried() -> None:
    mail = reparse(build_email(message()))

    assert mail["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_text_and_html_alternatives() -> None:
    mail = reparse(build_email(message(html="<p>Hi <b>Jane</b></p>")))

    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().replace("\r\n", "\n").rstrip("\n") == message().body
    assert parts[1].get_content().strip() == "<p>Hi <b>Jane</b></p>"


def test_html_alternative_is_derived_from_text_when_absent() -> None:
    body = "Hi <Jane> & team,\n\nSee https://acme.test/page?a=1&b=2.\nThanks\n\n\nRep"
    mail = reparse(build_email(message(body=body)))

    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert "<p>Hi &lt;Jane&gt; &amp; team,</p>" in content
    assert '<a href="https://acme.test/page?a=1&amp;b=2">https://acme.test/page?a=1&amp;b=2</a>.<br>' in content
    assert "<p>Rep</p>" in content
    assert "<Jane>" not in content


def test_text_to_html_escapes_quotes_around_links() -> None:
    rendered = text_to_html('Go to "https://acme.test/x" now')

    assert '&quot;<a href="https://acme.test/x">https://acme.test/x</a>&quot;' in rendered


def test_follow_up_carries_threading_headers() -> None:
    first, second = "<outbound.7.40@sales.example>", "<CAF00@mail.gmail.com>"
    mail = reparse(
        build_email(
            message(subject="Re: Quick idea for Acme", in_reply_to=second, references=(first, second), thread_id="t1")
        )
    )

    assert mail["In-Reply-To"] == second
    assert str(mail["References"]).split() == [first, second]
    assert mail["Subject"] == "Re: Quick idea for Acme"


def test_references_end_with_the_parent() -> None:
    assert reference_chain(("<a@x>", "<b@x>"), "<a@x>") == ["<b@x>", "<a@x>"]
    assert reference_chain((), "p@x") == ["<p@x>"]
    assert reference_chain(("<a@x>",), None) == ["<a@x>"]
    assert reference_chain((), None) == []


def test_keys_without_angle_brackets_are_normalised() -> None:
    mail = build_email(message(key="outbound.7.42@sales.example", in_reply_to="parent@sales.example"))

    assert mail["Message-ID"] == "<outbound.7.42@sales.example>"
    assert mail["In-Reply-To"] == "<parent@sales.example>"


def test_non_ascii_subject_and_body_round_trip() -> None:
    mail = reparse(build_email(message(subject="Idée pour Zoë — 10 €", body="Grüße aus Köln ☕")))

    assert mail["Subject"] == "Idée pour Zoë — 10 €"
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    assert plain.get_content().strip() == "Grüße aus Köln ☕"
    assert all(ord(ch) < 128 for ch in mail.as_string(policy=policy.SMTP))


def test_body_lines_are_sent_as_written() -> None:
    body = "From the whole team:\nthanks.\n" + "x" * 1500
    plain = reparse(build_email(message(body=body))).get_body(preferencelist=("plain",))

    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == body
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"  # a line past RFC 5322's 998


def test_ascii_text_stays_readable_in_the_file() -> None:
    raw = serialise(build_email(message()))

    assert b"Hi Jane,\n\nI had an idea.\nWorth a call?" in raw
    assert b"\r\n" not in raw
    assert b"\r\n" in serialise(build_email(message()), crlf=True)


def test_a_long_unsubscribe_link_reads_back_unchanged() -> None:
    link = f"<https://outbound.example/unsubscribe/{'t' * 300}>"
    mail = reparse(build_email(message(headers={"List-Unsubscribe": link})))

    assert str(mail["List-Unsubscribe"]) == link


def test_a_long_non_ascii_subject_is_folded_into_short_encoded_words() -> None:
    subject = "Idée pour Zoë — 10 € " * 40
    mail = build_email(message(subject=subject))
    raw = serialise(mail, crlf=True)

    assert reparse(mail)["Subject"] == subject.strip()
    header_lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert all(len(line) <= 998 for line in header_lines)
    assert all(len(word) <= 75 for word in re.findall(rb"=\?utf-8\?b\?[^?]*\?=", raw))


def test_extra_headers_cannot_carry_line_breaks() -> None:
    with pytest.raises(ValueError, match="line break"):
        build_email(message(headers={"List-Unsubscribe": "<https://x.test/u>\r\nBcc: victim@evil.test"}))


def test_a_rendered_subject_cannot_inject_headers() -> None:
    mail = reparse(build_email(message(subject="Hello\r\nBcc: victim@evil.test")))

    assert mail["Subject"] == "Hello Bcc: victim@evil.test"
    assert mail["Bcc"] is None


def test_extra_headers_cannot_override_structural_ones() -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        build_email(message(headers={"Message-ID": "<other@x>"}))


def test_outbox_writes_the_same_mime(tmp_path: Path) -> None:
    outgoing = message(in_reply_to="<outbound.7.40@sales.example>", references=("<outbound.7.40@sales.example>",))
    OutboxProvider(tmp_path).send(outgoing)

    written = BytesParser(policy=policy.default).parsebytes((tmp_path / "email" / "42.eml").read_bytes())
    assert written["Message-ID"] == outgoing.key
    assert written["X-Outbound-Execution"] == "42"
    assert written["In-Reply-To"] == "<outbound.7.40@sales.example>"
    assert written["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in written.iter_parts()] == ["text/plain", "text/html"]


DATE = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def _compat32_as_configured(linesep: str) -> policy.Compat32:
    return policy.compat32.clone(linesep=linesep, mangle_from_=False, max_line_length=998)


@pytest.mark.parametrize("crlf", [False, True])
def test_messages_flatten_exactly_as_compat32_would(crlf: bool) -> None:
    """Headers that need no folding are written directly; the bytes must not change."""
    for mail in (
        build_email(message(), date=DATE),
        build_email(message(subject="Café ☕ " * 30, body="Grüße\n" + "x" * 1200), date=DATE),
        build_email(message(in_reply_to="<a@b>", references=("<r1@b>", "<r2@b>")), date=DATE),
    ):
        assert serialise(mail, crlf=crlf) == mail.as_bytes(policy=_compat32_as_configured("\r\n" if crlf else "\n"))


def test_every_header_value_folds_exactly_as_compat32_would() -> None:
    rnd = random.Random(8)
    alphabet = string.ascii_letters + string.digits + " \t;,:<>@=\"'()[]./-_!?  "
    values = ["", " ", "  a", "a  b", "a ", "\tx", "=?utf-8?q?x?=", "a" * 990, "a" * 996, "a " * 498, "é", "a\nb"]
    values += ["".join(rnd.choices(alphabet, k=rnd.choice([1, 40, 200, 990, 996, 997, 1200]))) for _ in range(2000)]
    reference = _compat32_as_configured("\n")
    for value in values:
        for name in ("Subject", "List-Unsubscribe"):
            assert _POLICY.fold_binary(name, value) == reference.fold_binary(name, value), (name, value)


def test_the_parts_boundary_follows_the_message_and_never_occurs_in_its_text() -> None:
    first, again = build_email(message(), date=DATE), build_email(message(), date=DATE)
    boundary = first.get_boundary()
    assert boundary
    assert boundary == again.get_boundary(), "the same message, the same boundary"
    assert build_email(message(key="<outbound.7.43@sales.example>")).get_boundary() != boundary
    assert serialise(first) == serialise(again)

    # A body that holds the boundary it would get is given another one, and still parses
    # back into the two alternatives exactly as written.
    body = f"Hi Jane,\n--{boundary}\nnot a part\n"
    colliding = build_email(message(body=body), date=DATE)
    parsed = reparse(colliding)
    assert parsed.get_boundary() not in (None, boundary)
    plain = parsed.get_body(preferencelist=("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == body
    assert len(list(parsed.iter_parts())) == 2
