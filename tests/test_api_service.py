"""The API service: Twilio webhooks, unsubscribe links, /health and /internal/status.

Requests are signed with the real `twilio.request_validator`, against the public URL
the way Twilio signs them, and every effect is read back from the database (SQLite and
PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from twilio.request_validator import RequestValidator

from db.engine import SessionFactory, make_engine, make_session_factory, unit_of_work
from db.models import Contact, InboundMessage, Sender, Step, StepExecution, Suppression
from domain.sms_keywords import SmsIntent, classify_sms
from domain.unsubscribe_tokens import sign_unsubscribe
from runtime.names import all_queues, campaign_queue
from runtime.secrets import SecretBox, new_secret_key
from runtime.settings import Settings, TwilioSettings
from starter.devserver import temporal_binary
from tests.conftest import Database
from tests.e2e_support import free_port
from tests.support import PHONE_SENDER, THREE_STEPS, campaign_spec, people, seed
from workers.api import ApiDependencies, create_app
from workers.api.server import serve_api
from workers.api.temporal_link import TemporalConnector, TemporalUnavailable

AUTH_TOKEN = "twilio-test-auth-token"
API_TOKEN = "operator-test-token"
PUBLIC = "https://hooks.outbound.example"
SECRET_KEY = new_secret_key()
ANN_PHONE, BOB_PHONE = "+12025550000", "+12025550001"  # what `people("a", 2)` gets


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_base_url": PUBLIC,
        "secret_key": SecretStr(SECRET_KEY),
        "api_token": SecretStr(API_TOKEN),
        "twilio": TwilioSettings(auth_token=SecretStr(AUTH_TOKEN)),
    } | overrides
    return Settings(**values)


def app_client(sessions: SessionFactory, **overrides: Any) -> TestClient:
    return TestClient(create_app(ApiDependencies(settings(**overrides), sessions, temporal=None)))


def signed_post(
    client: TestClient, path: str, params: dict[str, str], *, token: str = AUTH_TOKEN, url: str | None = None
) -> httpx.Response:
    """POST form `params` the way Twilio does: signed over the public URL and the params."""
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def service_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the service logged (the test's own HTTP client logs its URLs, as clients do)."""
    return "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("outbound"))


def sms(client: TestClient, body: str, *, sid: str | None = None, from_phone: str = BOB_PHONE) -> httpx.Response:
    params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "From": from_phone, "To": PHONE_SENDER, "Body": body}
    return signed_post(client, "/twilio/sms", params)


@dataclass
class World:
    """Ann and Bob in a three-step campaign (email, SMS, voicemail).

    Ann got everything: her SMS is `SM_ANN`, her voicemail call `CA_ANN`. Bob got the
    email and the SMS (`SM_BOB`); his voicemail is still scheduled.
    """

    db: Database
    ann: int
    bob: int
    executions: dict[tuple[str, str], int]  # (person, channel) -> execution id

    def execution(self, person: str, channel: str) -> StepExecution:
        with self.db.sessions() as session:
            return session.get_one(StepExecution, self.executions[person, channel])

    def contact(self, contact_id: int) -> Contact:
        with self.db.sessions() as session:
            return session.get_one(Contact, contact_id)

    def suppressions(self) -> list[tuple[str, str, str]]:
        with self.db.sessions() as session:
            return [(s.kind, s.value, s.reason) for s in session.scalars(select(Suppression))]

    def inbound(self) -> list[InboundMessage]:
        with self.db.sessions() as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


@pytest.fixture
def world(db: Database) -> World:
    campaign_id = seed(db.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 2)})
    now = datetime.now(UTC)
    executions: dict[tuple[str, str], int] = {}
    with unit_of_work(db.sessions) as session:
        ann = session.scalars(select(Contact).where(Contact.email == "a0@example.com")).one()
        bob = session.scalars(select(Contact).where(Contact.email == "a1@example.com")).one()
        steps = {s.channel: s for s in session.scalars(select(Step).where(Step.campaign_id == campaign_id))}
        senders = {s.channel: s.id for s in session.scalars(select(Sender))}
        plan = {
            ("ann", "email"): ("SENT", "<a0@outbound.example>"),
            ("ann", "sms"): ("SENT", "SM_ANN"),
            ("ann", "voicemail"): ("SENT", "CA_ANN"),
            ("bob", "email"): ("SENT", "<a1@outbound.example>"),
            ("bob", "sms"): ("SENT", "SM_BOB"),
            ("bob", "voicemail"): ("SCHEDULED", None),
        }
        for (person, channel), (status, sid) in plan.items():
            row = StepExecution(
                campaign_id=campaign_id,
                step_id=steps[channel].id,
                contact_id=(ann if person == "ann" else bob).id,
                sender_id=senders[channel],
                status=status,
                provider_message_id=sid,
                sent_at=now if status == "SENT" else None,
                scheduled_for=now + timedelta(days=1),
            )
            session.add(row)
            session.flush()
            executions[person, channel] = row.id
        return World(db, ann.id, bob.id, executions)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with app_client(world.db.sessions) as test_client:
        yield test_client


# --- Twilio signatures ------------------------------------------------------------------


def test_a_correctly_signed_webhook_is_accepted(client: TestClient) -> None:
    response = sms(client, "Sounds good, call me")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Response" in response.text


def test_a_webhook_without_a_signature_is_refused_and_changes_nothing(client: TestClient, world: World) -> None:
    params = {"MessageSid": "SM1", "From": BOB_PHONE, "To": PHONE_SENDER, "Body": "STOP"}
    assert client.post("/twilio/sms", data=params).status_code == 403
    assert world.suppressions() == []
    assert world.inbound() == []


@pytest.mark.parametrize(
    "forgery",
    [
        {"token": "someone-elses-token"},
        {"url": "http://testserver/twilio/sms"},  # what this process sees, not what Twilio called
        {"url": PUBLIC + "/twilio/status"},  # a signature lifted from another endpoint
    ],
)
def test_a_forged_signature_is_refused_and_changes_nothing(
    client: TestClient, world: World, forgery: dict[str, str]
) -> None:
    params = {"MessageSid": "SM1", "From": BOB_PHONE, "To": PHONE_SENDER, "Body": "STOP"}
    assert signed_post(client, "/twilio/sms", params, **forgery).status_code == 403
    assert world.suppressions() == []
    assert world.contact(world.bob).stopped_reason is None


def test_a_signature_over_other_params_is_refused(client: TestClient) -> None:
    signed = {"MessageSid": "SM1", "From": BOB_PHONE, "To": PHONE_SENDER, "Body": "Hello"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/sms", signed)
    sent = signed | {"Body": "STOP"}
    response = client.post("/twilio/sms", data=sent, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_every_twilio_route_checks_the_signature(client: TestClient, world: World) -> None:
    voice = f"/twilio/voice/{world.executions['ann', 'voicemail']}"
    for path in ("/twilio/sms", "/twilio/status", voice):
        assert client.post(path, data={"CallSid": "CA_ANN"}).status_code == 403
        headers = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
        assert client.post(path, data={"CallSid": "CA_ANN"}, headers=headers).status_code == 403


def test_twilio_webhooks_are_refused_when_no_auth_token_is_configured(world: World) -> None:
    with app_client(world.db.sessions, twilio=TwilioSettings()) as unconfigured:
        response = sms(unconfigured, "STOP")
    assert response.status_code == 503
    assert "OUTBOUND_TWILIO__AUTH_TOKEN" in response.json()["detail"]


def test_the_signed_url_is_the_public_one_even_with_a_query_string(client: TestClient) -> None:
    params = {"MessageSid": "SM2", "From": BOB_PHONE, "To": PHONE_SENDER, "Body": "Hi"}
    response = signed_post(client, "/twilio/sms?source=twilio", params, url=PUBLIC + "/twilio/sms?source=twilio")
    assert response.status_code == 200


# --- inbound SMS --------------------------------------------------------------------------


def test_stop_suppresses_the_number_and_skips_the_contacts_open_executions(client: TestClient, world: World) -> None:
    assert sms(client, "STOP").status_code == 200
    assert world.suppressions() == [("phone", BOB_PHONE, "sms opt-out")]
    assert world.contact(world.bob).stopped_reason == "unsubscribed"
    voicemail = world.execution("bob", "voicemail")
    assert (voicemail.status, voicemail.skip_reason) == ("SKIPPED", "unsubscribed")
    assert world.contact(world.ann).stopped_reason is None
    (message,) = world.inbound()
    assert (message.classification, message.contact_id) == ("opt_out", world.bob)
    assert message.execution_id == world.executions["bob", "sms"]


@pytest.mark.parametrize(
    "body", ["STOP", "stop", "  Stop.  ", "STOPALL", "stop all", "UNSUBSCRIBE", "cancel", "End", "QUIT", "optout"]
)
def test_every_opt_out_keyword_opts_out(body: str) -> None:
    assert classify_sms(body) is SmsIntent.OPT_OUT


@pytest.mark.parametrize("body", ["please stop texting me", "STOP IT NOW", "Stopping by later?"])
def test_a_keyword_inside_a_sentence_is_a_reply(body: str) -> None:
    assert classify_sms(body) is SmsIntent.REPLY


def test_twilios_own_opt_out_verdict_wins_for_custom_keywords() -> None:
    assert classify_sms("ARRET", opt_out_type="STOP") is SmsIntent.OPT_OUT
    assert classify_sms("HELP", opt_out_type="HELP") is SmsIntent.HELP


def test_start_lifts_the_sms_opt_out(client: TestClient, world: World) -> None:
    sms(client, "STOP")
    assert sms(client, "start").status_code == 200
    assert world.suppressions() == []
    assert world.contact(world.bob).stopped_reason is None
    assert [m.classification for m in world.inbound()] == ["opt_out", "opt_in"]


def test_start_does_not_lift_a_suppression_an_operator_added(client: TestClient, world: World) -> None:
    from db.contacts_repo import add_suppression

    with unit_of_work(world.db.sessions) as session:
        add_suppression(session, BOB_PHONE, "do not contact", datetime.now(UTC))
    sms(client, "UNSTOP")
    assert world.suppressions() == [("phone", BOB_PHONE, "do not contact")]


def test_start_keeps_a_contact_stopped_for_another_reason(client: TestClient, world: World) -> None:
    sms(client, "Call me next week")
    sms(client, "STOP")
    sms(client, "START")
    assert world.contact(world.bob).stopped_reason == "replied"


def test_yes_from_a_number_that_never_opted_out_is_a_reply(client: TestClient, world: World) -> None:
    sms(client, "Yes!")
    assert world.contact(world.bob).stopped_reason == "replied"
    assert world.inbound()[0].classification == "reply"


def test_any_other_text_stops_the_contact_as_replied(client: TestClient, world: World) -> None:
    assert sms(client, "Interested, tell me more").status_code == 200
    assert world.contact(world.bob).stopped_reason == "replied"
    voicemail = world.execution("bob", "voicemail")
    assert (voicemail.status, voicemail.skip_reason) == ("SKIPPED", "replied")
    assert world.suppressions() == []
    (message,) = world.inbound()
    assert (message.classification, message.text_body, message.channel) == ("reply", "Interested, tell me more", "sms")
    assert (message.intent, message.intent_source) == ("interested", "rules"), "an SMS reply's meaning, by the rules"


def test_help_changes_nothing_but_is_stored(client: TestClient, world: World) -> None:
    sms(client, "HELP")
    assert world.contact(world.bob).stopped_reason is None
    assert world.inbound()[0].classification == "help"


def test_a_redelivered_webhook_is_a_no_op(client: TestClient, world: World) -> None:
    assert sms(client, "STOP", sid="SM_STOP").status_code == 200
    assert sms(client, "START", sid="SM_START").status_code == 200
    assert sms(client, "STOP", sid="SM_STOP").status_code == 200  # Twilio retrying the first one
    assert world.suppressions() == []
    assert world.contact(world.bob).stopped_reason is None
    assert [m.provider_message_id for m in world.inbound()] == ["SM_STOP", "SM_START"]


def test_a_text_from_an_unknown_number_is_stored_without_a_contact(client: TestClient, world: World) -> None:
    assert sms(client, "Who is this?", from_phone="+12025550999").status_code == 200
    (message,) = world.inbound()
    assert (message.contact_id, message.execution_id, message.classification) == (None, None, "reply")


def test_inbound_texts_never_log_numbers_or_bodies(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sms(client, "STOP")
    sms(client, "My cell is 555-0199")
    logged = service_log(caplog)
    assert "inbound SMS" in logged
    for secret in (BOB_PHONE, BOB_PHONE[2:], "555-0199", PHONE_SENDER):
        assert secret not in logged


# --- status callbacks ---------------------------------------------------------------------


def status(client: TestClient, **params: str) -> httpx.Response:
    return signed_post(client, "/twilio/status", params)


def test_message_status_callbacks_are_stored_and_never_go_backwards(client: TestClient, world: World) -> None:
    assert status(client, MessageSid="SM_BOB", MessageStatus="queued").status_code == 204
    assert world.execution("bob", "sms").delivery_status == "queued"
    status(client, MessageSid="SM_BOB", MessageStatus="delivered")
    status(client, MessageSid="SM_BOB", MessageStatus="sent")  # late and out of order
    row = world.execution("bob", "sms")
    assert row.delivery_status == "delivered"
    assert row.delivery_updated_at is not None


def test_a_failed_message_keeps_its_error_code(client: TestClient, world: World) -> None:
    status(client, MessageSid="SM_ANN", MessageStatus="sent", SmsStatus="sent")
    status(client, MessageSid="SM_ANN", MessageStatus="undelivered", ErrorCode="30003")
    row = world.execution("ann", "sms")
    assert (row.delivery_status, row.delivery_error_code) == ("undelivered", "30003")


def test_call_callbacks_store_progress_and_the_machine_detection_outcome(client: TestClient, world: World) -> None:
    status(client, CallSid="CA_ANN", CallStatus="ringing")
    status(client, CallSid="CA_ANN", AnsweredBy="machine_end_beep")  # the asynchronous AMD callback
    status(client, CallSid="CA_ANN", CallStatus="completed", AnsweredBy="machine_end_beep")
    status(client, CallSid="CA_ANN", CallStatus="in-progress")  # late
    row = world.execution("ann", "voicemail")
    assert (row.delivery_status, row.answered_by) == ("completed", "machine_end_beep")


def test_a_callback_for_an_unknown_sid_is_answered_and_stores_nothing(client: TestClient, world: World) -> None:
    assert status(client, MessageSid="SM_NOBODY", MessageStatus="delivered").status_code == 204
    for person, channel in world.executions:
        assert world.execution(person, channel).delivery_status is None


def test_a_callback_without_a_sid_is_a_bad_request(client: TestClient) -> None:
    assert status(client, MessageStatus="delivered").status_code == 400


# --- voicemail TwiML ----------------------------------------------------------------------


def voice(client: TestClient, world: World, person: str, answered_by: str) -> httpx.Response:
    path = f"/twilio/voice/{world.executions[person, 'voicemail']}"
    params = {"CallSid": "CA_ANN", "CallStatus": "in-progress", "AnsweredBy": answered_by}
    return signed_post(client, path, params)


def test_a_machine_hears_the_steps_script_rendered_for_the_contact(client: TestClient, world: World) -> None:
    response = voice(client, world, "ann", "machine_end_beep")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "Hi Person0, calling about Acme" in response.text
    assert "<Hangup" in response.text
    assert world.execution("ann", "voicemail").answered_by == "machine_end_beep"


def test_a_person_who_picks_up_hears_nothing(client: TestClient, world: World) -> None:
    response = voice(client, world, "ann", "human")
    assert response.status_code == 200
    assert "<Say" not in response.text
    assert "<Hangup" in response.text


def test_a_step_that_speaks_to_humans_leaves_its_message_with_a_person_too(client: TestClient, world: World) -> None:
    with unit_of_work(world.db.sessions) as session:
        session.execute(update(Step).where(Step.channel == "voicemail").values(speak_to_humans=True))
    response = voice(client, world, "ann", "human")
    assert "Hi Person0, calling about Acme" in response.text


def test_a_recorded_message_is_played(client: TestClient, world: World) -> None:
    with unit_of_work(world.db.sessions) as session:
        session.execute(update(Step).where(Step.channel == "voicemail").values(audio_url="https://cdn.example/vm.mp3"))
    response = voice(client, world, "ann", "machine_end_silence")
    assert "<Play>https://cdn.example/vm.mp3</Play>" in response.text


def test_the_voice_url_of_a_non_voicemail_execution_hangs_up(client: TestClient, world: World) -> None:
    path = f"/twilio/voice/{world.executions['ann', 'sms']}"
    response = signed_post(client, path, {"CallSid": "CA_X", "AnsweredBy": "machine_end_beep"})
    assert response.status_code == 200
    assert "<Say" not in response.text
    assert "<Hangup" in response.text


# --- unsubscribe links --------------------------------------------------------------------


def unsubscribe_token(world: World, *, expires_in: timedelta = timedelta(days=90), key: str = SECRET_KEY) -> str:
    return sign_unsubscribe(
        SecretBox(SecretStr(key)).signing_key("unsubscribe"),
        contact_id=world.ann,
        execution_id=world.executions["ann", "email"],
        expires_at=datetime.now(UTC) + expires_in,
    )


def test_opening_the_link_shows_a_confirmation_and_changes_nothing(client: TestClient, world: World) -> None:
    response = client.get(f"/unsubscribe/{unsubscribe_token(world)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert world.suppressions() == []
    assert world.contact(world.ann).stopped_reason is None


def test_one_click_unsubscribe_suppresses_the_email_and_stops_the_contact(client: TestClient, world: World) -> None:
    with unit_of_work(world.db.sessions) as session:  # Ann still has a step to come
        session.execute(
            update(StepExecution)
            .where(StepExecution.id == world.executions["ann", "voicemail"])
            .values(status="SCHEDULED", provider_message_id=None)
        )
    path = f"/unsubscribe/{unsubscribe_token(world)}"
    response = client.post(path, content=b"List-Unsubscribe=One-Click", headers=FORM)
    assert response.status_code == 200
    assert "unsubscribed" in response.text
    assert world.suppressions() == [("email", "a0@example.com", "unsubscribe link")]
    assert world.contact(world.ann).stopped_reason == "unsubscribed"
    voicemail = world.execution("ann", "voicemail")
    assert (voicemail.status, voicemail.skip_reason) == ("SKIPPED", "unsubscribed")
    assert client.post(path, content=b"List-Unsubscribe=One-Click", headers=FORM).status_code == 200  # twice
    assert len(world.suppressions()) == 1


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_an_expired_link_gets_a_clear_page_and_changes_nothing(client: TestClient, world: World) -> None:
    path = f"/unsubscribe/{unsubscribe_token(world, expires_in=timedelta(seconds=-1))}"
    for response in (client.get(path), client.post(path, content=b"List-Unsubscribe=One-Click", headers=FORM)):
        assert response.status_code == 400
        assert "expired" in response.text
    assert world.suppressions() == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token.replace(".", ".9", 1),
        lambda token: token[:-2],
        lambda token: "not-a-token",
    ],
)
def test_a_tampered_link_is_refused_with_a_clear_page(client: TestClient, world: World, tamper: Any) -> None:
    path = f"/unsubscribe/{tamper(unsubscribe_token(world))}"
    for response in (client.get(path), client.post(path, content=b"List-Unsubscribe=One-Click", headers=FORM)):
        assert response.status_code == 400
        assert "not valid" in response.text
    assert world.suppressions() == []
    assert world.contact(world.ann).stopped_reason is None


def test_a_link_signed_with_another_deployments_key_is_refused(client: TestClient, world: World) -> None:
    response = client.post(f"/unsubscribe/{unsubscribe_token(world, key=new_secret_key())}")
    assert response.status_code == 400


def test_unsubscribe_links_are_unavailable_without_a_secret_key(world: World) -> None:
    with app_client(world.db.sessions, secret_key=None) as unconfigured:
        response = unconfigured.post(f"/unsubscribe/{unsubscribe_token(world)}")
    assert response.status_code == 503


def test_unsubscribing_never_logs_the_token_or_the_address(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = unsubscribe_token(world)
    client.get(f"/unsubscribe/{token}")
    client.post(f"/unsubscribe/{token}")
    logged = service_log(caplog)
    assert "/unsubscribe/{token}" in logged
    assert token not in logged
    assert token.rsplit(".", 1)[1] not in logged
    assert "a0@example.com" not in logged


# --- /health and /internal/status ---------------------------------------------------------


def asgi_client(deps: ApiDependencies, token: str | None = API_TOKEN) -> httpx.AsyncClient:
    """In the test's own event loop, where the Temporal test client lives; as an operator
    holding the API token unless told otherwise."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(deps)), base_url="http://api", headers=headers
    )


async def test_internal_routes_refuse_requests_without_the_operator_token(sqlite_db: Database) -> None:
    deps = ApiDependencies(settings(), sqlite_db.sessions, None)
    async with asgi_client(deps, token=None) as api:
        missing = await api.get("/internal/status")
    async with asgi_client(deps, token="guess") as api:
        wrong = await api.get("/internal/status")
    for response, detail in ((missing, "missing bearer token"), (wrong, "invalid bearer token")):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": detail}
    unconfigured = ApiDependencies(settings(api_token=" "), sqlite_db.sessions, None)
    async with asgi_client(unconfigured) as api:
        off = await api.get("/internal/status")
    assert off.status_code == 403
    assert "OUTBOUND_API_TOKEN" in off.json()["detail"]


async def test_health_without_the_token_gives_the_status_and_nothing_else(sqlite_db: Database) -> None:
    async with asgi_client(ApiDependencies(settings(), sqlite_db.sessions, None), token=None) as api:
        response = await api.get("/health")
    assert response.status_code == 503, "the status code still tells a load balancer what is down"
    assert response.json() == {"status": "degraded"}


async def test_health_is_ok_with_a_live_database_and_temporal(
    sqlite_db: Database, workflow_env: WorkflowEnvironment
) -> None:
    async def temporal() -> Client:
        return workflow_env.client

    started = datetime.now(UTC) - timedelta(seconds=5)
    deps = ApiDependencies(settings(), sqlite_db.sessions, temporal, identity="4242@api-host", started_at=started)
    async with asgi_client(deps) as api:
        response = await api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["temporal"] == {"ok": True, "namespace": workflow_env.client.namespace, "detail": None}
    assert body["identity"] == "4242@api-host"
    assert body["uptime_seconds"] >= 5
    assert body["version"]


async def test_health_is_degraded_when_temporal_is_unreachable(sqlite_db: Database) -> None:
    unreachable = settings(temporal_address=f"127.0.0.1:{free_port()}")
    connector = TemporalConnector(lambda: Client.connect(unreachable.temporal_address), timeout=2)
    deps = ApiDependencies(unreachable, sqlite_db.sessions, connector, check_timeout=3)
    async with asgi_client(deps) as api:
        first, second = await api.get("/health"), await api.get("/health")
    for response in (first, second):
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "degraded"
        assert body["database"]["ok"] is True
        assert body["temporal"]["ok"] is False
        assert body["temporal"]["detail"]
    assert "next attempt" in second.json()["temporal"]["detail"]  # no reconnect storm


async def test_health_is_degraded_without_a_temporal_client(sqlite_db: Database) -> None:
    async with asgi_client(ApiDependencies(settings(), sqlite_db.sessions, None)) as api:
        response = await api.get("/health")
    assert response.status_code == 503
    assert response.json()["temporal"]["ok"] is False


async def test_health_is_degraded_when_the_database_is_unreachable(workflow_env: WorkflowEnvironment) -> None:
    async def temporal() -> Client:
        return workflow_env.client

    engine = make_engine(
        f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing", connect_args={"connect_timeout": 2}
    )
    try:
        deps = ApiDependencies(settings(), make_session_factory(engine), temporal)
        async with asgi_client(deps) as api:
            response = await api.get("/health")
    finally:
        engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert (body["database"]["ok"], body["temporal"]["ok"]) == (False, True)
    assert "OperationalError" in body["database"]["detail"]


async def test_internal_status_says_when_the_server_cannot_describe_task_queues(
    sqlite_db: Database, workflow_env: WorkflowEnvironment
) -> None:
    async def temporal() -> Client:
        return workflow_env.client

    async with asgi_client(ApiDependencies(settings(), sqlite_db.sessions, temporal)) as api:
        response = await api.get("/internal/status")
    assert response.status_code == 501
    assert "DescribeTaskQueue" in response.json()["detail"]


async def test_internal_status_without_temporal_is_unavailable(sqlite_db: Database) -> None:
    async with asgi_client(ApiDependencies(settings(), sqlite_db.sessions, None)) as api:
        response = await api.get("/internal/status")
    assert response.status_code == 503


@workflow.defn(name="ApiStatusProbe", sandboxed=False)
class ProbeWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@activity.defn(name="api_status_probe")
def probe_activity() -> None:
    return None


async def test_internal_status_lists_the_pollers_of_every_task_queue(sqlite_db: Database, tmp_path: Path) -> None:
    """Against the real dev server, which implements DescribeTaskQueue."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), dev_server_log_level="error", port=free_port()
    )
    try:
        prefix = f"t{uuid.uuid4().hex[:8]}-"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as executor:
            worker = Worker(
                env.client,
                task_queue=campaign_queue(prefix),
                workflows=[ProbeWorkflow],
                activities=[probe_activity],
                activity_executor=executor,
                identity="probe-worker@test",
            )
            async with worker:

                async def temporal() -> Client:
                    return env.client

                deps = ApiDependencies(settings(task_queue_prefix=prefix), sqlite_db.sessions, temporal)
                async with asgi_client(deps) as api:
                    body = await _eventually_polled(api, campaign_queue(prefix))
    finally:
        await env.shutdown()
    queues = {queue["name"]: queue for queue in body["queues"]}
    assert list(queues) == all_queues(prefix)
    campaigns = queues[campaign_queue(prefix)]
    for kind in ("workflow", "activity"):
        (poller,) = campaigns[kind]["pollers"]
        assert poller["identity"] == "probe-worker@test"
        assert poller["last_access_time"]
        assert campaigns[kind]["backlog"]["approximate_count"] == 0
    assert campaign_queue(prefix) not in body["queues_without_pollers"]
    assert f"{prefix}email" in body["queues_without_pollers"]


async def _eventually_polled(api: httpx.AsyncClient, queue: str) -> dict[str, Any]:
    for _ in range(100):
        response = await api.get("/internal/status")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if queue not in body["queues_without_pollers"]:
            found = next(q for q in body["queues"] if q["name"] == queue)
            if found["workflow"]["pollers"] and found["activity"]["pollers"]:
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"no pollers showed up on {queue}")


# --- the server -----------------------------------------------------------------------------


async def test_serve_api_listens_answers_and_stops_when_cancelled(sqlite_db: Database) -> None:
    port = free_port()
    configured = settings(database_url=sqlite_db.url, temporal_address=f"127.0.0.1:{free_port()}")
    ready = asyncio.Event()
    serving = asyncio.create_task(serve_api(configured, host="127.0.0.1", port=port, ready=ready, handle_signals=False))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
            response = await http.get("/health", headers={"Authorization": f"Bearer {API_TOKEN}"})
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert response.status_code == 503  # Temporal is not running: reported, not fatal
    assert response.json()["database"]["ok"] is True
    assert serving.done()


async def test_serve_api_reports_a_port_it_cannot_bind(sqlite_db: Database) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="cannot listen"):
            await serve_api(settings(database_url=sqlite_db.url), host="127.0.0.1", port=port, handle_signals=False)


async def test_the_temporal_connector_backs_off_and_connects_once_temporal_is_back() -> None:
    attempts: list[float] = []
    fake_client = object()

    async def connect() -> Any:
        attempts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.2)  # longer than the impatient caller below waits
        if len(attempts) < 2:
            raise ConnectionRefusedError("connection refused")
        return fake_client

    connector = TemporalConnector(connect, timeout=5, min_backoff=0.5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connector(), 0.05)
    await asyncio.sleep(0.3)  # the abandoned attempt finished and failed meanwhile
    with pytest.raises(TemporalUnavailable, match="next attempt"):
        await connector()
    assert len(attempts) == 1
    await asyncio.sleep(0.5)
    first, second = await asyncio.gather(connector(), connector())
    assert first is second is fake_client
    assert await connector() is fake_client
    assert len(attempts) == 2
