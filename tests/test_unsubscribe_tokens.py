"""Unsubscribe links: signed, compact, url-safe, and refused when tampered with or expired."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from domain.unsubscribe_tokens import InvalidUnsubscribeToken, UnsubscribeClaim, sign_unsubscribe, verify_unsubscribe

KEY = b"k" * 32
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)


def token(**overrides: object) -> str:
    fields: dict[str, object] = {"contact_id": 42, "execution_id": 7, "expires_at": LATER} | overrides
    return sign_unsubscribe(KEY, **fields)  # type: ignore[arg-type]


def test_a_signed_token_verifies_to_what_was_signed() -> None:
    claim = verify_unsubscribe(KEY, token(), NOW)
    assert claim == UnsubscribeClaim(contact_id=42, execution_id=7, expires_at=LATER)


def test_a_token_without_an_execution_verifies_too() -> None:
    assert verify_unsubscribe(KEY, token(execution_id=None), NOW).execution_id is None


def test_tokens_are_compact_and_safe_in_a_url_path() -> None:
    signed = token(contact_id=10**12, execution_id=10**12)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", signed)
    assert len(signed) < 100


def test_tokens_carry_no_address() -> None:
    assert "@" not in token()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("1.42.", "1.43.", 1),  # another contact
        lambda t: t.replace(".7.", ".8.", 1),  # another execution
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # another signature
        lambda t: t.rsplit(".", 1)[0],  # no signature
        lambda t: t + ".1",  # an extra field
        lambda t: "",
        lambda t: "garbage",
        lambda t: t + "é",  # not ASCII
        lambda t: "x" * 500,
    ],
)
def test_tampered_or_malformed_tokens_are_refused_and_not_called_expired(tamper: object) -> None:
    forged = tamper(token())  # type: ignore[operator]
    with pytest.raises(InvalidUnsubscribeToken) as refused:
        verify_unsubscribe(KEY, forged, NOW)
    assert refused.value.expired is False


def test_a_longer_expiry_cannot_be_written_into_a_token() -> None:
    short = token(expires_at=NOW + timedelta(days=1))
    version, contact, execution, _, mac = short.split(".")
    stretched = ".".join([version, contact, execution, str(int(LATER.timestamp())), mac])
    with pytest.raises(InvalidUnsubscribeToken):
        verify_unsubscribe(KEY, stretched, NOW)


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(InvalidUnsubscribeToken):
        verify_unsubscribe(b"other" * 8, token(), NOW)


def test_an_expired_token_is_refused_as_expired() -> None:
    with pytest.raises(InvalidUnsubscribeToken) as refused:
        verify_unsubscribe(KEY, token(expires_at=NOW - timedelta(seconds=1)), NOW)
    assert refused.value.expired is True


def test_a_token_expires_exactly_at_its_expiry() -> None:
    with pytest.raises(InvalidUnsubscribeToken):
        verify_unsubscribe(KEY, token(expires_at=NOW), NOW)
    assert verify_unsubscribe(KEY, token(expires_at=NOW), NOW - timedelta(seconds=1)).contact_id == 42


def test_signing_refuses_what_could_never_verify() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sign_unsubscribe(KEY, contact_id=1, execution_id=None, expires_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        sign_unsubscribe(KEY, contact_id=0, execution_id=None, expires_at=LATER)
    with pytest.raises(ValueError, match="key"):
        sign_unsubscribe(b"", contact_id=1, execution_id=None, expires_at=LATER)
