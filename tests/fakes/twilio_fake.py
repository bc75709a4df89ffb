"""A local HTTP fake of the slice of Twilio's REST API that Outbound uses.

The real `twilio.rest.Client` talks to it over HTTP, so the SDK's request encoding,
authentication, paging and error parsing are all exercised. Like Twilio, a new message
or call is `queued` with no `date_sent` / `start_time` yet. Anything our code sends
that Twilio would reject (or that breaks our own contract, such as a call without
`MachineDetection=DetectMessageEnd`) is answered like Twilio would and also recorded
in `errors`, so a test can assert that nothing went wrong silently.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import SecretStr

from runtime.settings import TwilioSettings

API_VERSION = "2010-04-01"
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<collection>Messages|Calls)\.json$")
_MESSAGE_PARAMS = {"To", "From", "Body", "StatusCallback", "MediaUrl", "MessagingServiceSid"}
_CALL_PARAMS = {"To", "From", "Url", "MachineDetection", "AsyncAmd", "StatusCallback", "StatusCallbackEvent"}
_FILTERS = {
    "Messages": ("DateSent", "date_sent"),
    "Calls": ("StartTime", "start_time"),
}

Collection = Literal["Messages", "Calls"]
LostResponse = Literal["500", "drop"]


@dataclass
class Fault:
    """One scripted answer to the next create (or search): an error body, or a lost response."""

    status: int = 500
    code: int | None = None
    message: str = "fault injected by the fake"
    lose_after_create: LostResponse | None = None  # create the record, then answer 500 or hang up
    drop: bool = False  # hang up without answering and without acting
    delay_seconds: float = 0.0
    page: int | None = None  # searches only: fail this page (0 is the first), not the next request


@dataclass
class Created:
    """A record the fake created, with the exact form parameters the SDK sent."""

    collection: Collection
    params: dict[str, list[str]]
    resource: dict[str, Any]

    @property
    def sid(self) -> str:
        return str(self.resource["sid"])

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass
class TwilioFake:
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    records: list[Created] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)
    create_faults: deque[Fault] = field(default_factory=deque)
    search_faults: deque[Fault] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TwilioFake:
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="twilio-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TwilioFake:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def settings(self, *, auth_token: str | None = None) -> TwilioSettings:
        token = SecretStr(auth_token or self.auth_token)
        return TwilioSettings(account_sid=self.account_sid, auth_token=token, api_base=self.api_base)

    # -- scripting -------------------------------------------------------------------------

    def fail_next_create(self, status: int = 400, code: int | None = None, message: str = "rejected") -> None:
        self.create_faults.append(Fault(status=status, code=code, message=message))

    def lose_next_create_response(self, how: LostResponse = "500") -> None:
        self.create_faults.append(Fault(lose_after_create=how))

    def drop_next_create(self) -> None:
        """The connection breaks before Twilio acts: nothing is created."""
        self.create_faults.append(Fault(drop=True))

    def fail_next_search(self, status: int = 500, *, drop: bool = False, page: int | None = None) -> None:
        self.search_faults.append(Fault(status=status, drop=drop, page=page))

    def delay_next_create(self, seconds: float) -> None:
        self.create_faults.append(Fault(status=0, delay_seconds=seconds))

    def seed(
        self, collection: Collection, *, to: str, from_: str, body: str | None = None, created: datetime
    ) -> Created:
        """A record made earlier (by another step, or days ago), as if it had gone out."""
        with self._lock:
            return self._store(collection, {"To": [to], "From": [from_], "Body": [body or ""]}, created, sent=True)

    # -- views -----------------------------------------------------------------------------

    def created(self, collection: Collection) -> list[Created]:
        with self._lock:
            return [record for record in self.records if record.collection == collection]

    @property
    def messages(self) -> list[Created]:
        return self.created("Messages")

    @property
    def calls(self) -> list[Created]:
        return self.created("Calls")

    # -- request handling (called from the server's threads) ---------------------------------

    def _store(self, collection: Collection, params: dict[str, list[str]], when: datetime, *, sent: bool) -> Created:
        prefix = "SM" if collection == "Messages" else "CA"
        sid = prefix + secrets.token_hex(16)
        stamp = format_datetime(when.astimezone(UTC), usegmt=True)
        first = {key: values[0] for key, values in params.items() if values}
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": first.get("To"),
            "from": first.get("From"),
            "status": ("sent" if collection == "Messages" else "completed") if sent else "queued",
            "direction": "outbound-api",
            "date_created": stamp,
            "date_updated": stamp,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/{collection}/{sid}.json",
        }
        if collection == "Messages":
            resource |= {"body": first.get("Body"), "date_sent": stamp if sent else None, "num_segments": "1"}
            resource |= {"error_code": None, "error_message": None, "price": None, "price_unit": "USD"}
        else:
            resource |= {"start_time": stamp if sent else None, "end_time": None, "answered_by": None}
            resource |= {"duration": None, "price": None, "price_unit": "USD"}
        record = Created(collection, params, resource)
        self.records.append(record)
        return record

    def _check_create(self, collection: Collection, params: dict[str, list[str]]) -> tuple[int, str] | None:
        """Twilio's answer to a create it would refuse, recorded as a test error as well."""
        allowed = _MESSAGE_PARAMS if collection == "Messages" else _CALL_PARAMS
        problems = [f"unexpected parameter {name}" for name in params if name not in allowed]
        for required in ("To", "From"):
            if not params.get(required):
                problems.append(f"missing {required}")
        if collection == "Messages" and not (params.get("Body") or params.get("MediaUrl")):
            problems.append("missing Body")
        if collection == "Calls":
            if not params.get("Url"):
                problems.append("missing Url")
            if params.get("MachineDetection") != ["DetectMessageEnd"]:
                problems.append(f"MachineDetection is {params.get('MachineDetection')}, not DetectMessageEnd")
            for event in params.get("StatusCallbackEvent", []):
                if event not in ("initiated", "ringing", "answered", "completed"):
                    problems.append(f"unknown StatusCallbackEvent {event}")
        for url_param in ("StatusCallback", "Url"):
            for value in params.get(url_param, []):
                if not re.match(r"^https?://[^/\s]+", value):
                    problems.append(f"{url_param} is not an absolute URL")
        if not problems:
            return None
        self.errors.extend(f"{collection} create: {problem}" for problem in problems)
        return 400, "; ".join(problems)

    def _list(self, collection: Collection, query: dict[str, list[str]], path: str) -> dict[str, Any]:
        to, from_ = (query.get(name, [None])[0] for name in ("To", "From"))
        param, attribute = _FILTERS[collection]
        after, before = (_parse_bound(query.get(param + suffix, [None])[0]) for suffix in (">", "<"))
        with self._lock:
            matching = [
                record.resource
                for record in self.records
                if record.collection == collection
                and (to is None or record.resource["to"] == to)
                and (from_ is None or record.resource["from"] == from_)
                and _within(record.resource.get(attribute), after, before)
            ]
        matching.reverse()  # newest first, like Twilio
        size = int(query.get("PageSize", ["50"])[0])
        offset = int(query.get("PageToken", ["PO0"])[0].removeprefix("PO"))
        page = offset // size
        chunk = matching[offset : offset + size]

        def link(new_offset: int) -> str:
            kept = {key: values for key, values in query.items() if key not in ("PageToken", "Page")}
            extra = {"Page": [str(new_offset // size)], "PageToken": [f"PO{new_offset}"]}
            return f"{path}?{urlencode({**kept, **extra}, doseq=True)}"

        return {
            collection.lower(): chunk,
            "page": page,
            "page_size": size,
            "start": offset,
            "end": offset + max(len(chunk) - 1, 0),
            "uri": link(offset),
            "first_page_uri": link(0),
            "next_page_uri": link(offset + size) if offset + size < len(matching) else None,
            "previous_page_uri": link(max(offset - size, 0)) if offset else None,
        }


def _parse_bound(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _within(stamp: str | None, after: datetime | None, before: datetime | None) -> bool:
    """Twilio's date filters skip records without the date (queued messages, unstarted calls)."""
    if after is None and before is None:
        return True
    if stamp is None:
        return False
    moment = parsedate_to_datetime(stamp)
    return (after is None or moment >= after) and (before is None or moment <= before)


class _Handler(BaseHTTPRequestHandler):
    twilio: TwilioFake

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.twilio
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True) if length else {}
        with fake._lock:
            fake.requests.append((method, self.path))
        match = _PATH.match(url.path)
        if match is None:
            fake.errors.append(f"unknown endpoint {method} {url.path}")
            return self._error(404, 20404, "The requested resource was not found")
        if not self._authorized(match["account"]):
            return self._error(401, 20003, "Authenticate")
        collection: Collection = match["collection"]  # type: ignore[assignment]
        if method == "GET":
            return self._search(collection, parse_qs(url.query, keep_blank_values=True), url.path)
        return self._create(collection, form)

    def _authorized(self, account: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            self.twilio.errors.append("request without HTTP Basic auth")
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == account == self.twilio.account_sid and password == self.twilio.auth_token

    def _create(self, collection: Collection, form: dict[str, list[str]]) -> None:
        fake = self.twilio
        with fake._lock:
            fault = fake.create_faults.popleft() if fake.create_faults else None
        if fault and fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault and fault.drop:
            return self._hang_up()
        if fault and fault.status and not fault.lose_after_create:
            return self._error(fault.status, fault.code, fault.message)
        rejection = fake._check_create(collection, form)
        if rejection is not None:
            return self._error(rejection[0], 21000, rejection[1])
        with fake._lock:
            record = fake._store(collection, form, fake.clock(), sent=False)
        if fault and fault.lose_after_create == "drop":
            return self._hang_up()
        if fault and fault.lose_after_create == "500":
            return self._error(500, 20500, "Internal Server Error")
        self._json(201, record.resource)

    def _search(self, collection: Collection, query: dict[str, list[str]], path: str) -> None:
        fake = self.twilio
        page = int(query.get("Page", ["0"])[0])
        with fake._lock:
            due = fake.search_faults and fake.search_faults[0].page in (None, page)
            fault = fake.search_faults.popleft() if due else None
        if fault and fault.drop:
            return self._hang_up()
        if fault:
            return self._error(fault.status, fault.code, fault.message)
        self._json(200, fake._list(collection, query, path))

    def _error(self, status: int, code: int | None, message: str) -> None:
        more_info = f"https://www.twilio.com/docs/errors/{code}" if code else None
        self._json(status, {"code": code, "message": message, "more_info": more_info, "status": status})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hang_up(self) -> None:
        """Close the socket without a status line: the client sees a dropped connection."""
        self.close_connection = True
