"""Email addresses, phone numbers and domains in the one form the database stores.

Contacts, suppressions and senders are matched by exact string equality in SQL, so
every way in (CSV import, CLI, inbound webhooks) must normalise the same way:
lowercase emails and domains, E.164 phone numbers.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import timezone as phone_timezone

from schemas.enums import Channel, SuppressionKind

MAX_EMAIL_LENGTH = 254
EMAIL_PATTERN = re.compile(
    r"^(?!\.)(?!.*\.\.)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}(?<!\.)"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def shorten(value: str, limit: int = 60) -> str:
    """A value cut to fit in one line of an error message."""
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def normalise_email(value: str) -> str:
    """Lowercased, trimmed email; ValueError naming the value when it is not an address."""
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(email):
        raise ValueError(f"email {shorten(value)!r} is not a valid email address")
    return email


def normalise_phone(value: str, default_region: str = "US") -> str:
    """A phone number in E.164 (`+14155550101`); numbers without `+` use `default_region`."""
    return normalise_phone_with_zone(value, default_region, find_zone=False)[0]


def normalise_phone_with_zone(
    value: str, default_region: str = "US", *, find_zone: bool = True
) -> tuple[str, str | None]:
    """The E.164 number and, when its prefix has exactly one, the number's IANA time zone.

    The zone is the fallback for contacts without one, so texts and calls respect the
    recipient's quiet hours (212 is New York; 800 or a mobile range spans many zones).
    """
    try:
        number = phonenumbers.parse(value, default_region.upper())
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(f"phone {shorten(value)!r} is not a valid phone number")
    zones = [zone for zone in phone_timezone.time_zones_for_number(number) if "/" in zone] if find_zone else []
    e164 = str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return e164, zones[0] if len(zones) == 1 else None


def normalise_suppression(value: str, *, default_region: str = "US") -> tuple[SuppressionKind, str]:
    """`@domain`, an email or a phone, as stored: lowercase domain/email, E.164 phone."""
    text = value.strip()
    if text.startswith("@"):
        domain = text[1:].lower()
        if not _DOMAIN.match(domain):
            raise ValueError(f"{shorten(value)!r} is not a valid domain (write it as @example.com)")
        return SuppressionKind.DOMAIN, domain
    if "@" in text:
        return SuppressionKind.EMAIL, normalise_email(text)
    try:
        return SuppressionKind.PHONE, normalise_phone(text, default_region)
    except ValueError:
        raise ValueError(f"{shorten(value)!r} is neither an email, a phone number nor an @domain") from None


def normalise_sender_address(channel: Channel, address: str) -> str:
    """An email for email senders, an E.164 number (with its +) for SMS and voicemail."""
    if channel is Channel.EMAIL:
        return normalise_email(address)
    if not address.strip().startswith("+"):
        raise ValueError(
            f"a {channel.value} sender needs a phone number in E.164 form (+15005550006), got {shorten(address)!r}"
        )
    return normalise_phone(address)
