"""What a reply means for the sales team: interested, not interested, a meeting request, a
referral (to whom), out of office (until when), an unsubscribe request, or unclear.

A language model decides when one is configured (`runtime.ai`); these rules decide when it
is not, or when its call fails or answers nonsense. They read only the reply's new text
(quoted history removed) and prefer "unclear" to a confident mistake: a wrong
"not interested" drops a lead, a wrong "meeting request" wastes a rep's call.

Mail the mail classifier already recognised needs no judge for its intent: an automatic
reply is out of office (only its return date is read), an opt-out is an unsubscribe request.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ReplyIntent(StrEnum):
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    MEETING_REQUEST = "meeting_request"
    REFERRAL = "referral"
    OUT_OF_OFFICE = "out_of_office"
    UNSUBSCRIBE_REQUEST = "unsubscribe_request"
    UNCLEAR = "unclear"


class Referral(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)


class IntentVerdict(BaseModel):
    """The contract a model's answer must meet (anything else falls back to the rules)."""

    model_config = ConfigDict(extra="ignore")

    intent: ReplyIntent
    referral: Referral | None = None  # referral: the person named, if any
    return_date: date | None = None  # out of office: back on, if given
    source: str = "rules"  # "rules" or the model's name


_QUOTE_MARKERS = re.compile(
    r"^(>|On .{0,200}wrote:|-{2,} ?Original Message|From: .+|Sent from my )", re.IGNORECASE | re.MULTILINE
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_RULES: list[tuple[ReplyIntent, re.Pattern[str]]] = [
    (ReplyIntent.UNSUBSCRIBE_REQUEST, re.compile(
        r"\b(unsubscribe|remove me|take me off|stop (emailing|contacting|sending)|do not (email|contact))\b", re.I)),
    (ReplyIntent.OUT_OF_OFFICE, re.compile(
        r"\b(out of (the )?office|on (annual |parental |sick )?leave|on vacation|away from (my desk|the office)|"
        r"limited access to (my )?email)\b", re.I)),
    (ReplyIntent.REFERRAL, re.compile(
        r"\b(reach out to|contact (my colleague|our)|(better|right) person (is|would be)|"
        r"forward(ed|ing)? (this|your (email|note)) to|cc'?ing|handles? (this|that))\b", re.I)),
    (ReplyIntent.NOT_INTERESTED, re.compile(
        r"\b(not interested|no thanks|no, thank|not a (good )?fit|we('re| are) (all )?set|not (right )?now|"
        r"already (use|have|work with))\b", re.I)),
    (ReplyIntent.MEETING_REQUEST, re.compile(
        r"\b(book a (call|meeting|time)|schedule (a )?(call|meeting|time)|calendly|let'?s (talk|chat|meet)|"
        r"(free|available) (on|at|for a call|next)|send (me )?(an )?invite|hop on a call)\b", re.I)),
    (ReplyIntent.INTERESTED, re.compile(
        r"\b(interested|sounds (good|great|interesting)|tell me more|more (info|information|details)|"
        r"send (me )?(more|the deck|pricing)|curious)\b", re.I)),
]  # fmt: skip
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")],
        start=1,
    )
    for name in names
}  # fmt: skip


def _written_date(order: str) -> str:
    """A date in words: "14(th) (of) January(, 2027)" for order "dm", "January 14(th)(, 2027)"
    for "md"; the groups are named after the order, so both can live in one pattern."""
    month = rf"(?P<{order}_month>{'|'.join(sorted(_MONTHS, key=len, reverse=True))})\.?(?![a-z])"
    day = rf"(?P<{order}_day>[0-3]?\d)(?:st|nd|rd|th)?(?!\d)"
    year = rf"(?:,?\s+(?P<{order}_year>20\d\d)\b)?"
    return rf"\b{day}(?:\s+of)?\s+{month}{year}" if order == "dm" else rf"\b{month}\s+{day}{year}"


_DATE = re.compile(rf"\b(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})\b|{_written_date('dm')}|{_written_date('md')}", re.I)
STALE_NOTICE = timedelta(days=31)  # a yearless date this long before arrival is next year's


def new_text(body: str) -> str:
    """The reply's own words: everything before the quoted history."""
    marker = _QUOTE_MARKERS.search(body)
    return (body[: marker.start()] if marker else body).strip()


def intent_by_rules(body: str, received: date | None = None) -> IntentVerdict:
    """`received`: the day the reply arrived, which completes a return date given without a
    year ("back on 14 January"); without it only dates with a year are read."""
    text = new_text(body)
    for intent, pattern in _RULES:
        if pattern.search(text):
            return IntentVerdict(intent=intent, **_details(intent, text, received))
    return IntentVerdict(intent=ReplyIntent.UNCLEAR)


def automatic_reply_intent(judged: IntentVerdict | None, body: str, received: date | None = None) -> IntentVerdict:
    """An automatic reply's intent: out of office, whatever the judge read in it. It is nobody's
    answer, so a notice that mentions unsubscribing (Outlook's often do) is no request to, and
    any other autoresponder's means for outreach what an absence does: no one has read it yet.
    The return date is the judge's when it named one, else the one the rules read; the source
    is the judge only when it too said out of office."""
    agreed = judged is not None and judged.intent is ReplyIntent.OUT_OF_OFFICE
    back = judged.return_date if judged is not None else None
    return IntentVerdict(
        intent=ReplyIntent.OUT_OF_OFFICE,
        return_date=back or return_date(new_text(body), received),
        source=judged.source if judged is not None and agreed else "rules",
    )


def opt_out_intent() -> IntentVerdict:
    """An opt-out the mail classifier recognised (in the first lines of the new text): nothing
    left for a judge to read."""
    return IntentVerdict(intent=ReplyIntent.UNSUBSCRIBE_REQUEST)


def return_date(text: str, received: date | None = None) -> date | None:
    """The latest date the text names (a notice says when the absence starts, then when it
    ends), a yearless one completed from `received`: this year's, or next year's when this
    year's would be more than a month before arrival ("back on 14 January" sent in December)."""
    dates = [found for match in _DATE.finditer(text) if (found := _as_date(match, received)) is not None]
    return max(dates, default=None)


def _as_date(match: re.Match[str], received: date | None) -> date | None:
    if match["iso"]:
        try:
            return date.fromisoformat(match["iso"])
        except ValueError:
            return None
    prefix = "dm" if match["dm_month"] else "md"
    month, day, year = _MONTHS[match[f"{prefix}_month"].lower()], int(match[f"{prefix}_day"]), match[f"{prefix}_year"]
    try:
        if year is not None:
            return date(int(year), month, day)
        if received is None:
            return None
        found = date(received.year, month, day)
        return found if found >= received - STALE_NOTICE else date(received.year + 1, month, day)
    except ValueError:  # 31 February, 29 February outside a leap year
        return None


def _details(intent: ReplyIntent, text: str, received: date | None) -> dict[str, object]:
    if intent is ReplyIntent.REFERRAL:
        address = _EMAIL.search(text)
        return {"referral": Referral(email=address.group(0)) if address else None}
    if intent is ReplyIntent.OUT_OF_OFFICE:
        return {"return_date": return_date(text, received)}
    return {}
