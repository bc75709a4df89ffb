"""`outbound dlq list / show / discard` on SQLite and PostgreSQL (no Temporal needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner, Result

from db.engine import unit_of_work
from db.models import DeadLetter, Step, StepExecution
from starter.cli_dlq import dlq_app
from tests.conftest import Database
from tests.support import EMAIL_STEP, SMS_STEP, campaign_spec, people, seed

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def failed(db: Database, campaign: int, position: int, contact_ids: list[int], error_type: str) -> list[int]:
    """FAILED executions with their dead letters, as the step workflow leaves them."""
    letters = []
    with unit_of_work(db.sessions) as session:
        step = session.scalars(select(Step).where(Step.campaign_id == campaign, Step.position == position)).one()
        for offset, contact in enumerate(contact_ids):
            row = StepExecution(
                campaign_id=campaign,
                step_id=step.id,
                contact_id=contact,
                status="FAILED",
                attempts=3,
                error=f"{error_type}: 503 from the provider",
                updated_at=NOW,
            )
            session.add(row)
            session.flush()
            letter = DeadLetter(
                execution_id=row.id,
                campaign_id=campaign,
                error_type=error_type,
                error="503 from the provider",
                attempts=3,
                status="open",
                created_at=NOW + timedelta(minutes=offset),
            )
            session.add(letter)
            session.flush()
            letters.append(letter.id)
    return letters


@pytest.fixture
def run(db: Database, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", db.url)
    monkeypatch.setenv("COLUMNS", "200")
    return dlq_app


def invoke(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def contacts(db: Database) -> list[int]:
    from db.models import Contact

    with db.sessions() as session:
        return list(session.scalars(select(Contact.id).order_by(Contact.id)))


def test_list_shows_open_letters_and_filters_by_campaign(db: Database, run: typer.Typer) -> None:
    first = seed(db.sessions, campaign_spec([EMAIL_STEP, SMS_STEP]), {"A": people("a", 3)})
    second = seed(db.sessions, campaign_spec([EMAIL_STEP], name="Other"), {"A": []})
    ids = contacts(db)
    mine = failed(db, first, 2, ids[:2], "ProviderTransient")
    theirs = failed(db, second, 1, ids[2:], "ProviderPermanent")

    everything = invoke(run, "list")
    assert everything.exit_code == 0, everything.output
    for letter in (*mine, *theirs):
        assert f"│ {letter} " in everything.output or f"{letter} │" in everything.output
    assert "ProviderTransient" in everything.output
    assert "sms" in everything.output
    assert "@" not in everything.output, "ids only, no contact data"

    only_first = invoke(run, "list", "--campaign", str(first))
    assert "ProviderPermanent" not in only_first.output
    assert only_first.output.count("ProviderTransient") == 2


def test_show_prints_the_error_the_execution_and_the_campaign(db: Database, run: typer.Typer) -> None:
    campaign = seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
    (letter,) = failed(db, campaign, 1, contacts(db), "ProviderTransient")
    shown = invoke(run, "show", str(letter))
    assert shown.exit_code == 0, shown.output
    for text in ("ProviderTransient", "503 from the provider", "FAILED", "Test campaign", "DRAFT", "email"):
        assert text in shown.output
    missing = invoke(run, "show", "424242")
    assert missing.exit_code != 0
    assert "dead letter 424242 does not exist" in str(missing.exception)


def test_discard_closes_the_letter_and_keeps_the_execution_failed(db: Database, run: typer.Typer) -> None:
    campaign = seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    kept, dropped = failed(db, campaign, 1, contacts(db), "ProviderTransient")
    done = invoke(run, "discard", str(dropped))
    assert done.exit_code == 0, done.output

    with db.sessions() as session:
        letter = session.get_one(DeadLetter, dropped)
        assert letter.status == "discarded"
        assert letter.resolved_at is not None
        assert session.get_one(StepExecution, letter.execution_id).status == "FAILED"
        assert session.get_one(DeadLetter, kept).status == "open"
    default = invoke(run, "list")
    assert f"│ {dropped} " not in default.output
    assert "discarded" in invoke(run, "list", "--all").output

    again = invoke(run, "discard", str(dropped))
    assert again.exit_code != 0
    assert "is discarded; only an open one is discarded" in str(again.exception)
    assert "does not exist" in str(invoke(run, "discard", "999999").exception)


def test_an_empty_queue_says_so(db: Database, run: typer.Typer) -> None:
    result = invoke(run, "list")
    assert result.exit_code == 0
    assert "No dead letters open." in result.output


def test_the_outbound_command_has_the_dlq_and_retention_commands(sqlite_url: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "OUTBOUND_DATABASE_URL": sqlite_url, "COLUMNS": "200", "NO_COLOR": "1"}
    command = Path(sys.executable).parent / "outbound"
    listed = subprocess.run([command, "dlq", "list"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "No dead letters open." in listed.stderr
    unknown = subprocess.run([command, "dlq", "retry", "7"], env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2
    assert "dead letter 7 does not exist" in unknown.stderr
    purged = subprocess.run([command, "retention", "run", "--dry-run"], env=env, capture_output=True, text=True)
    assert purged.returncode == 0, purged.stderr
    assert "would purge: 0 inbound message bodies" in purged.stdout
