"""The send activity: one message for one (step, contact), exactly once (DESIGN R3).

Order matters: render first (a template error is permanent and uses no quota); then one
send of the sender's quota is claimed and the row passes the gate into SENDING (a refused
gate gives the claim back); then the provider call; then SENT is recorded. Each of those
statements commits by itself (see db/sending.py). A retry that finds the row SENDING asks
the provider before sending again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.message_links import MessageLinks
from activities.send_heartbeat import SendHeartbeat, row_hold
from activities.send_observer import SendObservation, SendObserver
from db.engine import SessionFactory, Statements, engine_of, single_statements, unit_of_work
from db.mailboxes import disable_sender, exhaust_quota, note_throttling
from db.sending import (
    Entry,
    SendContext,
    ai_texts,
    attempts_after_failure,
    cancel_sending,
    claim_retry,
    close_row,
    dead_letter,
    enter_sending,
    gate_refusal,
    hold_time,
    load_context,
    mark_sent,
    previous_email,
    release_attempt,
    reschedule,
    retry_later,
    thread_subject,
    waiting_to_retry,
)
from domain.calendar import LocalWindow, day_bounds, local_day, zone
from domain.compliance import with_footer
from domain.templates import TemplateRenderError, contact_context, render_template
from providers.base import DeliveryUnknown, FailureKind, OutgoingMessage, Provider, ProviderError, SentReceipt
from runtime.settings import MailboxPauseSettings
from schemas.activity_io import (
    BatchItem,
    SendBatchInput,
    SendBatchResult,
    SendInput,
    SendResult,
    SettleInput,
    SettleResult,
)
from schemas.campaign_file import CampaignFile
from schemas.enums import CampaignStatus, Channel, ExecutionStatus, SendOutcome
from schemas.events import ContactRef, MessageData
from schemas.workflow_io import SendRetry

# A retry held back by a pause comes this long after its end, so clocks that disagree by
# milliseconds (the server's attempt time, the worker's) cannot make it meet the pause again.
PAUSE_MARGIN = timedelta(seconds=1)
SETTLE_PAGE = 1000  # waiting messages settled per call of `settle_cancelled` (a page)


def effective_now(workflow_now: datetime) -> datetime:
    """The latest of the workflow's clock, the wall clock and the server's time for this
    attempt: real time in production, the server's (skipped-ahead) time under the
    time-skipping test server, also for a retry whose input still carries the first
    attempt's time."""
    moments = [workflow_now, datetime.now(UTC)]
    if activity.in_activity():
        moments.append(activity.info().current_attempt_scheduled_time)
    return max(moments)


def message_key(context: SendContext) -> str:
    domain = context.sender.address.split("@")[-1] if "@" in context.sender.address else "outbound.invalid"
    return f"<outbound.{context.campaign.id}.{context.execution.id}@{domain}>"


class SendActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        providers: Mapping[str, Provider],
        links: MessageLinks | None = None,
        observer: SendObserver | None = None,
        mailbox_pause: MailboxPauseSettings | None = None,
    ) -> None:
        self.sessions = sessions
        self.observer = observer or SendObserver()
        self.mailbox_pause = mailbox_pause or MailboxPauseSettings()
        self.engine = engine_of(sessions)
        self.providers = providers
        self.links = links or MessageLinks("http://localhost:8080", None, 90)

    @activity.defn
    def send_message(self, request: SendInput) -> SendResult:
        """One attempt; its outcome is counted and logged once, whichever way it ends."""
        seen = SendObservation(request.execution_id)
        try:
            # Heartbeats let a cancel reach the attempt: it finishes its message first.
            with self._heartbeat(request.now) as heartbeat, _shielded():
                result = self._send_message(request, seen, heartbeat)
        except Exception as error:
            self.observer.failed(seen, error)
            raise
        self.observer.finished(seen, result)
        return result

    @activity.defn
    def send_batch(self, request: SendBatchInput) -> SendBatchResult:
        """Several messages of one sender, one after the other, each as `send_message` sends
        it: its own gate, exactly-once protocol and outcome. A message that fails goes back
        to its row to wait for its next attempt (or is dead-lettered) and the batch goes on.
        The heartbeat carries the outcomes so far: after a crash the retry of this activity
        resumes with the first message it had not finished. The step workflow stops waiting
        for a batch it lets go of; a cancel then stops the batch between two messages."""
        done = _resumed_items(activity.info().heartbeat_details if activity.in_activity() else ())
        finished = {item.execution_id for item in done}
        with self._heartbeat(request.now) as heartbeat:
            for execution_id in request.execution_ids:
                if execution_id in finished:
                    continue
                if activity.in_activity() and activity.is_cancelled():
                    break
                done.append(self._send_in_batch(request, execution_id, heartbeat))
                heartbeat.progress([item.model_dump(mode="json") for item in done])
        return SendBatchResult(items=done)

    def _send_in_batch(self, request: SendBatchInput, execution_id: int, heartbeat: SendHeartbeat) -> BatchItem:
        seen = SendObservation(execution_id)
        try:
            # A cancel lands between messages, never between a provider call and its record.
            with _shielded():
                result = self._send_message(SendInput(execution_id=execution_id, now=request.now), seen, heartbeat)
        except ApplicationError as error:
            self.observer.failed(seen, error)
            return self._failed_in_batch(execution_id, error, request.retry, effective_now(request.now))
        self.observer.finished(seen, result)
        return BatchItem(execution_id=execution_id, outcome=result.outcome, detail=_short(result.detail))

    def _failed_in_batch(
        self, execution_id: int, error: ApplicationError, retry: SendRetry, now: datetime
    ) -> BatchItem:
        """Where a failed message of a batch goes: the dead letters when it cannot succeed or
        has had its attempts, else back to its row with its next time (the policy's backoff,
        or the provider's own when it said one). Another attempt holding the row keeps it."""
        error_type = error.type or "ApplicationError"
        if error_type == "AttemptInProgress":
            return BatchItem(execution_id=execution_id, outcome=SendOutcome.RETRYING, detail="held by another attempt")
        with single_statements(self.engine) as db:
            attempts = attempts_after_failure(db, execution_id)
            if attempts is None:
                return BatchItem(execution_id=execution_id, outcome=SendOutcome.ALREADY_DONE, detail="row closed")
            if not error.non_retryable and attempts < retry.maximum_attempts:
                delay = error.next_retry_delay or timedelta(seconds=retry.delay(attempts))
                if retry_later(db, execution_id, now + delay, now) is None:
                    return BatchItem(execution_id=execution_id, outcome=SendOutcome.ALREADY_DONE, detail="row closed")
                return BatchItem(execution_id=execution_id, outcome=SendOutcome.RETRYING, detail=_short(error_type))
        retry_state = "NON_RETRYABLE_FAILURE" if error.non_retryable else "MAXIMUM_ATTEMPTS_REACHED"
        with unit_of_work(self.sessions) as session:
            dead_letter(session, execution_id, error_type, error.message[:2000], attempts, now, retry_state=retry_state)
        return BatchItem(execution_id=execution_id, outcome=SendOutcome.FAILED, detail=_short(f"{error_type}: {error}"))

    def _heartbeat(self, workflow_now: datetime) -> SendHeartbeat:
        started, began = effective_now(workflow_now), time.monotonic()
        return SendHeartbeat(self.engine, lambda: started + timedelta(seconds=time.monotonic() - began))

    def _send_message(self, request: SendInput, seen: SendObservation, heartbeat: SendHeartbeat) -> SendResult:
        with heartbeat.sending(request.execution_id):
            return self._send_one(request, seen)

    def _send_one(self, request: SendInput, seen: SendObservation) -> SendResult:
        """One pooled connection for the whole attempt: each checkout of an autocommit
        connection costs the worker more CPU than the statement it then runs (profiled:
        a second checkout just to record SENT was 5 % of the worker's GIL time). Nothing is
        held open across the provider call: every statement commits by itself."""
        now = effective_now(request.now)
        with single_statements(self.engine) as db:
            context = seen.context = load_context(db, request.execution_id)
            if context is None:
                return SendResult(outcome=SendOutcome.ALREADY_DONE, detail="no such execution")
            status = ExecutionStatus(context.execution.status)
            if status.terminal:
                return SendResult(outcome=SendOutcome.ALREADY_DONE, detail=status.value)
            attempt_until = now + row_hold()
            attempt = context.execution.attempts + 1
            if status is ExecutionStatus.SENDING:
                retry = claim_retry(db, request.execution_id, now, attempt_until)
                if retry.closed is not None:
                    return SendResult(outcome=SendOutcome.ALREADY_DONE, detail=retry.closed)
                if retry.attempt is None:
                    raise _held_by_another_attempt(context, retry.busy_until)
                attempt = retry.attempt
            last_attempt = request.attempt_budget is not None and attempt >= request.attempt_budget
            try:
                return self._attempt(db, request, context, status, now, attempt_until, last_attempt=last_attempt)
            except BaseException:
                _release_quietly(db, request.execution_id)
                raise

    def _attempt(
        self,
        db: Statements,
        request: SendInput,
        context: SendContext,
        status: ExecutionStatus,
        now: datetime,
        attempt_until: datetime,
        *,
        last_attempt: bool,
    ) -> SendResult:
        """Past the row's claim: render, the gate, the provider (or, on a retry, first the
        provider's look-up), then SENT."""
        message = self._compose(db, context, now)
        if _paused(context, now):
            if status is not ExecutionStatus.SENDING:
                return self._wait_for_mailbox(db, context, now)
            # Retried when the pause ends; no provider call.
            raise _mailbox_paused_error(context, now, last_attempt=last_attempt)
        if status is not ExecutionStatus.SENDING:
            held = self._enter_sending(
                db,
                context,
                message,
                now,
                completed_campaign_open=request.dead_letter_retry,
                attempt_until=attempt_until,
            )
            if held is not None:
                activity.logger.info("execution %s %s: %s", request.execution_id, held.outcome.value, held.detail)
                return held
        provider = self._provider(context)
        if status is ExecutionStatus.SENDING:
            receipt = self._find_earlier_send(provider, message)
            if receipt is not None:
                return _record_sent(db, context, receipt, now)
            if context.campaign.status == CampaignStatus.CANCELLED.value:
                # Cancelled while this send waited to retry: settle it, do not send it now.
                cancel_sending(db, request.execution_id, now)
                return SendResult(outcome=SendOutcome.ALREADY_DONE, detail="campaign cancelled")
        try:
            receipt = provider.send(message)
        except ProviderError as error:
            return self._provider_failed(context, error, now, last_attempt=last_attempt)
        return _record_sent(db, context, receipt, now)

    @activity.defn
    def settle_cancelled(self, request: SettleInput) -> SettleResult | None:
        """After a cancel, close the rows of the sends the step let go of (waiting in retry
        backoff, or never started): SENT if the provider has the message, CANCELLED if it
        provably does not. A row an attempt is sending right now (it holds the row) is looked
        at again once that attempt ends, so no look-up runs beside a send. When the provider
        cannot tell yet (a search index that lags) this attempt fails and a later one asks
        again; only when the last attempt still cannot tell is the row dead-lettered, rather
        than called CANCELLED when it may have gone out."""
        now = effective_now(request.now)
        unknown: list[int] = []
        busy: list[datetime] = []
        waiting: list[int] = []
        if request.waiting_of_step is not None:
            with single_statements(self.engine) as db:
                waiting = waiting_to_retry(db, request.waiting_of_step, SETTLE_PAGE)
        for execution_id in [*request.execution_ids, *waiting]:
            with unit_of_work(self.sessions) as session:
                db = Statements(session)
                context = load_context(db, execution_id)
                if context is None or ExecutionStatus(context.execution.status).terminal:
                    continue
                if context.execution.status != ExecutionStatus.SENDING.value:
                    close_row(db, execution_id, ExecutionStatus.CANCELLED, None, now)
                    continue
                held_until = context.execution.lease_until
                if held_until is not None and held_until > now and not context.execution.waiting_to_retry:
                    busy.append(held_until)  # an attempt is sending it right now
                    continue
                message = self._compose(db, context, now)
                try:
                    receipt = self._provider(context).find_sent(message)
                except DeliveryUnknown as error:
                    if _last_attempt():
                        dead_letter(
                            session, execution_id, "DeliveryUnknown", str(error), context.execution.attempts, now
                        )
                    else:
                        unknown.append(execution_id)
                    continue
                if receipt is not None:
                    _mark_receipt(db, context, receipt, now)
                else:
                    cancel_sending(db, execution_id, now)
        if busy:
            raise ApplicationError(
                f"{len(busy)} cancelled execution(s) still have an attempt running; looking again after it",
                type="AttemptInProgress",
                next_retry_delay=max(busy) - now + PAUSE_MARGIN,
            )
        if unknown:
            raise ApplicationError(
                f"the provider cannot tell yet whether {len(unknown)} cancelled execution(s) went out"
                f" (first: {unknown[0]}); asking again",
                type="DeliveryUnknown",
            )
        return SettleResult(more_waiting=len(waiting) == SETTLE_PAGE)

    def _provider(self, context: SendContext) -> Provider:
        """Providers are registered by name, or by `name:channel` when one provider name
        covers channels sent by different adapters (Twilio SMS and voice)."""
        provider = self.providers.get(f"{context.sender.provider}:{context.step.channel}") or self.providers.get(
            context.sender.provider
        )
        if provider is None:
            raise ApplicationError(
                f"no provider {context.sender.provider!r} configured on this worker", type="ProviderMissing"
            )
        return provider

    def _compose(self, db: Statements, context: SendContext, now: datetime) -> OutgoingMessage:
        step, contact = context.step, context.contact
        variables = contact_context(contact)
        channel = Channel(step.channel)
        subject = step.subject
        fields: dict[str, object] = {}
        if channel is Channel.EMAIL:
            if not subject:
                subject = thread_subject(db, context.campaign.id, step.position)
            unsubscribe_url = self.links.unsubscribe_url(
                contact_id=contact.id, execution_id=context.execution.id, now=now
            )
            postal_address = context.campaign.definition.get("postal_address")
            variables |= {"unsubscribe_url": unsubscribe_url, "postal_address": postal_address or ""}
            fields["headers"] = self.links.unsubscribe_headers(unsubscribe_url)
        try:
            ai = context.campaign.definition.get("ai") or {}
            if ai:
                defaults = {name: spec["default"] for name, spec in ai.items()}
                variables["ai"] = ai_texts(db, context.campaign.id, contact.id, defaults, variables)
            rendered = {
                name: render_template(source, variables)
                for name, source in (("subject", subject), ("body", step.body), ("say", step.say))
                if source
            }
        except TemplateRenderError as error:
            raise ApplicationError(
                f"contact {contact.id}, execution {context.execution.id}: step {step.position}: {error}",
                type="TemplateError",
                non_retryable=True,
            ) from None
        to = contact.email if channel is Channel.EMAIL else contact.phone
        if channel is Channel.EMAIL:
            rendered["body"] = with_footer(
                rendered.get("body", ""),
                step.body or "",
                unsubscribe_url=unsubscribe_url,
                postal_address=postal_address,
            )
            if not step.new_thread and context.previous_step_id is not None:
                parent, thread, chain = previous_email(db, context.execution)
                if parent:
                    replied = str(rendered.get("subject", ""))
                    rendered["subject"] = replied if replied.lower().startswith("re:") else f"Re: {replied}"
                    fields |= {"in_reply_to": parent, "references": tuple(chain), "thread_id": thread}
        else:
            fields["status_callback"] = self.links.status_callback()
            if channel is Channel.VOICEMAIL:
                fields["voice_url"] = self.links.voice_url(context.execution.id)
        return OutgoingMessage(
            execution_id=context.execution.id,
            key=message_key(context),
            channel=channel,
            sender_address=context.sender.address,
            to=to or "",
            audio_url=step.audio_url,
            sending_since=context.execution.sending_since,
            **rendered,  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
        )

    def _find_earlier_send(self, provider: Provider, message: OutgoingMessage) -> SentReceipt | None:
        try:
            return provider.find_sent(message)
        except DeliveryUnknown as error:
            raise ApplicationError(
                f"cannot prove execution {message.execution_id} was not sent: {error}",
                type="DeliveryUnknown",
                non_retryable=True,
            ) from None

    def _enter_sending(
        self,
        db: Statements,
        context: SendContext,
        message: OutgoingMessage,
        now: datetime,
        *,
        completed_campaign_open: bool = False,
        attempt_until: datetime | None = None,
    ) -> SendResult | None:
        """Into SENDING through the quota claim and the gate (`db.sending.enter_sending`).
        Returns a result when the message must not go out now."""
        opens = _next_window(context, now)
        if opens > now:
            reschedule(db, context.execution.id, opens, now)
            return SendResult(outcome=SendOutcome.RESLOTTED, detail=opens.isoformat())
        day = context.sender.today(now)
        entry = enter_sending(
            db,
            context,
            message.key,
            day,
            now,
            completed_campaign_open=completed_campaign_open,
            attempt_until=attempt_until,
        )
        if entry is Entry.NO_QUOTA:
            reschedule(db, context.execution.id, _senders_next_day(context, now), now)
            return SendResult(outcome=SendOutcome.DEFERRED, detail="sender daily limit reached")
        if entry is Entry.GATE_CLOSED:
            return self._closed_gate(context, now)
        return None

    def _wait_for_mailbox(self, db: Statements, context: SendContext, now: datetime) -> SendResult:
        """The mailbox is paused (R12): the row waits for the first window slot after the
        pause, without claiming quota or counting an attempt."""
        assert context.sender.paused_until is not None
        resumes = _next_window(context, context.sender.paused_until)
        reschedule(db, context.execution.id, resumes, now)
        return SendResult(outcome=SendOutcome.DEFERRED, detail=f"mailbox paused until {resumes.isoformat()}")

    def _closed_gate(self, context: SendContext, now: datetime) -> SendResult:
        """Why the gate refused, and what happens to the row."""
        with unit_of_work(self.sessions) as session:
            db = Statements(session)
            stopped_reason, campaign_status = gate_refusal(session, context.campaign.id, context.contact.id)
            if stopped_reason:
                close_row(db, context.execution.id, ExecutionStatus.SKIPPED, stopped_reason, now)
                return SendResult(outcome=SendOutcome.SKIPPED, detail=stopped_reason)
            if campaign_status == CampaignStatus.CANCELLED.value:
                close_row(db, context.execution.id, ExecutionStatus.CANCELLED, None, now)
                return SendResult(outcome=SendOutcome.ALREADY_DONE, detail="campaign cancelled")
            if reschedule(db, context.execution.id, hold_time(now), now):
                return SendResult(outcome=SendOutcome.HELD, detail=campaign_status)
            return SendResult(outcome=SendOutcome.ALREADY_DONE, detail="row no longer open")

    def _provider_failed(
        self, context: SendContext, error: ProviderError, now: datetime, *, last_attempt: bool = False
    ) -> SendResult:
        """The provider refused. The row is SENDING but nothing went out, so a refusal about
        the mailbox (limit used up, grant revoked) puts it back to wait; one about the
        recipient fails it for good; anything else is retried (unless a handed-over send
        has used the row's attempts up)."""
        if error.kind in (FailureKind.QUOTA_EXHAUSTED, FailureKind.AUTH_REVOKED):
            with unit_of_work(self.sessions) as session:
                if error.kind is FailureKind.QUOTA_EXHAUSTED:
                    day = context.sender.today(now)
                    exhaust_quota(session, context.sender.id, day, context.sender.limit_on(day))
                    detail = "provider daily limit reached"
                else:
                    if disable_sender(session, context.sender.id, f"{error.code or 'auth'}: {error}"):
                        activity.logger.warning("sender %s disabled: %s", context.sender.id, error)
                    detail = "sender disabled: reconnect it"
                reschedule(
                    Statements(session), context.execution.id, _senders_next_day(context, now), now, from_sending=True
                )
            return SendResult(outcome=SendOutcome.DEFERRED, detail=detail)
        # Which contact (by id, never the address) and why, as the Web UI shows the failure.
        reason = f"contact {context.contact.id}, execution {context.execution.id}: {error}"
        if error.kind is FailureKind.PERMANENT:
            raise ApplicationError(reason, error.code, type="ProviderPermanent", non_retryable=True) from None
        retry_in: timedelta | None = None
        if error.kind is FailureKind.THROTTLED:
            paused_until = self._note_throttling(context, error, now)
            retry_in = _after_pause(paused_until, now) if paused_until else None
        raise ApplicationError(
            reason + (" (no attempts left)" if last_attempt else ""),
            error.code,
            type="ProviderTransient",
            next_retry_delay=retry_in,
            non_retryable=last_attempt,
        ) from None

    def _note_throttling(self, context: SendContext, error: ProviderError, now: datetime) -> datetime | None:
        """Count the rate limit or 5xx against the mailbox; when it is paused, say until when."""
        with unit_of_work(self.sessions) as session:
            throttling = note_throttling(session, context.sender.id, now, self.mailbox_pause)
        if throttling.newly_paused:
            self.observer.mailbox_paused(context.step.channel)
            activity.logger.warning(
                "sender %s paused until %s: %s rate limits or provider errors within %s s (last: %s)",
                context.sender.id,
                throttling.paused_until,
                self.mailbox_pause.after_failures,
                self.mailbox_pause.within_seconds,
                error.code or error.kind.value,
                extra={"sender_id": context.sender.id, "channel": context.step.channel},
            )
        return throttling.paused_until


def _release_quietly(db: Statements, execution_id: int) -> None:
    """Let the next attempt take the row at once (a no-op unless this attempt had put it
    in SENDING). If even this fails (the database is down), the hold just runs out."""
    try:
        release_attempt(db, execution_id)
    except Exception as error:  # the original error is the one to report
        activity.logger.warning("execution %s: could not release its row: %s", execution_id, type(error).__name__)


def _shielded() -> AbstractContextManager[None]:
    """No cancel lands between a provider call and its record (nor anywhere in a message)."""
    return activity.shield_thread_cancel_exception() if activity.in_activity() else nullcontext()


def _resumed_items(details: Sequence[Any]) -> list[BatchItem]:
    """The outcomes an earlier attempt of this batch heartbeated before it died."""
    if not details or not isinstance(details[0], list):
        return []
    return [BatchItem.model_validate(item) for item in details[0]]


def _short(detail: str | None) -> str | None:
    return detail[:300] if detail else detail


def _held_by_another_attempt(context: SendContext, busy_until: datetime | None) -> ApplicationError:
    """Another attempt still holds the row (one the previous run of the step left running,
    or a slow worker's): retry on the policy's backoff (2 s, 4 s, ...), which outlasts the
    hold within a few attempts; that attempt usually ends in milliseconds, so waiting out
    its whole hold would leave a window slot idle for a minute."""
    return ApplicationError(
        f"execution {context.execution.id}: another attempt holds it until {busy_until}; retrying after it",
        type="AttemptInProgress",
    )


def _last_attempt() -> bool:
    """This activity attempt is the last its retry policy allows."""
    if not activity.in_activity():
        return True
    info = activity.info()
    maximum = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return maximum > 0 and info.attempt >= maximum


def _record_sent(db: Statements, context: SendContext, receipt: SentReceipt, now: datetime) -> SendResult:
    _mark_receipt(db, context, receipt, now)
    return SendResult(outcome=SendOutcome.SENT)


def _mark_receipt(db: Statements, context: SendContext, receipt: SentReceipt, now: datetime) -> None:
    """SENT, with the `message.sent` event the app hears (DESIGN W1)."""
    contact = context.contact
    sent = MessageData(
        message_id=context.execution.id,
        campaign_id=context.campaign.id,
        step=context.step.position,
        channel=context.step.channel,
        contact=ContactRef(id=contact.id, email=contact.email, phone=contact.phone),
        sender=context.sender.address,
        provider_message_id=receipt.provider_message_id,
        sent_at=now,
    )
    mark_sent(
        db,
        context.execution.id,
        now,
        receipt.provider_message_id,
        receipt.provider_thread_id,
        receipt.rfc_message_id,
        event=(context.campaign.workspace_id, sent),
    )


def _paused(context: SendContext, now: datetime) -> bool:
    return context.sender.paused_until is not None and context.sender.paused_until > now


def _mailbox_paused_error(context: SendContext, now: datetime, *, last_attempt: bool = False) -> ApplicationError:
    """A retry of a row already SENDING that meets a pause another send started: it waits
    (one attempt spent) and then asks the provider whether the message went out (R3)."""
    assert context.sender.paused_until is not None
    return ApplicationError(
        f"contact {context.contact.id}, execution {context.execution.id}: sender {context.sender.id} is paused"
        f" until {context.sender.paused_until.isoformat()} after repeated rate limits or provider errors",
        "mailbox_paused",
        type="ProviderTransient",
        next_retry_delay=_after_pause(context.sender.paused_until, now),
        non_retryable=last_attempt,
    )


def _after_pause(paused_until: datetime, now: datetime) -> timedelta:
    """The retry delay that lands just past the end of a pause."""
    return paused_until - now + PAUSE_MARGIN


def _next_window(context: SendContext, moment: datetime) -> datetime:
    """When the campaign's window (and quiet hours) next opens for this contact."""
    window = _campaign_window(Channel(context.step.channel), context.campaign.definition)
    return window.next_open(moment, zone(context.contact.timezone, fallback=context.campaign.timezone))


_WINDOWS: dict[tuple[Channel, str], LocalWindow] = {}


def _campaign_window(channel: Channel, definition: dict[str, Any]) -> LocalWindow:
    """The parsed sending window, kept by content: validating the whole campaign file on
    every send cost more than the send's SQL."""
    key = (channel, json.dumps([definition.get("window"), definition.get("quiet_hours")], sort_keys=True))
    window = _WINDOWS.get(key)
    if window is None:
        if len(_WINDOWS) > 1024:
            _WINDOWS.clear()
        spec = CampaignFile.model_validate(definition)
        window = LocalWindow.of(spec.window, quiet_hours=spec.quiet_hours and channel is not Channel.EMAIL)
        _WINDOWS[key] = window
    return window


def _senders_next_day(context: SendContext, now: datetime) -> datetime:
    """The first window slot on the sender's next local day, where a deferred send goes."""
    sender_tz = zone(context.sender.timezone)
    return _next_window(context, day_bounds(local_day(now, sender_tz), sender_tz)[1])
