"""What an inbound text means for outreach: opt-out, opt-in, help, or a reply.

Pure: the webhook handler (`db.webhook_events.receive_sms`) applies the result.
"""

from __future__ import annotations

import re
from enum import StrEnum

# Twilio's Advanced Opt-Out defaults (the FCC's 2025 revocation rule added OPTOUT and REVOKE).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "REVOKE"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
_TWILIO_OPT_OUT_TYPES = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
_PUNCTUATION = " \t\r\n.!?,;:'\"()[]"
_SPACES = re.compile(r"\s+")


class SmsIntent(StrEnum):
    """What an inbound text means for outreach; also stored as its classification."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    REPLY = "reply"


def classify_sms(body: str, opt_out_type: str | None = None) -> SmsIntent:
    """The intent of a text by its whole trimmed message, case-insensitively.

    Twilio's `OptOutType` (sent when Advanced Opt-Out matched, custom keywords included)
    wins; otherwise the default keywords, with surrounding punctuation ignored so "Stop."
    opts out too: honouring an opt-out more readily than the carrier does is the safe side.
    """
    if opt_out_type and opt_out_type.strip().upper() in _TWILIO_OPT_OUT_TYPES:
        return SmsIntent(_TWILIO_OPT_OUT_TYPES[opt_out_type.strip().upper()])
    text = _SPACES.sub(" ", body.strip(_PUNCTUATION).upper())
    if text in OPT_OUT_KEYWORDS:
        return SmsIntent.OPT_OUT
    if text in OPT_IN_KEYWORDS:
        return SmsIntent.OPT_IN
    if text in HELP_KEYWORDS:
        return SmsIntent.HELP
    return SmsIntent.REPLY
