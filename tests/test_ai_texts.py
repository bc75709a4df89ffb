"""`{{ ai.<name> }}`: a model (a local OpenAI-compatible server that checks each request)
writes a text per contact from the campaign's prompt file, before launch with `campaign
generate` (and `campaign preview` shows it) or before the first step; a contact the model
could not write for gets the default, never an empty sentence. Bad prompts and templates are
refused when the campaign is created."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from db.campaigns_repo import CampaignCreateError, create_campaign
from db.contacts_repo import import_contacts
from db.engine import unit_of_work
from db.models import Contact, GeneratedText
from domain.campaign_yaml import CampaignFileError, load_campaign_file
from domain.contacts_csv import ContactRecord
from handlers.ai_write import WriteTexts
from handlers.base import JobFailed, JobRequest
from runtime.ai import ChatModel
from runtime.settings import AiSettings
from starter import cli_ai_texts
from tests.conftest import Database
from tests.jobs_support import jobs_closed
from tests.openai_fake import KEY, MODEL, FakeModel, fake_model
from tests.support import EMAIL_SENDER, PHONE_SENDER, POSTAL_ADDRESS, Outbound, seed

pytestmark = pytest.mark.timeout(120)

PROMPT = "Write one opening line for {{ first_name }} at {{ company | default('their company') }}."
DEFAULT = "I came across {{ company | default('your team') }} and had a quick question."
PEOPLE = [
    ContactRecord(line=2, email="jane@acme.example", first_name="Jane", company="Acme"),
    ContactRecord(line=3, email="joe@globex.example", first_name="Joe", company="Globex"),
]


def campaign_file(folder: Path, **changes: Any) -> Path:
    (folder / "prompts").mkdir(exist_ok=True)
    (folder / "prompts" / "first_line.md").write_text(PROMPT)
    data: dict[str, Any] = {
        "name": "AI campaign",
        "lead_groups": ["A"],
        "senders": {"email": [EMAIL_SENDER], "sms": [PHONE_SENDER], "voicemail": [PHONE_SENDER]},
        "window": "always",
        "quiet_hours": False,
        "postal_address": POSTAL_ADDRESS,
        "ai": {"first_line": {"prompt": "prompts/first_line.md", "default": DEFAULT}},
        "steps": [{"channel": "email", "subject": "Hi {{ first_name }}", "body": "{{ ai.first_line }}\n\nBest, Sam"}],
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(data | changes))
    return path


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with fake_model() as running:
        running.script["Jane"] = {"text": "Congrats on Acme's new Berlin office, Jane."}
        running.script["Joe"] = "{this is not json"
        yield running


def ai_settings(model: FakeModel) -> AiSettings:
    return AiSettings(base_url=model.base_url, model=MODEL, api_key=SecretStr(KEY), retries=0, timeout=2)


def written(db_sessions: Any) -> dict[str, tuple[str | None, str | None]]:
    with db_sessions() as session:
        rows = session.execute(
            select(Contact.email, GeneratedText.text, GeneratedText.error).join(
                Contact, Contact.id == GeneratedText.contact_id
            )
        )
        return {email: (text, error) for email, text, error in rows}


def test_the_prompt_is_read_with_the_campaign_file_and_mistakes_are_refused(db: Database, tmp_path: Path) -> None:
    spec = load_campaign_file(campaign_file(tmp_path))
    assert spec.ai["first_line"].prompt_text == PROMPT
    with pytest.raises(CampaignFileError, match=r"ai\.first_line\.prompt: cannot read .*nope\.md"):
        load_campaign_file(campaign_file(tmp_path, ai={"first_line": {"prompt": "nope.md", "default": "Hi"}}))
    with unit_of_work(db.sessions) as session:
        import_contacts(session, PEOPLE, "A", datetime.now(UTC))
    unknown = campaign_file(tmp_path, steps=[{"channel": "email", "subject": "Hi", "body": "{{ ai.last_line }}"}])
    with pytest.raises(CampaignCreateError, match="last_line"):
        seed(db.sessions, load_campaign_file(unknown), {})
    bad_default = campaign_file(tmp_path, ai={"first_line": {"prompt": "prompts/first_line.md", "default": "{{ x }}"}})
    with pytest.raises(CampaignCreateError, match=r"ai\.first_line\.default: 'x' is undefined"):
        seed(db.sessions, load_campaign_file(bad_default), {})
    without_file = load_campaign_file(campaign_file(tmp_path)).model_copy(deep=True)
    without_file.ai["first_line"].prompt_text = None
    with unit_of_work(db.sessions) as session, pytest.raises(CampaignCreateError, match="create the campaign from"):
        create_campaign(session, without_file, datetime.now(UTC))


def test_the_handler_stores_what_the_model_wrote_or_why_it_wrote_nothing(
    db: Database, tmp_path: Path, model: FakeModel
) -> None:
    campaign = seed(db.sessions, load_campaign_file(campaign_file(tmp_path)), {"A": PEOPLE})
    with db.sessions() as session:
        ids = dict(session.execute(select(Contact.email, Contact.id)).all())
    handler = WriteTexts(db.sessions, ChatModel(ai_settings(model)), "You write.")

    def run(email: str) -> Any:
        data = {"campaign_id": campaign, "contact_id": ids[email]}
        return handler.run(JobRequest("w", "ai", None, data, 0), lambda _: None).result

    assert run("jane@acme.example") == {"first_line": "written"}
    assert run("joe@globex.example")["first_line"].startswith("default: the model's answer is unusable")
    assert written(db.sessions) == {
        "jane@acme.example": ("Congrats on Acme's new Berlin office, Jane.", None),
        "joe@globex.example": (None, "the model's answer is unusable: JSONDecodeError"),
    }
    sent = model.requests[0]["messages"][1]["content"]
    assert sent == "Write one opening line for Jane at Acme.", "the prompt file, rendered for the contact"
    assert run("jane@acme.example") == {"first_line": "written before"}, "written once"

    model.script["Joe"] = {"text": "x" * 400}
    with db.sessions() as session:
        session.query(GeneratedText).delete()
        session.commit()
    assert "longer than 300 characters" in run("joe@globex.example")["first_line"]
    model.script["Joe"] = 503
    with db.sessions() as session:
        session.query(GeneratedText).delete()
        session.commit()
    with pytest.raises(JobFailed, match="did not answer") as failed:
        run("joe@globex.example")
    assert failed.value.retryable
    unconfigured = WriteTexts(db.sessions, None, "You write.")
    with pytest.raises(JobFailed, match="OUTBOUND_AI__MODEL") as refused:
        unconfigured.run(JobRequest("w", "ai", None, {"campaign_id": campaign, "contact_id": 1}, 0), lambda _: None)
    assert not refused.value.retryable


def test_a_written_text_records_model_tokens_and_latency_and_no_text_is_logged_or_returned(
    db: Database, tmp_path: Path, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    campaign = seed(db.sessions, load_campaign_file(campaign_file(tmp_path)), {"A": PEOPLE})
    with db.sessions() as session:
        ids = dict(session.execute(select(Contact.email, Contact.id)).all())
    handler = WriteTexts(db.sessions, ChatModel(ai_settings(model)), "You write.")

    with caplog.at_level(logging.DEBUG):
        results = [
            handler.run(JobRequest("w", "ai", None, {"campaign_id": campaign, "contact_id": ids[email]}, 0),
                        lambda _: None).result
            for email in ("jane@acme.example", "joe@globex.example")
        ]  # fmt: skip

    with db.sessions() as session:
        rows = {
            email: (row.model, row.prompt_tokens, row.completion_tokens, row.latency_ms)
            for email, row in session.execute(
                select(Contact.email, GeneratedText).join(Contact, Contact.id == GeneratedText.contact_id)
            )
        }
    calls = [record for record in caplog.records if record.getMessage() == "model call: write ai.first_line"]
    logged = [record.latency_ms for record in calls]  # type: ignore[attr-defined]
    assert rows == {
        "jane@acme.example": (MODEL, 120, 30, logged[0]),
        "joe@globex.example": (MODEL, 120, 30, logged[1]),
    }, "a text the model wrote and an answer it could not use: both calls are recorded as logged"
    assert all(latency >= 0 for latency in logged)
    for private in ("Write one opening line", "Jane at Acme", "Berlin office", "this is not json"):
        assert private not in caplog.text, f"{private!r} (a prompt or a completion) was logged"
        assert private not in repr(results), f"{private!r} (a prompt or a completion) is in the job's result"


async def test_generate_preview_then_launch_writes_the_rest_and_the_default_stands_in(
    outbound: Outbound, tmp_path: Path, model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound.overrides = {**outbound.overrides, "ai": ai_settings(model)}
    for name, value in {
        "OUTBOUND_DATABASE_URL": str(outbound.database_url),
        "OUTBOUND_TEMPORAL_ADDRESS": outbound.client.service_client.config.target_host,
        "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
        "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    campaign = seed(outbound.sessions, load_campaign_file(campaign_file(tmp_path)), {"A": PEOPLE})
    app = _campaign_app()
    async with outbound.worker():
        generated = await asyncio.to_thread(
            CliRunner().invoke, app, ["generate", str(campaign), "--contact", "jane@acme.example"]
        )
        assert generated.exit_code == 0, f"{generated.output}{generated.exception!r}"
        for _ in range(200):
            if "jane@acme.example" in written(outbound.sessions):
                break
            await asyncio.sleep(0.1)
        shown = await asyncio.to_thread(
            CliRunner().invoke, app, ["preview", str(campaign), "--contact", "jane@acme.example"]
        )
        assert shown.exit_code == 0, shown.output
        assert re.search(
            rf"ai\.first_line \(written by {MODEL}, 120\+30 tokens, \d+ ms\): Congrats on Acme's new Berlin office",
            shown.output,
        ), shown.output
        other = await asyncio.to_thread(
            CliRunner().invoke, app, ["preview", str(campaign), "--contact", "joe@globex.example"]
        )
        assert "ai.first_line (the default (nothing written)): I came across Globex" in other.output

        await (await outbound.launch(campaign)).result()
        await jobs_closed(outbound)
    mail = {
        path.read_text().split("To: ")[1].split("\n")[0].strip(): path.read_text() for path in outbound.files("email")
    }
    assert "Congrats on Acme's new Berlin office, Jane." in mail["jane@acme.example"]
    assert "I came across Globex and had a quick question." in mail["joe@globex.example"], "the default stood in"
    assert written(outbound.sessions)["joe@globex.example"][0] is None, "launch asked the model for Joe"
    assert sum("Jane" in request["messages"][1]["content"] for request in model.requests) == 1, "written once"


def _campaign_app() -> Any:
    import typer

    app = typer.Typer()
    cli_ai_texts.register(app)
    return app
