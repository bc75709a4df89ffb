"""Compliance the engine enforces, not the user: every email carries a working unsubscribe
(header, and a visible link unless the template places one) and the sender's postal
address; no email is sent without the key that signs the link."""

from __future__ import annotations

import email
import email.policy
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from db.campaigns_repo import CampaignCreateError, create_campaign
from db.engine import unit_of_work
from db.models import DEFAULT_WORKSPACE_ID, Campaign, Workspace
from domain.compliance import with_footer
from runtime.local_key import LocalKeyError, with_local_secret_key
from runtime.names import all_queues
from runtime.secrets import SecretKeyMissing
from runtime.settings import Settings
from schemas.enums import CampaignStatus
from tests.conftest import Database
from tests.support import EITHER_BATCH_SIZE, EMAIL_STEP, POSTAL_ADDRESS, SMS_STEP, Outbound, campaign_spec, people, seed
from workers.worker import require_key_for_email

URL = "https://hooks.outbound.example/unsubscribe/abc.def"
NOW = datetime.now(UTC)


# --- the footer -------------------------------------------------------------------------


def test_an_email_gets_the_postal_address_and_a_visible_unsubscribe_link() -> None:
    body = with_footer("Hi Ann,\n\nA quick idea.\n", "Hi …", unsubscribe_url=URL, postal_address="1 Main St,\n Town")
    assert body == f"Hi Ann,\n\nA quick idea.\n\n--\n1 Main St, Town\nUnsubscribe: {URL}\n"


def test_what_the_template_places_itself_is_not_added_twice() -> None:
    placed_link = with_footer("Bye: x", "Bye: {{ unsubscribe_url }}", unsubscribe_url=URL, postal_address="1 Main St")
    assert placed_link == "Bye: x\n\n--\n1 Main St\n"
    both = "{{ postal_address }} / {{ unsubscribe_url }}"
    assert with_footer("done", both, unsubscribe_url=URL, postal_address="1 Main St") == "done"


# --- the key ------------------------------------------------------------------------------


def test_the_embedded_default_makes_a_local_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'outbound.db'}", secret_key_file=tmp_path / "secret.key")
    said: list[str] = []
    first = with_local_secret_key(settings, said.append)
    again = with_local_secret_key(settings, said.append)

    assert first.secret_key is not None
    assert again.secret_key is not None
    assert first.secret_key.get_secret_value() == again.secret_key.get_secret_value()
    assert len(said) == 1, "told once, when it was made"
    assert str((tmp_path / "secret.key").resolve()) in said[0]
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600, "only this user may read it"


def test_a_damaged_local_key_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("not a key\n")
    settings = Settings(database_url="sqlite://", secret_key_file=tmp_path / "secret.key")
    with pytest.raises(LocalKeyError, match="does not hold a valid secret key"):
        with_local_secret_key(settings, print)
    assert (tmp_path / "secret.key").read_text() == "not a key\n"


def test_production_gets_no_made_up_key_and_its_email_queue_refuses_to_start(tmp_path: Path) -> None:
    production = Settings(
        database_url="postgresql+psycopg://outbound@db/outbound", secret_key_file=tmp_path / "secret.key"
    )
    assert with_local_secret_key(production, print).secret_key is None
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(SecretKeyMissing, match="cannot send email"):
        require_key_for_email(production, all_queues())
    require_key_for_email(production, [queue for queue in all_queues() if queue != "email"])  # the rest may run
    require_key_for_email(production.model_copy(update={"secret_key": SecretStr("k")}), all_queues())


# --- the postal address --------------------------------------------------------------------


def test_an_email_campaign_without_a_postal_address_is_refused_and_nothing_is_written(db: Database) -> None:
    seed(db.sessions, campaign_spec([SMS_STEP]), {"A": people("a", 1)})
    spec = campaign_spec([EMAIL_STEP], postal_address=None, name="No address")
    with unit_of_work(db.sessions) as session, pytest.raises(CampaignCreateError) as refused:
        create_campaign(session, spec, NOW)
    assert any("postal_address: an email campaign needs" in problem for problem in refused.value.problems)
    assert "CAN-SPAM" in str(refused.value.problems)
    with db.sessions() as session:
        assert session.scalars(select(Campaign).where(Campaign.name == "No address")).all() == []


def test_a_campaign_file_without_one_takes_the_workspace_default(db: Database) -> None:
    seed(db.sessions, campaign_spec([SMS_STEP]), {"A": people("a", 1)})
    with unit_of_work(db.sessions) as session:
        session.get_one(Workspace, DEFAULT_WORKSPACE_ID).postal_address = "2 Default Road, Springfield"
        campaign_id = create_campaign(session, campaign_spec([EMAIL_STEP], postal_address=None), NOW)
    with db.sessions() as session:
        definition = session.get_one(Campaign, campaign_id).definition
    assert definition["postal_address"] == "2 Default Road, Springfield"


def test_an_sms_only_campaign_needs_no_postal_address(db: Database) -> None:
    seed(db.sessions, campaign_spec([SMS_STEP]), {"A": people("a", 1)})
    with unit_of_work(db.sessions) as session:
        assert create_campaign(session, campaign_spec([SMS_STEP], postal_address=None), NOW) > 0


# --- what goes out ---------------------------------------------------------------------------


@EITHER_BATCH_SIZE
async def test_every_email_sent_carries_the_unsubscribe_header_link_and_postal_address(outbound: Outbound) -> None:
    own_link = {**EMAIL_STEP, "body": "Hello {{ first_name }}. Opt out: {{ unsubscribe_url }}", "wait": "1d"}
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP, own_link]), {"A": people("a", 2)})
    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()
    assert progress.lifecycle.state is CampaignStatus.COMPLETED

    mails = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in outbound.files("email")
    ]
    assert len(mails) == 4
    for mail in mails:
        link = str(mail["List-Unsubscribe"]).strip("<>")
        assert link.startswith(f"{outbound.settings.public_base_url}/unsubscribe/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert POSTAL_ADDRESS in text
        assert POSTAL_ADDRESS in html
        assert text.count(link) == 1, "the visible link, once: added, or placed by the template"
        assert f'href="{link}"' in html
    own = [mail for mail in mails if "Opt out:" in mail.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    assert len(own) == 2
    assert all("Unsubscribe:" not in mail.get_body(("plain",)).get_content() for mail in own)  # type: ignore[union-attr]
