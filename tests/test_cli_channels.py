"""`outbound secret-key` and `outbound senders add-gmail`, against the Gmail fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner, Result

from db.engine import make_engine, make_session_factory
from db.models import Sender
from runtime.secrets import SecretBox
from starter import cli_channels
from starter.cli_contacts import senders_app
from starter.context import UserError
from tests.fakes.gmail_fake import FakeGmail

MAILBOX = "sales@outbound.example"


@pytest.fixture
def gmail() -> Iterator[FakeGmail]:
    with FakeGmail() as fake:
        fake.add_account(MAILBOX)
        yield fake
        fake.assert_clean()


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def run(sqlite_url: str, gmail: FakeGmail, key: str, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("OUTBOUND_SECRET_KEY", key)
    monkeypatch.setenv("OUTBOUND_GMAIL__API_ENDPOINT", gmail.endpoint)
    monkeypatch.setenv("OUTBOUND_GMAIL__TOKEN_URI", gmail.token_uri)
    monkeypatch.setenv("COLUMNS", "200")
    root = typer.Typer()
    root.add_typer(senders_app, name="senders")
    cli_channels.register(root)
    return root


def invoke(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def add_gmail(app: typer.Typer, credentials: Path) -> Result:
    return invoke(app, "senders", "add-gmail", MAILBOX, "--credentials", str(credentials), "--no-sync")


def grant_file(tmp_path: Path, gmail: FakeGmail, **changes: str) -> Path:
    account = gmail.mailbox(MAILBOX).account
    info = {
        "type": "authorized_user",
        "client_id": account.client_id,
        "client_secret": account.client_secret,
        "refresh_token": account.refresh_token,
        **changes,
    }
    path = tmp_path / "grant.json"
    path.write_text(json.dumps(info))
    return path


def stored(sqlite_url: str) -> list[Sender]:
    engine = make_engine(sqlite_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(Sender)))
    finally:
        engine.dispose()


def test_secret_key_prints_a_usable_fernet_key(run: typer.Typer) -> None:
    result = invoke(run, "secret-key")
    assert result.exit_code == 0
    Fernet(result.stdout.strip().encode())


def test_add_gmail_checks_the_grant_and_stores_it_encrypted(
    run: typer.Typer, gmail: FakeGmail, tmp_path: Path, sqlite_url: str, key: str
) -> None:
    result = invoke(
        run, "senders", "add-gmail", MAILBOX, "--credentials", str(grant_file(tmp_path, gmail)), "--no-sync"
    )
    assert result.exit_code == 0, result.exception
    assert f"{MAILBOX} via gmail, 50/day" in result.stdout
    [sender] = stored(sqlite_url)
    assert (sender.provider, sender.status, sender.channel) == ("gmail", "active", "email")
    refresh_token = gmail.mailbox(MAILBOX).account.refresh_token
    assert sender.credentials_encrypted is not None
    assert refresh_token not in sender.credentials_encrypted, "never stored in clear"
    assert SecretBox(SecretStr(key)).decrypt(sender.credentials_encrypted)["refresh_token"] == refresh_token
    assert gmail.token_grants >= 1, "the grant was exercised against Gmail"


def test_a_revoked_grant_is_refused_and_nothing_is_stored(
    run: typer.Typer, gmail: FakeGmail, tmp_path: Path, sqlite_url: str
) -> None:
    gmail.revoke(MAILBOX)
    result = invoke(
        run, "senders", "add-gmail", MAILBOX, "--credentials", str(grant_file(tmp_path, gmail)), "--no-sync"
    )
    assert isinstance(result.exception, UserError)
    assert "Gmail refused the grant" in str(result.exception)
    assert stored(sqlite_url) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"client_id": "x"}', "lacks client_secret, refresh_token"),
        ("[1, 2]", "must hold a JSON object"),
    ],
)
def test_a_bad_credentials_file_is_a_clear_error(
    run: typer.Typer, tmp_path: Path, sqlite_url: str, content: str, message: str
) -> None:
    path = tmp_path / "grant.json"
    path.write_text(content)
    result = invoke(run, "senders", "add-gmail", MAILBOX, "--credentials", str(path), "--no-sync")
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)
    assert stored(sqlite_url) == []


def test_without_a_secret_key_add_gmail_explains_how_to_make_one(
    run: typer.Typer, gmail: FakeGmail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL (a real deployment) no key is made up; the grant is not stored."""
    monkeypatch.delenv("OUTBOUND_SECRET_KEY")
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    monkeypatch.setenv("OUTBOUND_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    result = invoke(
        run, "senders", "add-gmail", MAILBOX, "--credentials", str(grant_file(tmp_path, gmail)), "--no-sync"
    )
    assert isinstance(result.exception, UserError)
    assert "outbound secret-key" in str(result.exception)
    assert not (tmp_path / "secret.key").exists()


def test_on_sqlite_without_a_key_add_gmail_makes_a_local_one_and_says_where(
    run: typer.Typer, gmail: FakeGmail, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTBOUND_SECRET_KEY")
    monkeypatch.setenv("OUTBOUND_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    result = invoke(
        run, "senders", "add-gmail", MAILBOX, "--credentials", str(grant_file(tmp_path, gmail)), "--no-sync"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "secret.key").exists()
    assert len(stored(sqlite_url)) == 1, "the grant is stored, encrypted with the local key"
