"""Twilio's webhooks: inbound SMS, status callbacks and the voicemail TwiML.

Every request must carry a valid `X-Twilio-Signature`, or anyone who finds the URL
could opt numbers out, fake deliveries or read a step's script. Twilio signs the URL
it called, which behind a proxy or tunnel is the public URL and not what this process
sees, so the signature is checked against `public_base_url` + path + query.
Nothing here logs phone numbers or message bodies; SIDs and execution ids are enough.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import (
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from db.engine import SessionFactory, unit_of_work
from db.models import Contact, Step, StepExecution
from db.webhook_events import SmsAction, receive_sms, record_delivery_status
from domain.templates import TemplateRenderError, contact_context, render_template
from domain.voicemail_twiml import voicemail_twiml
from runtime.settings import Settings
from schemas.enums import Channel

log = logging.getLogger("outbound.api.twilio")
SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
TWIML = "application/xml"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VoicemailContent:
    say: str | None
    audio_url: str | None
    speak_to_humans: bool = False


class FormParams(dict[str, list[str]]):
    """Form fields with every value of a repeated one, in the shape `RequestValidator`
    reads (`getlist`): Twilio signs all values, so dropping one would fail the check."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def public_url(settings: Settings, request: Request) -> str:
    """The URL Twilio called: our public base, then the path and query this request has."""
    query = request.url.query
    return settings.public_base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def verified_form(request: Request, settings: Settings) -> dict[str, str]:
    """The form parameters of a request Twilio really sent; 403 for anything else.

    503 when no auth token is configured: the webhooks cannot tell Twilio from anyone
    else then, and refusing loudly beats accepting everything.
    """
    token = settings.twilio.auth_token
    if token is None or not token.get_secret_value():
        raise HTTPException(503, "Twilio webhooks are disabled: OUTBOUND_TWILIO__AUTH_TOKEN is not set")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise HTTPException(403, f"missing {SIGNATURE_HEADER}")
    form = await request.form()
    params = FormParams({name: [v for v in form.getlist(name) if isinstance(v, str)] for name in form})
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    validator = RequestValidator(token.get_secret_value())
    if not validator.validate(public_url(settings, request), params, signature, algorithm):
        log.warning("rejected a %s with an invalid Twilio signature", request.url.path.split("/")[2])
        raise HTTPException(403, f"invalid {SIGNATURE_HEADER}")
    return {name: values[0] for name, values in params.items() if values}


def twilio_router(settings: Settings, sessions: SessionFactory, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(prefix="/twilio")

    async def in_transaction(work: Callable[[Session], T]) -> T:
        def run() -> T:
            with unit_of_work(sessions) as session:
                return work(session)

        return await run_in_threadpool(run)

    @router.post("/sms")
    async def inbound_sms(request: Request) -> Response:
        """Answers with an empty TwiML response: with Twilio's opt-out handling on (the
        default), Twilio itself confirms STOP / START / HELP and blocks anything else sent
        to a number that opted out, so a confirmation of ours would be a duplicate."""
        form = await verified_form(request, settings)
        sid = form.get("MessageSid") or form.get("SmsSid")
        if not sid or not form.get("From"):
            raise HTTPException(400, "MessageSid and From are required")
        now = clock()
        action: SmsAction = await in_transaction(
            lambda session: receive_sms(
                session,
                message_sid=sid,
                from_phone=form["From"],
                to_phone=form.get("To", ""),
                body=form.get("Body", ""),
                now=now,
                opt_out_type=form.get("OptOutType"),
            )
        )
        log.info("inbound SMS %s: %s%s", sid, action.intent.value, " (seen before)" if action.duplicate else "")
        return Response(str(MessagingResponse()), media_type=TWIML)

    @router.post("/status")
    async def status_callback(request: Request) -> Response:
        """Message callbacks carry MessageSid/MessageStatus/ErrorCode; call callbacks
        CallSid/CallStatus and, with machine detection, AnsweredBy (the asynchronous AMD
        callback has AnsweredBy without CallStatus). An unknown SID is answered 200 too:
        Twilio does not retry, and telling it an error would only fill its debugger."""
        form = await verified_form(request, settings)
        if form.get("MessageSid"):
            sid, status = form["MessageSid"], form.get("MessageStatus") or form.get("SmsStatus")
        elif form.get("CallSid"):
            sid, status = form["CallSid"], form.get("CallStatus")
        else:
            raise HTTPException(400, "MessageSid or CallSid is required")
        now = clock()
        found = await in_transaction(
            lambda session: record_delivery_status(
                session,
                provider_sid=sid,
                status=status,
                error_code=form.get("ErrorCode"),
                answered_by=form.get("AnsweredBy"),
                now=now,
            )
        )
        if not found:
            log.info("status callback for unknown SID %s (%s) ignored", sid, status)
        return Response(status_code=204)

    @router.post("/voice/{execution_id}")
    async def voicemail(execution_id: int, request: Request) -> Response:
        """The TwiML Twilio fetches once machine detection has decided (`AnsweredBy`)."""
        form = await verified_form(request, settings)
        now = clock()

        def load(session: Session) -> VoicemailContent | None:
            if form.get("CallSid"):
                record_delivery_status(
                    session,
                    provider_sid=form["CallSid"],
                    status=form.get("CallStatus"),
                    error_code=None,
                    answered_by=form.get("AnsweredBy"),
                    now=now,
                )
            return voicemail_content(session, execution_id)

        content = await in_transaction(load)
        if content is None:
            response = VoiceResponse()
            response.hangup()
            return Response(str(response), media_type=TWIML)
        twiml = voicemail_twiml(
            answered_by=form.get("AnsweredBy"),
            say=content.say,
            audio_url=content.audio_url,
            speak_to_humans=content.speak_to_humans,
        )
        log.info("voicemail TwiML for execution %d (answered by %s)", execution_id, form.get("AnsweredBy"))
        return Response(twiml, media_type=TWIML)

    return router


def voicemail_content(session: Session, execution_id: int) -> VoicemailContent | None:
    """The step's recording or its text rendered for the contact; None (hang up) when the
    execution is gone, is not a voicemail or its text cannot be rendered."""
    row = session.execute(
        select(Step, Contact)
        .join(StepExecution, StepExecution.step_id == Step.id)
        .join(Contact, Contact.id == StepExecution.contact_id)
        .where(StepExecution.id == execution_id)
    ).first()
    if row is None or row[0].channel != Channel.VOICEMAIL.value:
        log.warning("voicemail TwiML asked for execution %d, which is not a voicemail", execution_id)
        return None
    step, contact = row
    say = None
    if step.say:
        try:
            say = render_template(step.say, contact_context(contact), field=f"step {step.position} say")
        except TemplateRenderError as error:
            log.warning("voicemail for execution %d cannot be rendered: %s", execution_id, error)
            if not step.audio_url:
                return None
    return VoicemailContent(say, step.audio_url, step.speak_to_humans)
