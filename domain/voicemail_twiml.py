"""What a voicemail drop says once Twilio's answering-machine detection has decided.

The call is created with `MachineDetection=DetectMessageEnd` and synchronous AMD, so
Twilio fetches the call's TwiML only after the greeting has finished (or a person
answered) and passes the verdict as `AnsweredBy`. This function turns that verdict into
TwiML; it is pure so the API service's webhook stays a thin adapter.
"""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

DEFAULT_VOICE = "Polly.Joanna"

# `unknown` means detection could not decide within its timeout, which in practice is
# mostly long greetings or silent mailboxes: leaving the message is what the user asked for.
MACHINE_ANSWERS = frozenset(
    {"machine_end_beep", "machine_end_silence", "machine_end_other", "machine_start", "unknown"}
)
HUMAN_ANSWERS = frozenset({"human"})


def is_machine(answered_by: str | None) -> bool:
    """A missing verdict (AMD disabled or a caller that does not send it) counts as a machine,
    like `unknown`: the call only exists to leave a message."""
    return answered_by is None or answered_by.strip().lower() in MACHINE_ANSWERS


def voicemail_twiml(
    *,
    answered_by: str | None,
    say: str | None,
    audio_url: str | None,
    speak_to_humans: bool = False,
    voice: str = DEFAULT_VOICE,
    language: str | None = None,
) -> str:
    """TwiML for one voicemail drop.

    A person who picks up hears nothing and the call ends, unless the step explicitly
    allows speaking to humans: a recorded pitch played at a live person is what makes
    ringless-voicemail campaigns feel like robocalls. A fax never gets the message.
    The recording wins over the text when both are given, because the user recorded it.
    """
    response = VoiceResponse()
    verdict = (answered_by or "").strip().lower()
    wants_message = is_machine(answered_by) or (verdict in HUMAN_ANSWERS and speak_to_humans)
    if wants_message:
        if audio_url:
            response.play(audio_url)
        elif say:
            response.say(say, voice=voice, language=language)
    response.hangup()
    return str(response)
