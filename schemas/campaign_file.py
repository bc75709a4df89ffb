"""The campaign file a sales-ops person writes (YAML), validated field by field."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

from domain.durations import Span, parse_span
from schemas.enums import Channel

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _to_span(value: Any) -> Span:
    if isinstance(value, Span):
        return value
    if isinstance(value, dict):
        return Span(int(value.get("days", 0)), int(value.get("seconds", 0)))
    return parse_span(value)


SpanField = Annotated[Span, BeforeValidator(_to_span), PlainSerializer(str, return_type=str)]


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None
    return name


class SendingWindow(BaseModel):
    """When sends may go out, in the recipient's local time (fallback: the campaign's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    always: bool = False
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(17, 0)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        days = tuple(str(day).strip().lower()[:3] for day in value)
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown or not days:
            raise ValueError(f"days must be weekday names ({', '.join(WEEKDAYS)}), got {list(value)!r}")
        return days

    @model_validator(mode="after")
    def _order(self) -> SendingWindow:
        if not self.always and self.start >= self.end:
            raise ValueError("window start must be before its end")
        return self

    @property
    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(day) for day in self.days)


def _window(value: Any) -> Any:
    if value == "always":
        return SendingWindow(always=True)
    return value


class SenderPool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: list[str] = Field(default_factory=list)
    sms: list[str] = Field(default_factory=list)
    voicemail: list[str] = Field(default_factory=list)

    def for_channel(self, channel: Channel) -> list[str]:
        return list(getattr(self, channel.value))


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    day: int = Field(0, ge=0, le=365, description="Day offset of the step's group.")
    wait: SpanField = Field(default_factory=Span, description="Wait after the previous step.")
    subject: str | None = Field(
        None,
        description="Email: required for the campaign's first email and for `new_thread: true`; a follow-up"
        " in the same thread may leave it out and is sent as 'Re: <the thread's subject>'.",
    )
    body: str | None = None
    say: str | None = None
    audio_url: str | None = None
    new_thread: bool = False
    speak_to_humans: bool = Field(
        False, description="Voicemail: also play the message when a person answers (default: hang up)."
    )

    @model_validator(mode="after")
    def _content(self) -> StepSpec:
        if self.channel is Channel.EMAIL and not self.body:
            raise ValueError("an email step needs a body")
        if self.channel is Channel.SMS and not self.body:
            raise ValueError("an sms step needs a body")
        if self.channel is Channel.VOICEMAIL and not (self.say or self.audio_url):
            raise ValueError("a voicemail step needs `say` text or an `audio_url`")
        if self.channel is Channel.VOICEMAIL and self.audio_url and not re.match(r"^https?://", self.audio_url):
            raise ValueError("audio_url must be an http(s) URL")
        return self

    def templates(self) -> dict[str, str]:
        """The fields of this step that are Jinja templates, by name."""
        names = ("subject", "body", "say")
        return {name: value for name in names if (value := getattr(self, name))}


class VerificationRequirement(BaseModel):
    """Which contacts an email campaign reaches, by their last email verification."""

    model_config = ConfigDict(extra="forbid")

    require: Literal["deliverable", "not_undeliverable"] = Field(
        description="`deliverable`: only addresses verified deliverable; `not_undeliverable`: any but"
        " undeliverable (risky and unknown pass)."
    )
    max_age: SpanField = Field(
        default_factory=lambda: Span(days=30),
        description="A verdict older than this is checked again before the first step (e.g. 30d).",
    )

    def accepts(self, status: str | None) -> bool:
        if self.require == "deliverable":
            return status == "deliverable"
        return status != "undeliverable"


class AiText(BaseModel):
    """A text a model writes per contact (`{{ ai.<name> }}`), from a prompt file."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The prompt file, relative to the campaign file (a Jinja template).")
    default: str = Field(
        min_length=1, description="The template used for a contact the model wrote nothing for (never empty)."
    )
    max_chars: int = Field(300, ge=20, le=2000, description="The longest text accepted from the model.")
    prompt_text: str | None = Field(
        None, description="The prompt file's text, read when the campaign is created (workers need no file)."
    )


AI_NAME = r"^[a-z][a-z0-9_]{0,39}$"


class CampaignFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"
    lead_groups: list[str] = Field(min_length=1)
    senders: SenderPool
    window: Annotated[SendingWindow, BeforeValidator(_window)] = Field(default_factory=SendingWindow)
    send_gap: SpanField = Field(default_factory=lambda: Span(seconds=0), description="Spacing per sender.")
    jitter: SpanField = Field(default_factory=lambda: Span(seconds=0), description="Random extra spacing.")
    quiet_hours: bool = Field(True, description="SMS and calls only 08:00-21:00 recipient-local.")
    skip_active_elsewhere: bool = Field(True, description="Skip contacts active in another campaign.")
    postal_address: str | None = Field(
        None,
        min_length=5,
        max_length=500,
        description="The sender's physical postal address, in every email's footer (CAN-SPAM); an email"
        " campaign without it takes the workspace default (`outbound workspace set --postal-address`).",
    )
    verification: VerificationRequirement | None = Field(
        None,
        description="Skip contacts whose address does not meet `require` (reason `unverified`); those"
        " without a verdict younger than `max_age` are verified before the first step.",
    )
    ai: dict[Annotated[str, StringConstraints(pattern=AI_NAME)], AiText] = Field(
        default_factory=dict,
        description="Texts a language model writes per contact before the first step: `{{ ai.first_line }}`.",
    )
    steps: list[StepSpec] = Field(min_length=1, max_length=50)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return validate_timezone(value)

    @model_validator(mode="after")
    def _senders_for_steps(self) -> CampaignFile:
        for index, step in enumerate(self.steps):
            if not self.senders.for_channel(step.channel):
                raise ValueError(
                    f"steps[{index}] uses channel {step.channel.value} but senders.{step.channel.value} is empty"
                )
        emails = [(index, step) for index, step in enumerate(self.steps) if step.channel is Channel.EMAIL]
        for order, (index, step) in enumerate(emails):
            if not step.subject and (order == 0 or step.new_thread):
                why = "the campaign's first email" if order == 0 else "an email that starts a new thread"
                raise ValueError(
                    f"steps[{index}]: {why} needs a subject (only a follow-up in the same thread may leave it"
                    " out: it is sent as 'Re: <the thread's subject>')"
                )
        if self.send_gap.days or self.jitter.days:
            raise ValueError("send_gap and jitter must be below a day (use s, m or h)")
        if self.verification is not None and not emails:
            raise ValueError("verification: checks email addresses, and this campaign has no email step")
        return self
