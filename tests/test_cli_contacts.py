"""`outbound contacts | suppress | senders`, driven as a user would.

A few tests run the real `outbound` executable (exit codes, stdout/stderr split); the
rest invoke the same Typer commands in-process, which is much faster than a process
start per command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from db.contacts_repo import find_contact_by_email
from db.engine import make_engine, make_session_factory
from db.models import Contact, Sender, Suppression
from db.verification import record_verdict
from starter.cli_contacts import contacts_app, senders_app, suppress_app
from starter.context import UserError

OUTBOUND = Path(sys.executable).parent / "outbound"
PEOPLE = "email,phone,first_name,Pain Point\nann@example.com,(415) 555-0101,Ann,churn\nbob@example.com,12,Bob,\n"
PEOPLE += "cy@example.org,,Cy,\n"

Cli = Callable[..., Result]


def outbound(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUTBOUND_DATABASE_URL": database_url, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([str(OUTBOUND), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def count(database_url: str, model: type) -> int:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def csv_file(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def app() -> typer.Typer:
    """The three sub-apps mounted as `starter/cli.py` mounts them."""
    root = typer.Typer()
    root.add_typer(contacts_app, name="contacts")
    root.add_typer(suppress_app, name="suppress")
    root.add_typer(senders_app, name="senders")
    return root


@pytest.fixture
def cli(app: typer.Typer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return invoke


def test_an_import_reports_bad_rows_by_line_and_prints_a_summary(sqlite_url: str, tmp_path: Path) -> None:
    done = outbound(sqlite_url, "contacts", "import", str(csv_file(tmp_path, PEOPLE)), "--group", "Group A")
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'people.csv'}:3: phone '12' is not a valid phone number" in done.stderr
    assert re.search(r"valid rows\s+│\s+2 ", done.stdout)
    assert re.search(r"bad rows \(skipped\)\s+│\s+1 ", done.stdout)
    assert re.search(r"new contacts\s+│\s+2 ", done.stdout)
    assert count(sqlite_url, Contact) == 2


def test_a_file_that_is_not_a_contacts_csv_exits_with_code_2_and_writes_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    campaign = csv_file(tmp_path, "name: Spring\nsteps: []\n", "campaign.yaml")
    done = outbound(sqlite_url, "contacts", "import", str(campaign), "--group", "Group A")
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "this is not a contacts CSV: the header needs an `email` or a `phone` column" in done.stderr
    assert count(sqlite_url, Contact) == 0


def test_a_large_import_keeps_stdout_and_stderr_clean(sqlite_url: str, tmp_path: Path) -> None:
    rows = "".join(
        f"person{index}@example.com,+1415555{index % 10_000:04d},Person {index},{index}\n" for index in range(5_000)
    )
    path = csv_file(tmp_path, "email,phone,first_name,rank\n" + rows)
    done = outbound(sqlite_url, "contacts", "import", str(path), "--group", "Big")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the progress bar is transient and stays off a non-terminal
    assert re.search(r"new contacts\s+│\s+5,000 ", done.stdout)


def test_reimporting_the_same_file_only_updates(cli: Cli, tmp_path: Path) -> None:
    path = str(csv_file(tmp_path, PEOPLE))
    assert cli("contacts", "import", path, "--group", "Group A").exit_code == 0
    again = cli("contacts", "import", path, "--group", "Group A")
    assert again.exit_code == 0
    assert re.search(r"new contacts\s+│\s+0 ", again.stdout)
    assert re.search(r"updated contacts\s+│\s+2 ", again.stdout)
    assert re.search(r"added to the group\s+│\s+0 ", again.stdout)


def test_a_file_without_one_valid_row_is_an_error_and_writes_nothing(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    result = cli("contacts", "import", str(csv_file(tmp_path, "email\nnope\n")), "--group", "Group A")
    assert isinstance(result.exception, UserError)
    assert "no valid contact rows (1 bad); nothing was imported" in str(result.exception)
    assert "people.csv:2: email 'nope' is not a valid email address" in result.stderr
    assert count(sqlite_url, Contact) == 0


def test_contacts_are_listed_per_group(cli: Cli, tmp_path: Path) -> None:
    cli("contacts", "import", str(csv_file(tmp_path, PEOPLE)), "--group", "Group A")
    cli("contacts", "import", str(csv_file(tmp_path, "email\nzed@example.com\n", "more.csv")), "--group", "Group B")
    listed = cli("contacts", "list", "--group", "Group A")
    assert listed.exit_code == 0
    assert "Contacts in 'Group A': 2 of 2" in listed.stdout
    assert "ann@example.com" in listed.stdout
    assert "cy@example.org" in listed.stdout
    assert "zed@example.com" not in listed.stdout
    assert "Contacts: 1 of 3" in cli("contacts", "list", "--limit", "1").stdout
    unknown = cli("contacts", "list", "--group", "Nope")
    assert str(unknown.exception) == "there is no lead group named 'Nope'"


def test_the_list_shows_each_verdict_with_its_reasons_and_when_it_was_reached(
    cli: Cli, tmp_path: Path, sqlite_url: str
) -> None:
    cli("contacts", "import", str(csv_file(tmp_path, PEOPLE)), "--group", "Group A")
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        ann = find_contact_by_email(session, "ann@example.com")
        assert ann is not None
        record_verdict(
            session, ann.id, "ann@example.com", "risky", ["role_address"], datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
        )
        session.commit()
    engine.dispose()

    listed = cli("contacts", "list").stdout

    assert "Checked (UTC)" in listed
    assert re.search(r"ann@example\.com.*│ risky \(role_address\)\s+│ 2026-11-23 09:30\s+│", listed)
    assert re.search(r"cy@example\.org.*│\s+│\s+│\s+│$", listed, re.MULTILINE), "never verified: no status, no time"


def test_marking_a_reply_stops_the_contact(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    cli("contacts", "import", str(csv_file(tmp_path, PEOPLE)), "--group", "Group A")
    result = cli("contacts", "mark-replied", "Ann@Example.com")
    assert result.exit_code == 0
    assert "marked as replied: 0 pending message(s) stopped." in result.stdout
    by_phone = cli("contacts", "mark-replied", "415-555-0101")
    assert "(already stopped: replied)" in by_phone.stdout
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        contact = find_contact_by_email(session, "ann@example.com")
        assert contact is not None
        assert contact.stopped_reason == "replied"
    engine.dispose()


def test_marking_an_unknown_contact_is_an_error(cli: Cli) -> None:
    result = cli("contacts", "mark-replied", "nobody@example.com")
    assert str(result.exception) == "no contact with email 'nobody@example.com'"


def test_suppressions_are_added_normalised_and_listed(cli: Cli, sqlite_url: str) -> None:
    added = cli("suppress", "add", "@Competitor.example", "--reason", "competitor")
    assert added.exit_code == 0
    assert "Suppressed domain competitor.example (competitor)" in added.stdout
    cli("suppress", "add", "(415) 555-0101")
    listed = cli("suppress", "list")
    assert "competitor.example" in listed.stdout
    assert "+14155550101" in listed.stdout
    assert isinstance(cli("suppress", "add", "12").exception, UserError)
    assert count(sqlite_url, Suppression) == 2


def test_senders_are_added_updated_and_listed(cli: Cli, sqlite_url: str) -> None:
    args = ("senders", "add", "--channel", "sms", "--address", "+15005550006")
    assert cli(*args, "--daily-limit", "50").exit_code == 0
    updated = cli(*args, "--daily-limit", "75", "--timezone", "America/Chicago")
    assert "sms +15005550006 via outbox, 75/day (America/Chicago)" in updated.stdout
    assert count(sqlite_url, Sender) == 1
    listed = cli("senders", "list")
    assert re.search(r"sms\s+│\s+\+15005550006\s+│\s+outbox\s+│\s+75 ", listed.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--channel", "sms", "--address", "sales@outbound.example"), "needs a phone number in E.164 form"),
        (("--channel", "email", "--address", "a@example.com", "--provider", "pigeon"), "unknown provider 'pigeon'"),
        (
            ("--channel", "email", "--address", "a@example.com", "--provider", "gmail"),
            "use `outbound senders add-gmail`",
        ),
        (
            ("--channel", "email", "--address", "a@example.com", "--provider", "twilio"),
            "twilio sends sms and voicemail",
        ),
        (("--channel", "email", "--address", "a@example.com", "--timezone", "Nowhere"), "unknown time zone"),
    ],
)
def test_an_invalid_sender_is_a_user_error(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli("senders", "add", *args, "--daily-limit", "10")
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)


def test_every_command_and_option_explains_itself(app: typer.Typer) -> None:
    root = typer.main.get_command(app)
    for group_name, group in root.commands.items():  # type: ignore[attr-defined]
        assert group.help, group_name
        for name, command in group.commands.items():
            assert command.help, f"{group_name} {name}"
            undocumented = [param.name for param in command.params if not getattr(param, "help", None)]
            assert not undocumented, f"{group_name} {name}: {undocumented}"
