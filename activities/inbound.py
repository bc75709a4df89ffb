"""The inbound side of a Gmail mailbox: follow its history and act on what came back.

One activity call brings a mailbox up to date: the changes since the stored `historyId`
(or, when Gmail has forgotten that history or the mailbox was never synced, every
message of the last days), each message fetched, stored and classified in its own
transaction. Ingestion is idempotent by Gmail message id, so a retried or overlapping
call is harmless and the cursor only moves after everything before it was stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.engine import SessionFactory, unit_of_work
from db.inbound import ingest_email, is_stored
from db.mailboxes import disable_sender, gmail_mailbox_state, record_mailbox_sync
from domain.inbound_classify import InboundClassification, InboundKind, classify_email
from domain.reply_intent import IntentVerdict
from providers.base import FailureKind, ProviderError
from providers.gmail_mailbox import GmailMailbox, HistoryExpired, MessageGone
from runtime.ai import ReplyClassifier
from runtime.settings import AiSettings
from schemas.inbound_io import MailboxState, SyncMailboxInput, SyncMailboxResult

FULL_RESYNC_DAYS = 7
SKIPPED_LABELS = frozenset({"SENT", "DRAFT"})
JUDGED = frozenset({InboundKind.REPLY, InboundKind.AUTO_REPLY})  # what the reply classifier reads


@dataclass(frozen=True)
class _Mailbox:
    id: int
    address: str
    status: str
    history_id: str | None


class InboundActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        mailbox: GmailMailbox,
        soft_bounce_threshold: int,
        replies: ReplyClassifier | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailbox = mailbox
        self.soft_bounce_threshold = soft_bounce_threshold
        self.replies = replies or ReplyClassifier(AiSettings())  # the rules, without a model

    @activity.defn
    def sync_mailbox(self, request: SyncMailboxInput) -> SyncMailboxResult:
        mailbox = self._load(request.sender_id)
        if mailbox is None:
            return SyncMailboxResult(state=MailboxState.MISSING, detail="not a Gmail mailbox")
        if mailbox.status != "active":
            return SyncMailboxResult(state=MailboxState.DISABLED, detail=f"mailbox is {mailbox.status}")
        try:
            return self._sync(mailbox, request.now)
        except ProviderError as error:
            if error.kind is FailureKind.AUTH_REVOKED:
                with unit_of_work(self.sessions) as session:
                    disable_sender(session, mailbox.id, f"{error.code or 'auth'}: {error}")
                    record_mailbox_sync(session, mailbox.id, None, request.now, error=str(error))
                activity.logger.warning("mailbox %s disabled: %s", mailbox.id, error)
                return SyncMailboxResult(state=MailboxState.DISABLED, detail=str(error))
            with unit_of_work(self.sessions) as session:
                record_mailbox_sync(session, mailbox.id, None, request.now, error=str(error))
            raise ApplicationError(str(error), error.code, type="MailboxSyncFailed") from None

    def _sync(self, mailbox: _Mailbox, now: datetime) -> SyncMailboxResult:
        full = mailbox.history_id is None
        ids: list[str] = []
        if not full:
            try:
                ids, cursor = self._changes(mailbox.address, str(mailbox.history_id))
            except HistoryExpired:
                full = True
        if full:
            # The cursor is taken before listing, so nothing arriving meanwhile is skipped.
            cursor = self.mailbox.profile_history_id(mailbox.address)
            ids = self._recent(mailbox.address)
        kinds: Counter[str] = Counter()
        stored = stopped = 0
        for position, message_id in enumerate(dict.fromkeys(ids)):
            activity.heartbeat(position)
            try:
                message = self.mailbox.fetch(mailbox.address, message_id)
            except MessageGone:
                continue
            if SKIPPED_LABELS.intersection(message.label_ids):
                continue
            found = classify_email(message.raw)
            intent = self._intent(message.id, found, message.internal_date.date())
            with unit_of_work(self.sessions) as session:
                result = ingest_email(
                    session,
                    mailbox_sender_id=mailbox.id,
                    provider_message_id=message.id,
                    thread_id=message.thread_id,
                    received_at=message.internal_date,
                    raw=message.raw,
                    now=now,
                    soft_bounce_threshold=self.soft_bounce_threshold,
                    classified=found,
                    intent=intent,
                )
            if result.stored:
                stored += 1
                kinds[str(result.kind)] += 1
                stopped += int(result.stopped)
        with unit_of_work(self.sessions) as session:
            record_mailbox_sync(session, mailbox.id, cursor, now, seen=stored, full=full)
        if stored:
            activity.logger.info("mailbox %s: %s new messages %s", mailbox.id, stored, dict(kinds))
        return SyncMailboxResult(
            state=MailboxState.SYNCED,
            full_resync=full,
            fetched=len(ids),
            stored=stored,
            by_kind=dict(kinds),
            stopped_contacts=stopped,
        )

    def _intent(
        self, message_id: str, found: InboundClassification, received: date | None = None
    ) -> IntentVerdict | None:
        """A new reply's intent, judged outside any transaction (a model call takes seconds);
        for an automatic reply, the judge's reading of its return date. An opt-out's intent
        follows from its kind: no call for it."""
        if found.kind not in JUDGED:
            return None
        with self.sessions() as session:
            if is_stored(session, message_id):
                return None
        return self.replies.classify(found.text or "", received)

    def _changes(self, address: str, history_id: str) -> tuple[list[str], str]:
        ids: list[str] = []
        page_token: str | None = None
        while True:
            page = self.mailbox.changes_since(address, history_id, page_token)
            ids.extend(page.message_ids)
            if page.next_page_token is None:
                return ids, page.history_id
            page_token = page.next_page_token

    def _recent(self, address: str) -> list[str]:
        ids: list[str] = []
        page_token: str | None = None
        while True:
            page, page_token = self.mailbox.recent_message_ids(address, FULL_RESYNC_DAYS, page_token)
            ids.extend(page)
            if page_token is None:
                return ids

    def _load(self, sender_id: int) -> _Mailbox | None:
        with self.sessions() as session:
            row = gmail_mailbox_state(session, sender_id)
        return None if row is None else _Mailbox(*row)
