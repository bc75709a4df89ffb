"""An HTTP-level fake of the Gmail API endpoints Outbound uses, and of Google's OAuth token
endpoint, so tests drive the real google-api-python-client and google-auth.

Only what the code uses is implemented (paths as in the bundled discovery document
`googleapiclient/discovery_cache/documents/gmail.v1.json`): `users.messages.send`,
`users.messages.list` (`q` with rfc822msgid:, [-]in:sent, [-]in:drafts, to:, newer_than:),
`users.messages.get` (minimal, metadata, raw, full), `users.history.list`,
`users.getProfile` and the refresh-token grant. Every request is checked; what a correct
client would never send (no auth, undecodable raw, missing From/To/Message-ID, broken
threading, unknown parameters) is recorded in `errors` and tests call `assert_clean()`.

Usage:
    with FakeGmail() as gmail:
        gmail.add_account("sales@example.com")
        provider = GmailProvider(gmail.credential_source(), gmail.settings())
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from google.oauth2.credentials import Credentials

from providers.gmail_auth import GMAIL_SCOPES, GOOGLE_TOKEN_URI
from runtime.settings import GmailSettings

TOKEN_PATH = "/token"
_API = re.compile(r"^/gmail/v1/users/(?P<user>[^/]+)/(?P<rest>.+)$")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Query parameters every Google API accepts (discovery document "parameters").
_STANDARD_PARAMS = {
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "upload_protocol",
    "uploadType",
}


# --- faults -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpFault:
    """Answer with a Google-style JSON error instead of processing the request."""

    status: int
    reason: str
    message: str
    domain: str = "global"


@dataclass(frozen=True)
class LostResponse:
    """Process the request (a send is stored), then lose the answer: a 500 or a dropped connection."""

    mode: Literal["500", "drop"] = "drop"


@dataclass(frozen=True)
class Dropped:
    """Drop the connection without processing the request."""


Fault = HttpFault | LostResponse | Dropped

USER_RATE_LIMITED = HttpFault(403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits")
RATE_LIMITED = HttpFault(429, "rateLimitExceeded", "Too many concurrent requests for user", "usageLimits")
DAILY_LIMIT = HttpFault(403, "dailyLimitExceeded", "Daily Limit Exceeded", "usageLimits")
SENDING_LIMIT = HttpFault(
    429, "rateLimitExceeded", "User-rate limit exceeded.  Retry after 2030-01-01T00:00:00.000Z (Mail sending)"
)
INVALID_TO = HttpFault(400, "invalidArgument", "Invalid To header")
BACKEND_ERROR = HttpFault(500, "backendError", "Backend Error")
UNAVAILABLE = HttpFault(503, "backendError", "The service is currently unavailable.")
INSUFFICIENT_PERMISSIONS = HttpFault(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

Operation = Literal["send", "list", "get", "history", "profile", "token"]


# --- state ------------------------------------------------------------------------------


@dataclass
class Account:
    address: str
    client_id: str
    client_secret: str
    refresh_token: str
    revoked: bool = False


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    label_ids: list[str]
    raw: bytes
    internal_date_ms: int
    history_id: int
    sequence: int
    stored_at: float  # on the fake's clock, for the search-lag switches
    rfc_message_id: str  # bare, lower case: what rfc822msgid: and threading compare

    @property
    def mail(self) -> EmailMessage:
        return parse_mail(self.raw)

    def header(self, name: str) -> str | None:
        value = self.mail[name]
        return None if value is None else str(value)


@dataclass
class Mailbox:
    account: Account
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_id: int = 1000
    history_floor: int = 0  # startHistoryId below this answers 404


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    mailbox: str | None
    body: bytes


@dataclass
class _Answer:
    status: int
    payload: Any = None
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def parse_mail(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def google_error(status: int, reason: str, message: str, domain: str = "global") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


# --- the fake ---------------------------------------------------------------------------


class FakeGmail:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.token_grants = 0
        self.search_lag_seconds = 0.0  # `q` searches miss messages younger than this
        self.listing_lag_seconds = 0.0  # listings without `q` (label index) miss messages younger than this
        self.replace_message_ids = False  # like Gmail sometimes does: store a Message-ID of its own
        self._lock = threading.RLock()
        self._mailboxes: dict[str, Mailbox] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (mailbox key, expires at)
        self._faults: dict[str, list[Fault]] = {}
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clock_offset = 0.0

    def now(self) -> float:
        """The fake's monotonic clock; `advance` moves it so index lag can pass without waiting."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    # lifecycle

    def __enter__(self) -> FakeGmail:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-gmail", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeGmail is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint(self) -> str:
        """The `api_endpoint` for GmailSettings."""
        return f"{self.base_url}/"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    def assert_clean(self) -> None:
        assert not self.errors, "the fake Gmail saw malformed requests:\n" + "\n".join(self.errors)

    # configuration

    def settings(self, **overrides: Any) -> GmailSettings:
        values: dict[str, Any] = {"api_endpoint": self.endpoint, "token_uri": self.token_uri, **overrides}
        return GmailSettings(**values)

    def add_account(self, address: str, *, refresh_token: str | None = None) -> Account:
        with self._lock:
            account = Account(
                address=address,
                client_id=f"client-{len(self._mailboxes)}.apps.googleusercontent.com",
                client_secret=f"secret-{len(self._mailboxes)}",
                refresh_token=refresh_token or f"1//refresh-{address}",
            )
            self._mailboxes[address.lower()] = Mailbox(account=account)
            return account

    def credentials(
        self, address: str, *, access_token: str | None = None, expiry: datetime | None = None
    ) -> Credentials:
        """Credentials as the app stores them: they name Google's token endpoint, so a client
        that ignores `GmailSettings.token_uri` fails (no internet in tests)."""
        account = self.mailbox(address).account
        return Credentials(
            token=access_token,
            refresh_token=account.refresh_token,
            client_id=account.client_id,
            client_secret=account.client_secret,
            token_uri=GOOGLE_TOKEN_URI,
            expiry=expiry,
        )

    def credential_source(self) -> FakeCredentialSource:
        return FakeCredentialSource(self)

    def revoke(self, address: str) -> None:
        """The user removed the app's access: refreshes answer invalid_grant, tokens stop working."""
        with self._lock:
            self.mailbox(address).account.revoked = True
            self._tokens = {token: entry for token, entry in self._tokens.items() if entry[0] != address.lower()}

    def invalidate_access_tokens(self) -> None:
        """Every issued access token expires now (server side): the next call answers 401."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, operation: Operation, *faults: Fault) -> None:
        """Queue faults for the next requests of one kind, consumed one per request."""
        with self._lock:
            self._faults.setdefault(operation, []).extend(faults)

    def expire_history(self, address: str) -> None:
        """Gmail forgets the history so far: any startHistoryId up to now answers 404."""
        with self._lock:
            box = self.mailbox(address)
            box.history_floor = box.history_id + 1

    # inspection

    def mailbox(self, address: str) -> Mailbox:
        with self._lock:
            return self._mailboxes[address.lower()]

    def messages(self, address: str) -> list[StoredMessage]:
        with self._lock:
            return list(self.mailbox(address).messages.values())

    def sent(self, address: str) -> list[StoredMessage]:
        return [message for message in self.messages(address) if "SENT" in message.label_ids]

    def history_id(self, address: str) -> int:
        return self.mailbox(address).history_id

    def sends(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.endswith("/messages/send")]

    # inbound mail

    def deliver(
        self,
        address: str,
        raw: bytes,
        *,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        internal_date: datetime | None = None,
    ) -> StoredMessage:
        """A message arrives in the mailbox (advancing its historyId); a reply joins the thread
        of the message it references, as Gmail threads it."""
        with self._lock:
            box = self.mailbox(address)
            mail = parse_mail(raw)
            thread = self._thread_of_references(box, mail)
            return self._store(box, raw, list(labels), thread, internal_date)

    def reply(
        self,
        address: str,
        original: StoredMessage,
        *,
        sender: str,
        text: str = "Thanks, let's talk.",
        labels: Iterable[str] = ("INBOX", "UNREAD"),
    ) -> StoredMessage:
        """`sender` replies to `original` (a message in `address`'s mailbox), delivered to `address`."""
        parent = original.mail
        reply = EmailMessage()
        reply["From"] = sender
        reply["To"] = address
        subject = str(parent["Subject"] or "")
        reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        reply["Date"] = format_datetime(datetime.now(UTC))
        reply["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
        parent_id = str(parent["Message-ID"])
        reply["In-Reply-To"] = parent_id
        reply["References"] = " ".join([*str(parent["References"] or "").split(), parent_id])
        reply.set_content(text)
        return self.deliver(address, bytes(reply), labels=labels)

    # internals shared with the handler

    def _next_id(self) -> str:
        return f"{0x190000000000000 + next(self._ids):016x}"

    def _store(
        self,
        box: Mailbox,
        raw: bytes,
        labels: list[str],
        thread_id: str | None,
        internal_date: datetime | None = None,
    ) -> StoredMessage:
        message_id = self._next_id()
        box.history_id += 1
        stamp = internal_date or datetime.now(UTC)
        stored = StoredMessage(
            id=message_id,
            thread_id=thread_id or message_id,
            label_ids=labels,
            raw=raw,
            internal_date_ms=int(stamp.timestamp() * 1000),
            history_id=box.history_id,
            sequence=next(self._ids),
            stored_at=self.now(),
            rfc_message_id=_bare(str(parse_mail(raw)["Message-ID"] or "")),
        )
        box.messages[message_id] = stored
        reference = {"id": stored.id, "threadId": stored.thread_id}
        box.history.append(
            {
                "id": str(box.history_id),
                "messages": [reference],
                "messagesAdded": [{"message": {**reference, "labelIds": list(labels)}}],
            }
        )
        return stored

    def _thread_of_references(self, box: Mailbox, mail: EmailMessage) -> str | None:
        wanted = {_bare(value) for value in str(mail["References"] or "").split()}
        if mail["In-Reply-To"]:
            wanted.add(_bare(str(mail["In-Reply-To"])))
        for stored in box.messages.values():
            if stored.rfc_message_id in wanted:
                return stored.thread_id
        return None

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(operation)
            return queue.pop(0) if queue else None

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)


class FakeCredentialSource:
    """The tests' CredentialSource: the fake's accounts, refreshed against the fake."""

    def __init__(self, fake: FakeGmail) -> None:
        self.fake = fake
        self.overrides: dict[str, Credentials] = {}

    def credentials(self, address: str) -> Credentials:
        return self.overrides.get(address) or self.fake.credentials(address)


# --- request handling -------------------------------------------------------------------


def _handler_for(fake: FakeGmail) -> type[BaseHTTPRequestHandler]:
    class Handler(_GmailHandler):
        pass

    Handler.fake = fake
    return Handler


class _GmailHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeGmail

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add 40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = _Route(self.fake, method, split.path, query, body, dict(self.headers.items())).answer()
        except _Refused as refused:
            answer = refused.answer
        except Exception as error:  # a bug in the fake must fail the test, not hang it
            self.fake._error(f"fake crashed on {method} {split.path}: {error!r}")
            answer = _Answer(500, google_error(500, "backendError", "fake crashed"))
        if answer.drop:
            self.close_connection = True
            return
        payload = json.dumps(answer.payload if answer.payload is not None else {}).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Route:
    """One request: authentication, parameter checks, then the endpoint."""

    def __init__(
        self,
        fake: FakeGmail,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        self.fake = fake
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.headers = {name.lower(): value for name, value in headers.items()}
        self.box: Mailbox | None = None

    def answer(self) -> _Answer:
        if self.path == TOKEN_PATH:
            self._record(None)
            return self._fault_or("token", self._token)
        match = _API.match(self.path)
        if match is None:
            self._record(None)
            return self._malformed(404, f"unknown endpoint {self.method} {self.path}")
        try:
            self.box = self._authenticate()
        except _Refused:
            self._record(None)
            raise
        self._record(self.box.account.address)
        if match["user"] not in ("me", self.box.account.address):
            return self._malformed(403, f"userId {match['user']!r} is neither 'me' nor the authenticated mailbox")
        rest = match["rest"]
        routes = {
            ("POST", "messages/send"): ("send", self._send, {"userId"}),
            ("GET", "messages"): (
                "list",
                self._list,
                {"userId", "q", "labelIds", "includeSpamTrash", "maxResults", "pageToken"},
            ),
            ("GET", "history"): (
                "history",
                self._history,
                {"userId", "startHistoryId", "historyTypes", "labelId", "maxResults", "pageToken"},
            ),
            ("GET", "profile"): ("profile", self._profile, {"userId"}),
        }
        if (self.method, rest) in routes:
            operation, endpoint, allowed = routes[(self.method, rest)]
        elif self.method == "GET" and re.fullmatch(r"messages/[^/]+", rest):
            operation, endpoint, allowed = "get", self._get, {"userId", "id", "format", "metadataHeaders"}
        else:
            return self._malformed(404, f"unsupported Gmail call {self.method} {self.path}")
        unknown = set(self.query) - allowed - _STANDARD_PARAMS
        if unknown:
            return self._malformed(400, f"{operation}: unknown query parameters {sorted(unknown)}")
        return self._fault_or(operation, endpoint)

    # plumbing

    def _record(self, mailbox: str | None) -> None:
        with self.fake._lock:
            self.fake.requests.append(RecordedRequest(self.method, self.path, self.query, mailbox, self.body))

    def _malformed(self, status: int, text: str) -> _Answer:
        self.fake._error(text)
        return _Answer(status, google_error(status, "invalidArgument" if status == 400 else "notFound", text))

    def _fault_or(self, operation: str, endpoint: Any) -> _Answer:
        fault = self.fake._take_fault(operation)
        if isinstance(fault, HttpFault):
            return _Answer(fault.status, google_error(fault.status, fault.reason, fault.message, fault.domain))
        if isinstance(fault, Dropped):
            return _Answer(0, drop=True)
        answer: _Answer = endpoint()
        if isinstance(fault, LostResponse):
            if fault.mode == "drop":
                return _Answer(0, drop=True)
            return _Answer(500, google_error(500, "backendError", "Backend Error"))
        return answer

    def _param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def _authenticate(self) -> Mailbox:
        authorization = self.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            self.fake._error(f"{self.method} {self.path} without a Bearer token")
            raise _Refused(_unauthenticated())
        with self.fake._lock:
            entry = self.fake._tokens.get(authorization.removeprefix("Bearer ").strip())
            if entry is None or entry[1] < time.time():
                raise _Refused(_unauthenticated())
            return self.fake._mailboxes[entry[0]]

    # token endpoint

    def _token(self) -> _Answer:
        if self.method != "POST":
            return self._malformed(405, "token endpoint needs POST")
        form = {name: values[-1] for name, values in parse_qs(self.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return self._malformed(400, f"unsupported grant_type {form.get('grant_type')!r}")
        with self.fake._lock:
            box = next(
                (
                    box
                    for box in self.fake._mailboxes.values()
                    if box.account.refresh_token == form.get("refresh_token")
                ),
                None,
            )
            if box is None or box.account.revoked:
                return _Answer(
                    400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                )
            account = box.account
            if (form.get("client_id"), form.get("client_secret")) != (account.client_id, account.client_secret):
                return _Answer(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            token = f"ya29.fake-{next(self.fake._ids)}"
            self.fake._tokens[token] = (account.address.lower(), time.time() + 3599)
            self.fake.token_grants += 1
        return _Answer(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": form.get("scope") or " ".join(GMAIL_SCOPES),
            },
        )

    # users.messages.send

    def _send(self) -> _Answer:
        box = self._mailbox()
        try:
            request = json.loads(self.body)
        except ValueError:
            return self._malformed(400, "send: body is not JSON")
        if not isinstance(request, dict) or not isinstance(request.get("raw"), str):
            return self._malformed(400, "send: body has no 'raw' string")
        if set(request) - {"raw", "threadId"}:
            return self._malformed(400, f"send: unexpected fields {sorted(set(request) - {'raw', 'threadId'})}")
        encoded = request["raw"]
        if not _BASE64URL.match(encoded):
            return self._malformed(400, "send: raw is not base64url")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            mail = parse_mail(raw)
        except Exception as error:
            return self._malformed(400, f"send: raw does not decode: {error!r}")
        problems = _mail_problems(mail, box.account.address)
        if problems:
            return self._malformed(400, "send: " + "; ".join(problems))
        recipients = [address for _, address in getaddresses([str(value) for value in mail.get_all("To") or []])]
        if not recipients or not all(_ADDRESS.match(address) for address in recipients):
            return _Answer(400, google_error(400, "invalidArgument", "Invalid To header"))
        with self.fake._lock:
            thread_id = request.get("threadId")
            if thread_id is not None and not any(m.thread_id == thread_id for m in box.messages.values()):
                return _Answer(404, google_error(404, "notFound", "Requested entity was not found."))
            if thread_id is not None:
                thread_id = self._check_threading(box, mail, thread_id)
            if self.fake.replace_message_ids:
                del mail["Message-ID"]
                mail["Message-ID"] = make_msgid(domain="mail.gmail.com")
                raw = mail.as_bytes(policy=policy.SMTP)
            stored = self.fake._store(box, raw, ["SENT"], thread_id)
            for recipient in recipients:
                if recipient.lower() in self.fake._mailboxes and recipient.lower() != box.account.address.lower():
                    target = self.fake._mailboxes[recipient.lower()]
                    self.fake._store(target, raw, ["INBOX", "UNREAD"], self.fake._thread_of_references(target, mail))
        return _Answer(200, {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]})

    def _check_threading(self, box: Mailbox, mail: EmailMessage, thread_id: str) -> str | None:
        """Gmail files a message into `threadId` only when it is a proper reply (In-Reply-To,
        References, same subject); otherwise it silently starts a new thread, which for us is a bug."""
        thread = [m for m in box.messages.values() if m.thread_id == thread_id]
        ids_in_thread = {m.rfc_message_id for m in thread}
        problems = []
        in_reply_to = str(mail["In-Reply-To"] or "")
        references = [_bare(value) for value in str(mail["References"] or "").split()]
        if _bare(in_reply_to) not in ids_in_thread:
            problems.append("In-Reply-To does not name a message of the thread")
        if not references or references[-1] != _bare(in_reply_to):
            problems.append("References does not end with the In-Reply-To message")
        if _base_subject(str(mail["Subject"] or "")) != _base_subject(str(thread[0].header("Subject") or "")):
            problems.append("Subject differs from the thread's")
        if problems:
            self.fake._error(f"send: threadId {thread_id} given but " + ", ".join(problems) + " (Gmail: new thread)")
            return None
        return thread_id

    # users.messages.list

    def _list(self) -> _Answer:
        box = self._mailbox()
        query = self._param("q")
        include_spam_trash = self._param("includeSpamTrash", "false") == "true"
        labels = self.query.get("labelIds", [])
        try:
            terms = _parse_query(query or "")
        except ValueError as error:
            return self._malformed(400, f"list: {error}")
        lag = self.fake.search_lag_seconds if query else self.fake.listing_lag_seconds
        now = self.fake.now()
        with self.fake._lock:
            candidates = sorted(box.messages.values(), key=lambda m: (m.internal_date_ms, m.sequence), reverse=True)
            matches = [
                m
                for m in candidates
                if now - m.stored_at >= lag
                and (include_spam_trash or not {"SPAM", "TRASH"} & set(m.label_ids))
                and all(label in m.label_ids for label in labels)
                and all(term(m) for term in terms)
            ]
        page, token = self._page(matches)
        response: dict[str, Any] = {"resultSizeEstimate": len(page)}
        if page:
            response["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if token:
            response["nextPageToken"] = token
        return _Answer(200, response)

    def _page(self, items: list[Any]) -> tuple[list[Any], str | None]:
        size = min(int(self._param("maxResults", "100") or 100), 500)
        start = int(self._param("pageToken", "0") or 0)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    # users.messages.get

    def _get(self) -> _Answer:
        box = self._mailbox()
        message_id = self.path.rsplit("/", 1)[-1]
        form = self._param("format", "full")
        with self.fake._lock:
            stored = box.messages.get(message_id)
        if stored is None:
            return _Answer(404, google_error(404, "notFound", "Requested entity was not found."))
        if form not in ("minimal", "full", "raw", "metadata"):
            return self._malformed(400, f"get: unknown format {form!r}")
        if self.query.get("metadataHeaders") and form != "metadata":
            self.fake._error("get: metadataHeaders without format=metadata has no effect")
        mail = stored.mail
        resource: dict[str, Any] = {
            "id": stored.id,
            "threadId": stored.thread_id,
            "labelIds": list(stored.label_ids),
            "snippet": _snippet(mail),
            "sizeEstimate": len(stored.raw),
            "historyId": str(stored.history_id),
            "internalDate": str(stored.internal_date_ms),
        }
        if form == "raw":
            resource["raw"] = base64.urlsafe_b64encode(stored.raw).decode().rstrip("=")
        elif form == "metadata":
            wanted = {name.lower() for name in self.query.get("metadataHeaders", [])}
            headers = [h for h in _headers(mail) if not wanted or h["name"].lower() in wanted]
            resource["payload"] = {
                "partId": "",
                "mimeType": mail.get_content_type(),
                "filename": "",
                "headers": headers,
            }
        elif form == "full":
            resource["payload"] = _payload(mail, "")
        return _Answer(200, resource)

    # users.history.list

    def _history(self) -> _Answer:
        box = self._mailbox()
        start = self._param("startHistoryId")
        if not start or not start.isdigit():
            return self._malformed(400, "history: startHistoryId missing or not a number")
        types = set(self.query.get("historyTypes", []))
        if types - {"messageAdded"}:
            self.fake._error(f"history: the fake records messageAdded only, asked for {sorted(types)}")
        if self._param("labelId"):
            return self._malformed(400, "history: labelId filtering is not implemented by the fake")
        with self.fake._lock:
            if int(start) < box.history_floor:
                return _Answer(404, google_error(404, "notFound", "Requested entity was not found."))
            records = [record for record in box.history if int(record["id"]) > int(start)]
            current = box.history_id
        page, token = self._page(records)
        response: dict[str, Any] = {"historyId": str(current)}
        if page:
            response["history"] = page
        if token:
            response["nextPageToken"] = token
        return _Answer(200, response)

    # users.getProfile

    def _profile(self) -> _Answer:
        box = self._mailbox()
        with self.fake._lock:
            return _Answer(
                200,
                {
                    "emailAddress": box.account.address,
                    "messagesTotal": len(box.messages),
                    "threadsTotal": len({m.thread_id for m in box.messages.values()}),
                    "historyId": str(box.history_id),
                },
            )

    def _mailbox(self) -> Mailbox:
        assert self.box is not None
        return self.box


# --- helpers ----------------------------------------------------------------------------


def _unauthenticated() -> _Answer:
    payload = google_error(401, "authError", "Request had invalid authentication credentials.")
    return _Answer(401, payload, headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})


def _mail_problems(mail: EmailMessage, mailbox: str) -> list[str]:
    problems = []
    for name in ("From", "To", "Message-ID", "Date", "Subject"):
        if mail[name] is None:
            problems.append(f"no {name} header")
    if mail["From"] is not None and parseaddr(str(mail["From"]))[1].lower() != mailbox.lower():
        problems.append("From is not the authenticated mailbox (Gmail would rewrite it)")
    if mail["In-Reply-To"] is not None and mail["References"] is None:
        problems.append("In-Reply-To without References")
    for name in ("From", "Message-ID", "In-Reply-To", "References", "Date"):
        value = mail[name]
        problems.extend(f"{name} header defect: {defect}" for defect in getattr(value, "defects", ()))
    for part in mail.walk():
        problems.extend(f"MIME defect {type(defect).__name__}" for defect in part.defects)
    return problems


def _parse_query(query: str) -> list[Any]:
    """The subset of Gmail search the code uses; anything else is a test failure."""
    terms = []
    for token in shlex.split(query):
        negate = token.startswith("-")
        name, _, value = token.removeprefix("-").partition(":")
        if name == "rfc822msgid" and value and not negate:
            wanted = _bare(value)
            terms.append(lambda m, v=wanted: m.rfc_message_id == v)
        elif name == "in" and value in ("sent", "drafts"):
            label = "SENT" if value == "sent" else "DRAFT"
            terms.append(lambda m, n=negate, lb=label: (lb in m.label_ids) != n)
        elif name == "to" and value and not negate:
            recipient = value.lower()
            terms.append(lambda m, v=recipient: v in _recipients(m))
        elif name == "newer_than" and not negate and re.fullmatch(r"\d+[dmy]", value):
            days = int(value[:-1]) * {"d": 1, "m": 31, "y": 366}[value[-1]]
            cutoff = (datetime.now(UTC) - timedelta(days=days)).timestamp() * 1000
            terms.append(lambda m, c=cutoff: m.internal_date_ms >= c)
        else:
            raise ValueError(f"search term {token!r} is not supported by the fake")
    return terms


def _recipients(message: StoredMessage) -> set[str]:
    mail = message.mail
    values = [str(value) for name in ("To", "Cc", "Bcc") for value in (mail.get_all(name) or [])]
    return {address.lower() for _, address in getaddresses(values)}


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").lower()


def _base_subject(subject: str) -> str:
    return re.sub(r"^(\s*(re|fwd?)\s*:\s*)+", "", subject, flags=re.IGNORECASE).strip().lower()


def _headers(mail: EmailMessage) -> list[dict[str, str]]:
    return [{"name": name, "value": str(value)} for name, value in mail.items()]


def _snippet(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    return " ".join(str(text).split())[:100]


def _payload(part: EmailMessage, part_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": _headers(part),
    }
    if part.is_multipart():
        payload["body"] = {"size": 0}
        children = list(part.iter_parts())
        prefix = f"{part_id}." if part_id else ""
        payload["parts"] = [_payload(child, f"{prefix}{index}") for index, child in enumerate(children)]  # type: ignore[arg-type]
    else:
        data = part.get_payload(decode=True) or b""
        assert isinstance(data, bytes)
        payload["body"] = {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}
    return payload
