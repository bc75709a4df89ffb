"""The `enrich` handler: ask a provider (as the jobs file describes it) about one contact
and store what it knows, with its source and time.

A job's data names the contact: `{"contact_id": 42}`. The provider's JSON answer is read
through the queue's `fields` (contact columns) and `variables` (template variables, so
`{{ company_size }}` works in a campaign). A value the contact already has wins unless the
provider says `overwrite: true`; a value an earlier enrichment by this provider wrote is
replaced. Everything the job changes is written in one transaction, or nothing is.

How the answer is read: 2xx with JSON is data (none of the mapped paths in it fails the job:
the mapping no longer fits the provider); 404 is "nothing known" (the job completes); 408,
425, 429, 5xx, timeouts and broken connections are retried (`Retry-After` honoured); any
other 4xx fails the job (a configuration error: a bad key, a bad URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from db.engine import SessionFactory, unit_of_work
from db.models import Contact
from handlers.base import JobDone, JobFailed, JobRequest, ProgressReport
from handlers.http_delegation import RETRYABLE_4XX, retry_after_seconds
from schemas.campaign_file import validate_timezone
from schemas.enrichment_provider import EnrichmentProvider

_MISSING = object()


def answer_path(answer: Any, path: str) -> Any:
    """The value at `a.b.0.c` in a JSON answer, or _MISSING; a JSON null counts as missing."""
    here = answer
    for part in path.split("."):
        if isinstance(here, dict) and part in here:
            here = here[part]
        elif isinstance(here, list) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
        else:
            return _MISSING
    return _MISSING if here is None else here


class Enrich:
    def __init__(
        self, sessions: SessionFactory, name: str, provider: EnrichmentProvider, secret: str | None,
        timeout_seconds: float, client: httpx.Client,
    ) -> None:  # fmt: skip
        if provider.auth is not None and secret is None:
            raise ValueError(
                f"queue {name}: its provider authenticates with the secret {provider.auth.secret!r};"
                f" set OUTBOUND_ENRICHMENT_SECRETS__{provider.auth.secret.upper()}"
            )
        self.sessions = sessions
        self.name = name
        self.provider = provider
        self.secret = secret
        self.timeout = timeout_seconds
        self.client = client

    def run(self, request: JobRequest, report_progress: ProgressReport) -> JobDone:
        contact_id = _contact_id(request)
        values = self._contact_values(contact_id)
        return self._apply(contact_id, values, self._ask(values))

    def run_batch(self, requests: Sequence[JobRequest], report_progress: ProgressReport) -> list[JobDone | JobFailed]:
        """Many contacts of a bulk job: in requests of `batch.size` to the provider's batch
        endpoint when it has one, else one by one. Each contact gets its own outcome; a
        failed request fails (or retries) the contacts it carried, no others."""
        outcomes: list[JobDone | JobFailed] = []
        if self.provider.batch is None:
            for request in requests:
                outcomes.append(_outcome(partial(self.run, request, report_progress)))
            return outcomes
        size = self.provider.batch.size
        for start in range(0, len(requests), size):
            outcomes += self._run_chunk(requests[start : start + size])
            report_progress(None)
        return outcomes

    def _run_chunk(self, requests: Sequence[JobRequest]) -> list[JobDone | JobFailed]:
        assert self.provider.batch is not None
        batch = self.provider.batch
        contacts: dict[int, tuple[int, dict[str, str]]] = {}  # position → (contact id, values)
        outcomes: list[JobDone | JobFailed | None] = [None] * len(requests)
        for position, request in enumerate(requests):
            try:
                contact_id = _contact_id(request)
                contacts[position] = (contact_id, self._contact_values(contact_id, needs_email=True))
            except JobFailed as failure:
                outcomes[position] = failure
        if contacts:
            emails = sorted({values["email"] for _, values in contacts.values()})
            try:
                answer = self._request("POST", batch.url, {batch.key: emails})
                listed = answer_path(answer, batch.results) if answer is not None else []
                if not isinstance(listed, list):
                    raise JobFailed(f"{self.name}'s batch answer has no list at {batch.results!r}", retryable=False)
                by_email = {str(answer_path(result, batch.match)).lower(): result for result in listed}
                for position, (contact_id, values) in contacts.items():
                    found = by_email.get(values["email"].lower())
                    outcomes[position] = _outcome(partial(self._apply, contact_id, values, found))
            except JobFailed as failure:
                for position in contacts:
                    outcomes[position] = failure
        return [outcome for outcome in outcomes if outcome is not None]

    def _apply(self, contact_id: int, values: dict[str, str], answer: Any) -> JobDone:
        if answer is None:
            return JobDone(result={"found": False, "provider": self.name})
        found = {target: value for target, path in self.provider.mapping.items()
                 if (value := answer_path(answer, path)) is not _MISSING}  # fmt: skip
        missing = sorted(set(self.provider.mapping) - set(found))
        if not found:
            paths = ", ".join(self.provider.mapping.values())
            raise JobFailed(f"none of the mapped paths are in {self.name}'s answer ({paths})", retryable=False)
        applied = self._store(contact_id, found, values["email"])
        return JobDone(
            result={"found": True, "provider": self.name, "values": found, "applied": applied, "missing": missing}
        )

    def _contact_values(self, contact_id: int, *, needs_email: bool = False) -> dict[str, str]:
        with self.sessions() as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                raise JobFailed(f"no contact {contact_id}", retryable=False)
            email = contact.email or ""
            values = {
                "email": email,
                "domain": email.rpartition("@")[2],
                "first_name": contact.first_name or "",
                "last_name": contact.last_name or "",
                "company": contact.company or "",
                "phone": contact.phone or "",
            }
        needed = {name for name in values if f"{{{name}}}" in self.provider.url or any(
            f"{{{name}}}" in template for template in (self.provider.body or {}).values()
        )} | ({"email"} if needs_email else set())  # fmt: skip
        empty = sorted(name for name in needed if not values[name])
        if empty:
            raise JobFailed(f"contact {contact_id} has no {', '.join(empty)}, which {self.name} needs", retryable=False)
        return values

    def _ask(self, values: dict[str, str]) -> Any:
        """The provider's JSON answer, or None when it knows nothing of the contact (404)."""
        url = self.provider.url.format(**{name: quote(value, safe="@") for name, value in values.items()})
        body = {key: template.format(**values) for key, template in (self.provider.body or {}).items()}
        return self._request(self.provider.method, url, body if self.provider.method == "POST" else None)

    def _request(self, method: str, url: str, body: Any) -> Any:
        """One request to the provider: its JSON answer, None for a 404, JobFailed otherwise."""
        headers = {"accept": "application/json"}
        if self.provider.auth is not None and self.secret is not None:
            headers[self.provider.auth.header] = self.provider.auth.value.format(secret=self.secret)
        try:
            response = self.client.request(method, url, headers=headers, json=body, timeout=self.timeout)
        except httpx.TimeoutException:
            raise JobFailed(f"{self.name} did not answer within {self.timeout:g} s", retryable=True) from None
        except httpx.HTTPError as error:
            raise JobFailed(f"cannot reach {self.name}: {type(error).__name__}", retryable=True) from None
        status = response.status_code
        if status == 404:
            return None
        if not 200 <= status < 300:
            retryable = status >= 500 or status in RETRYABLE_4XX
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise JobFailed(f"{self.name} answered HTTP {status}", retryable=retryable, retry_after=retry_after)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise JobFailed(f"{self.name} answered {status} with a body that is not JSON", retryable=True) from None

    def _store(self, contact_id: int, found: dict[str, Any], email: str) -> list[str]:
        """Write what the contact lacks (or everything, with `overwrite`) and the record of
        this enrichment, in one transaction; the targets written."""
        now = datetime.now(UTC)
        applied: list[str] = []
        with unit_of_work(self.sessions) as session:
            contact = session.get(Contact, contact_id, with_for_update=True)
            if contact is None or (contact.email or "") != email:
                return applied  # deleted, or its address changed while the provider was asked
            earlier = ((contact.enrichment or {}).get(self.name) or {}).get("values", {})
            variables = dict(contact.variables or {})
            for target, value in found.items():
                if target in self.provider.fields:
                    current = getattr(contact, target)
                    if target == "timezone" and not _known_zone(value):
                        continue  # an IANA name or nothing: slotting reads it
                    if self._may_write(current, earlier.get(target)):
                        setattr(contact, target, str(value)[:200])
                        applied.append(target)
                elif self._may_write(variables.get(target), earlier.get(target)):
                    variables[target] = value
                    applied.append(target)
            contact.variables = variables
            record = {"at": now.isoformat(), "values": found}
            contact.enrichment = {**(contact.enrichment or {}), self.name: record}
            contact.updated_at = now
        return applied

    def _may_write(self, current: Any, written_before: Any) -> bool:
        return self.provider.overwrite or current in (None, "") or current == written_before


def _contact_id(request: JobRequest) -> int:
    contact_id = request.data.get("contact_id")
    if not isinstance(contact_id, int) or isinstance(contact_id, bool):
        raise JobFailed("enrich takes {'contact_id': N}", retryable=False)
    return contact_id


def _outcome(call: Callable[[], JobDone]) -> JobDone | JobFailed:
    try:
        return call()
    except JobFailed as failure:
        return failure


def _known_zone(value: Any) -> bool:
    try:
        validate_timezone(str(value))
    except ValueError:
        return False
    return True
