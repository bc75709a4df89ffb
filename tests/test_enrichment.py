"""Enrichment from a provider the jobs file describes, against a local provider that checks
each request (its auth header, its URL): what it knows becomes contact fields and template
variables with their source and time, imported values win unless `overwrite`, a provider
that fails is retried or fails the job as its answer says, and a contact is never left
half-updated. Then `outbound contacts enrich` end to end, and a campaign using
`{{ company_size }}`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from db.contacts_repo import import_contacts
from db.engine import unit_of_work
from db.models import Contact
from domain.contacts_csv import ContactRecord
from handlers.base import JobDone, JobFailed, JobRequest
from handlers.enrich import Enrich
from schemas.enrichment_provider import EnrichmentProvider
from starter.cli_contacts import contacts_app
from tests.conftest import Database
from tests.jobs_support import jobs_closed, serving
from tests.support import EMAIL_STEP, Outbound, campaign_spec, seed

pytestmark = pytest.mark.timeout(120)

KEY = "test-key-123"
PEOPLE = {
    "jane@acme.example": {"person": {"title": "CTO", "first": "Jane"}, "company": {"name": "Acme Corp", "size": 250}},
    "joe@acme.example": {"person": {"title": "VP Sales"}, "company": {"size": 250, "tz": "Not/AZone"}},
    "odd@acme.example": {"unexpected": {"shape": True}},
}


@dataclass
class Provider:
    url: str
    requests: list[str] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)  # email → statuses to answer first
    batches: list[list[str]] = field(default_factory=list)
    batch_failures: list[int] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[Provider]:
    app = FastAPI()
    state = Provider("")

    @app.get("/v1/people")
    async def person(request: Request, email: str) -> Response:
        state.requests.append(email)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": "bad key"}, status_code=401)
        queued = state.failures.get(email)
        if queued:
            status = queued.pop(0)
            if status == 0:
                await asyncio.sleep(2)  # longer than the handler's timeout
                status = 200
            else:
                return JSONResponse({"error": "busy"}, status_code=status, headers={"retry-after": "7"})
        if email == "garbled@acme.example":
            return Response("<html>oops</html>", media_type="text/html")
        if email not in PEOPLE:
            return JSONResponse({"error": "unknown"}, status_code=404)
        return JSONResponse(PEOPLE[email])

    @app.post("/v1/people/batch")
    async def people(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": "bad key"}, status_code=401)
        emails = (await request.json())["emails"]
        state.batches.append(emails)
        if state.batch_failures:
            return JSONResponse({"error": "busy"}, status_code=state.batch_failures.pop(0))
        known = [{"email": email.upper(), **PEOPLE[email]} for email in emails if email in PEOPLE]
        return JSONResponse({"data": {"results": known}})

    with serving(app) as base:
        state.url = base
        yield state


def spec(base: str, **changes: Any) -> EnrichmentProvider:
    data: dict[str, Any] = {
        "url": f"{base}/v1/people?email={{email}}",
        "auth": {"secret": "acme_data"},
        "fields": {"title": "person.title", "company": "company.name", "timezone": "company.tz"},
        "variables": {"company_size": "company.size"},
    }
    return EnrichmentProvider.model_validate(data | changes)


def handler(db: Database, provider: EnrichmentProvider, timeout: float = 1.0) -> Enrich:
    return Enrich(db.sessions, "acme-data", provider, KEY, timeout, httpx.Client())


def add(db: Database, email: str, **values: Any) -> int:
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [ContactRecord(line=2, email=email, **values)], "leads", datetime.now(UTC))
        return int(session.scalars(select(Contact.id).where(Contact.email == email)).one())


def contact(db: Database, contact_id: int) -> Contact:
    with db.sessions() as session:
        row = session.get_one(Contact, contact_id)
        session.expunge(row)
        return row


def run(enrich: Enrich, contact_id: int) -> Any:
    request = JobRequest(job_key="e-1", queue="acme-data", name=None, data={"contact_id": contact_id}, attempts_made=0)
    return enrich.run(request, lambda _: None).result


def test_what_the_provider_knows_fills_what_the_contact_lacks(db: Database, provider: Provider) -> None:
    jane = add(db, "jane@acme.example", company="Acme (imported)")
    result = run(handler(db, spec(provider.url)), jane)
    assert result["applied"] == ["title", "company_size"], "the imported company wins"
    assert result["missing"] == ["timezone"]
    enriched = contact(db, jane)
    assert (enriched.title, enriched.company) == ("CTO", "Acme (imported)")
    assert enriched.variables["company_size"] == 250
    assert enriched.enrichment is not None
    record = enriched.enrichment["acme-data"]
    assert record["values"] == {"title": "CTO", "company": "Acme Corp", "company_size": 250}
    assert datetime.fromisoformat(record["at"]) <= datetime.now(UTC)
    assert provider.requests == ["jane@acme.example"]

    overwriting = run(handler(db, spec(provider.url, overwrite=True)), jane)
    assert "company" in overwriting["applied"]
    assert contact(db, jane).company == "Acme Corp"


def test_a_later_enrichment_replaces_its_own_values_and_a_bad_time_zone_is_not_stored(
    db: Database, provider: Provider
) -> None:
    joe = add(db, "joe@acme.example")
    run(handler(db, spec(provider.url)), joe)
    assert contact(db, joe).timezone is None, "Not/AZone is no IANA zone"
    PEOPLE["joe@acme.example"]["person"]["title"] = "CRO"
    try:
        assert run(handler(db, spec(provider.url)), joe)["applied"] == ["title", "company_size"]
    finally:
        PEOPLE["joe@acme.example"]["person"]["title"] = "VP Sales"
    assert contact(db, joe).title == "CRO"


def test_an_unknown_contact_is_nothing_known_and_changes_nothing(db: Database, provider: Provider) -> None:
    ann = add(db, "ann@acme.example", title="Buyer")
    assert run(handler(db, spec(provider.url)), ann) == {"found": False, "provider": "acme-data"}
    assert contact(db, ann).enrichment is None


@pytest.mark.parametrize(
    ("email", "failures", "retryable", "message"),
    [
        ("jane@acme.example", [503], True, "HTTP 503"),
        ("jane@acme.example", [429], True, "HTTP 429"),
        ("jane@acme.example", [0], True, "did not answer within"),
        ("jane@acme.example", [403], False, "HTTP 403"),
        ("garbled@acme.example", [], True, "not JSON"),
        ("odd@acme.example", [], False, "none of the mapped paths"),
    ],
)
def test_a_failing_provider_is_retried_or_fails_the_job_and_the_contact_is_untouched(
    db: Database, provider: Provider, email: str, failures: list[int], retryable: bool, message: str
) -> None:
    someone = add(db, email, title="Imported")
    provider.failures[email] = list(failures)
    with pytest.raises(JobFailed, match=message) as failed:
        run(handler(db, spec(provider.url), timeout=0.5), someone)
    assert failed.value.retryable is retryable
    if 429 in failures or 503 in failures:
        assert failed.value.retry_after == 7
    untouched = contact(db, someone)
    assert (untouched.title, untouched.enrichment, untouched.variables) == ("Imported", None, {})


def batch_spec(base: str) -> EnrichmentProvider:
    batch = {"url": f"{base}/v1/people/batch", "size": 2, "results": "data.results", "match": "email"}
    return spec(base, batch=batch)


def test_a_batch_endpoint_gets_many_contacts_per_request_and_each_gets_its_own_outcome(
    db: Database, provider: Provider
) -> None:
    ids = [add(db, email) for email in ("jane@acme.example", "joe@acme.example", "ann@acme.example")]
    requests = [JobRequest(f"e:{n}", "acme-data", None, {"contact_id": n}, 0) for n in [*ids, 999]]
    outcomes = handler(db, batch_spec(provider.url)).run_batch(requests, lambda _: None)
    assert provider.batches == [["jane@acme.example", "joe@acme.example"], ["ann@acme.example"]]
    assert provider.requests == [], "no request per contact"
    jane, joe, ann, missing = (outcome.result if isinstance(outcome, JobDone) else outcome for outcome in outcomes)
    assert jane["applied"] == ["title", "company", "company_size"]
    assert joe["values"]["title"] == "VP Sales"
    assert ann == {"found": False, "provider": "acme-data"}
    assert isinstance(missing, JobFailed), "no contact 999: its own failure"
    assert not missing.retryable
    assert contact(db, ids[0]).title == "CTO"

    provider.batch_failures.append(503)
    again = [JobRequest("e:x", "acme-data", None, {"contact_id": n}, 0) for n in ids[:2]]
    failed = handler(db, batch_spec(provider.url)).run_batch(again, lambda _: None)
    assert all(isinstance(each, JobFailed) and each.retryable for each in failed), "the request's contacts retry"


def test_a_wrong_key_fails_the_job_at_once(db: Database, provider: Provider) -> None:
    jane = add(db, "jane@acme.example")
    wrong = Enrich(db.sessions, "acme-data", spec(provider.url), "not-the-key", 1.0, httpx.Client())
    with pytest.raises(JobFailed, match="HTTP 401") as failed:
        run(wrong, jane)
    assert not failed.value.retryable


def test_a_provider_description_with_a_mistake_is_refused_naming_it() -> None:
    base = "https://data.example"
    with pytest.raises(ValidationError, match="'size' is not a contact field"):
        spec(base, fields={"size": "company.size"})
    with pytest.raises(ValidationError, match="unknown placeholder"):
        spec(base, url=f"{base}/people?mail={{mail}}")
    with pytest.raises(ValidationError, match="is not a path"):
        spec(base, variables={"size": "company..size"})
    with pytest.raises(ValidationError, match=r"must contain \{secret\}"):
        spec(base, auth={"secret": "acme_data", "value": "Bearer KEY"})
    with pytest.raises(ValueError, match="OUTBOUND_ENRICHMENT_SECRETS__ACME_DATA"):
        Enrich(None, "acme-data", spec(base), None, 1.0, httpx.Client())  # type: ignore[arg-type]


async def test_contacts_enrich_asks_a_batch_endpoint_then_a_campaign_uses_the_enriched_variable(
    outbound: Outbound, provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = tmp_path / "jobs.yaml"
    queue = {"name": "acme-data", "handler": "enrich", "rate_limit": 50, "timeout": "5s",
             "provider": batch_spec(provider.url).model_dump(mode="json", exclude_none=True)}  # fmt: skip
    jobs.write_text(yaml.safe_dump({"queues": [queue]}))
    outbound.overrides = {**outbound.overrides, "jobs_file": jobs, "enrichment_secrets": {"acme_data": KEY}}
    for name, value in {
        "OUTBOUND_DATABASE_URL": str(outbound.database_url),
        "OUTBOUND_TEMPORAL_ADDRESS": outbound.client.service_client.config.target_host,
        "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
        "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
        "OUTBOUND_JOBS_FILE": str(jobs),
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    people = [ContactRecord(line=2, email="jane@acme.example", first_name="Jane"),
              ContactRecord(line=3, email="nobody@acme.example", first_name="Nobody")]  # fmt: skip
    with unit_of_work(outbound.sessions) as session:
        import_contacts(session, people, "A", datetime.now(UTC))
    async with outbound.worker():
        result = await asyncio.to_thread(
            CliRunner().invoke, contacts_app, ["enrich", "--group", "A", "--provider", "acme-data"]
        )
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"
        assert "Enriching 2 contact(s) of 'A' from acme-data" in result.output
        deadline = time.monotonic() + 30
        while not provider.batches or contact_variables(outbound).get("jane@acme.example") is None:
            assert time.monotonic() < deadline, "the enrichment job did not finish"
            await asyncio.sleep(0.1)
        assert provider.batches == [["jane@acme.example", "nobody@acme.example"]], "one request for both"
        body = "Hi {{ first_name }}, a team of {{ company_size | default('your size') }}"
        campaign = seed(outbound.sessions, campaign_spec([{**EMAIL_STEP, "body": body}]), {})
        await (await outbound.launch(campaign)).result()
        await jobs_closed(outbound)
    sent = "\n".join(path.read_text() for path in outbound.files("email"))
    assert "Hi Jane, a team of 250" in sent
    assert "Hi Nobody, a team of your size" in sent, "nothing known: the template's default"
    refused = await asyncio.to_thread(CliRunner().invoke, contacts_app, ["enrich", "--group", "A", "--provider", "x"])
    assert "no queue named 'x'" in str(refused.exception)


def contact_variables(outbound: Outbound) -> dict[str, Any]:
    with outbound.sessions() as session:
        rows = session.execute(select(Contact.email, Contact.variables))
        return {email: (variables or {}).get("company_size") for email, variables in rows}


def test_the_answer_path_reader() -> None:
    from handlers.enrich import _MISSING, answer_path

    answer = json.loads('{"a": {"b": [{"c": 1}, {"c": null}]}}')
    assert answer_path(answer, "a.b.0.c") == 1
    assert answer_path(answer, "a.b.1.c") is _MISSING
    assert answer_path(answer, "a.b.5.c") is _MISSING
    assert answer_path(answer, "a.x") is _MISSING
