"""`outbound campaign report`: the funnel in the terminal, a self-contained HTML report with
SVG charts, JSON output, and bad input refused before anything is written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from db.engine import unit_of_work
from db.models import Campaign, CampaignStepStats
from starter import cli_report
from starter.context import UserError
from tests.analytics_support import build_campaign
from tests.conftest import Database

pytestmark = pytest.mark.timeout(60)
OUTBOUND = Path(sys.executable).parent / "outbound"


@pytest.fixture
def app() -> typer.Typer:
    """`campaign report` mounted as `starter/cli.py` mounts it."""
    campaign = typer.Typer()
    cli_report.register(campaign)
    root = typer.Typer()
    root.add_typer(campaign, name="campaign")
    return root


def invoke(app: typer.Typer, db: Database, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", db.url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner().invoke(app, ["campaign", "report", *args])


def stored_buckets(db: Database) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(CampaignStepStats)) or 0


def test_the_report_prints_the_funnel_and_writes_html_with_charts(
    app: typer.Typer, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_campaign(db.sessions)
    with unit_of_work(db.sessions) as session:
        session.execute(update(Campaign).where(Campaign.id == built.campaign_id).values(name="<Q4 & co>"))
    target = tmp_path / "out" / "report.html"
    result = invoke(app, db, monkeypatch, str(built.campaign_id), "--html", str(target))
    assert result.exit_code == 0, result.output
    lines = [re.sub(r"\s+", " ", line) for line in result.output.splitlines()]
    assert any("7 enrolled" in line for line in lines)
    assert any("rate ┃ interested ┃ meeting request ┃" in line for line in lines), "a column per intent seen"
    assert "│ 1 │ email │ 7 │ 5 │ 1 (suppressed 1) │ 1 │ 0 │ 2 │ 1 │ 1 │ 40.0% │ 1 │ 1 │" in lines
    assert any(
        "│ 2 │ sms │ 4 │ 1 │ 3 (bounced 1, replied 1, unsubscribed 1) │ 0 │ 1 │ 1 │ 0 │ 0 │ 100.0% │ 0 │ 0 │" in line
        for line in lines
    )
    assert f"HTML report: {target}" in result.output.replace("\n", "")
    html = target.read_text()
    assert html.count("<svg") == 3
    assert "Messages sent per day (UTC)" in html
    assert "2026-11-02" in html  # a day on the sends chart's axis
    assert "Reply rate per step" in html
    assert "&lt;Q4 &amp; co&gt;" in html
    assert "<Q4 & co>" not in html
    for cell in ("<td>7</td>", "<td>40.0%</td>", "<td>100.0%</td>", "bounced 1, replied 1, unsubscribed 1"):
        assert cell in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # works offline: nothing to fetch
    assert "<script" not in html
    assert "<link" not in html
    assert stored_buckets(db) > 0


def test_json_output_and_the_default_path(
    app: typer.Typer, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_campaign(db.sessions)
    monkeypatch.chdir(tmp_path)
    result = invoke(app, db, monkeypatch, str(built.campaign_id), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["html"] == f".outbound/reports/campaign-{built.campaign_id}.html"
    assert (tmp_path / data["html"]).read_text().count("<svg") == 3
    first, second = data["steps"]
    assert (first["sent"], first["replied"], first["reply_rate"]) == (5, 2, 0.4)
    assert second["skipped_by_reason"] == {"bounced": 1, "replied": 1, "unsubscribed": 1}
    assert first["replies_by_intent"] == {"interested": 1, "meeting_request": 1}
    assert {"day": "2026-11-03", "channel": "sms", "sent": 1} in data["sends_per_day"]


def test_an_unknown_campaign_or_an_unwritable_path_is_refused_and_writes_nothing(
    app: typer.Typer, sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_campaign(sqlite_db.sessions)
    result = invoke(app, sqlite_db, monkeypatch, "999", "--html", str(tmp_path / "r.html"))
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "campaign 999 does not exist"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke(app, sqlite_db, monkeypatch, str(built.campaign_id), "--html", str(blocker / "r.html"))
    assert isinstance(result.exception, UserError)
    assert f"cannot write the report to {blocker / 'r.html'}" in str(result.exception)
    result = invoke(app, sqlite_db, monkeypatch, str(built.campaign_id), "--html", str(tmp_path))
    assert isinstance(result.exception, UserError)
    assert "is a directory" in str(result.exception)
    assert stored_buckets(sqlite_db) == 0
    assert not (tmp_path / "r.html").exists()


def test_the_outbound_command_exits_2_for_an_unknown_campaign(sqlite_db: Database, tmp_path: Path) -> None:
    env = {**os.environ, "OUTBOUND_DATABASE_URL": sqlite_db.url, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [str(OUTBOUND), "campaign", "report", "42"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "error: campaign 42 does not exist" in done.stderr
    assert not (tmp_path / ".outbound").exists()
