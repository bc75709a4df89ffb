"""Outbound end to end, as a user and an operator drive it.

The real `outbound` CLI and an `outbound worker` process run against a Temporal dev
server and a real database (SQLite and PostgreSQL); the campaign is paused with the
`temporal` CLI and found by its search attribute, as an operator would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.e2e_support import EXAMPLES, Deployment, ExampleContacts, Report, TemporalServer, written_at

pytestmark = pytest.mark.e2e

CONTACTS = ExampleContacts.load()
# Long enough to pause between the email and the SMS, short enough for a quick test.
SMS_WAIT_SECONDS = 12
VOICEMAIL_WAIT_SECONDS = 3
PAST_DUE_MARGIN = timedelta(seconds=2)
# The full campaign runs on both databases; the shorter scenarios on the production one only,
# to keep this file around two minutes.
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """A fresh database and outbox with the example contacts and senders loaded."""
    deployment = Deployment(temporal_server, database_url, tmp_path)
    deployment.load_examples()
    try:
        yield deployment
    finally:
        deployment.stop_worker()


def campaign_file(tmp_path: Path, *, sms_wait: str, voicemail_wait: str, name: str = "campaign.yaml") -> Path:
    """examples/demo-campaign.yaml with other waits between its steps."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "demo-campaign.yaml").read_text())
    spec["steps"][1]["wait"] = sms_wait
    spec["steps"][2]["wait"] = voicemail_wait
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def finished(status: str) -> Callable[[Report], bool]:
    """A status-report condition: the campaign reached `status` and its workflow closed."""

    def check(report: Report) -> bool:
        return bool(report["status"] == status and report["workflow_status"] not in (None, "RUNNING"))

    return check


def paused_after_the_email_step(report: Report) -> bool:
    return bool(report["status"] == "PAUSED" and report["steps"][0]["sent"] == len(CONTACTS.emails))


@pytest.mark.timeout(240)
# Forty seconds of real waits: run on PostgreSQL only; the quick start's demo walks a whole
# campaign on SQLite with the same worker and CLI.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_campaign_paused_with_the_temporal_cli_holds_then_resumes_and_sends_each_message_once(
    deployment: Deployment, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    deployment.start_worker()
    campaign = deployment.create_campaign(
        campaign_file(tmp_path, sms_wait=f"{SMS_WAIT_SECONDS}s", voicemail_wait=f"{VOICEMAIL_WAIT_SECONDS}s")
    )
    workflow_id = deployment.workflow_id(campaign)
    assert deployment.ok("campaign", "launch", str(campaign)).stdout.split()[-1] == workflow_id

    # Step 1: one email per contact, at once. Then an operator pauses the campaign with the
    # `temporal` CLI (the app's signal contract) and finds it by its search attribute.
    deployment.wait_for_files("email", len(CONTACTS.emails))
    temporal_server.temporal("workflow", "signal", "--workflow-id", workflow_id, "--name", "pause", "--input", "{}")
    paused_at = datetime.now(UTC)
    report = deployment.wait_for(campaign, paused_after_the_email_step, "the PAUSED status")
    assert report["enrolled"] == len(CONTACTS.emails)
    sms_due = datetime.fromisoformat(report["steps"][1]["start_at"])
    assert paused_at < sms_due, "the test paused too late to prove anything: raise SMS_WAIT_SECONDS"
    temporal_server.wait_until_listed(workflow_id, 'CampaignStatus="PAUSED"')

    # Nothing goes out while paused, even after the SMS step was due.
    while datetime.now(UTC) < sms_due + PAST_DUE_MARGIN:
        assert deployment.files("sms") == []
        time.sleep(0.2)
    held = deployment.status(campaign)
    assert (held["status"], held["totals"]["sent"], held["steps"][1]["sent"]) == ("PAUSED", len(CONTACTS.emails), 0)
    assert deployment.files("sms") == []

    resumed_at = datetime.now(UTC)
    assert "is ACTIVE (resume acknowledged)" in deployment.ok("campaign", "resume", str(campaign)).stdout
    deployment.wait_for_files("voicemail", len(CONTACTS.with_phone))
    done = deployment.wait_for(campaign, finished("COMPLETED"), "the campaign to complete")
    temporal_server.wait_until_listed(workflow_id, 'CampaignStatus="COMPLETED"')

    # The later steps moved by the paused time (so past the resume), and every SMS went out after it.
    assert datetime.fromisoformat(done["steps"][1]["start_at"]) > resumed_at
    assert all(written_at(record) >= resumed_at for record in deployment.records("sms"))

    # Exactly one message per contact and step; the contact without a phone is skipped.
    everyone, phones = len(CONTACTS.emails), len(CONTACTS.with_phone)
    no_phone = everyone - phones
    assert [(step["channel"], step["sent"], step["skipped"]) for step in done["steps"]] == [
        ("email", everyone, {}),
        ("sms", phones, {"no_address": no_phone}),
        ("voicemail", phones, {"no_address": no_phone}),
    ]
    assert done["totals"] == {
        "sent": everyone + 2 * phones,
        "scheduled": 0,
        "failed": 0,
        "skipped": 2 * no_phone,
        "cancelled": 0,
    }
    assert sorted(deployment.email_recipients()) == sorted(CONTACTS.emails)
    for channel in ("sms", "voicemail"):
        numbers = [record["to"] for record in deployment.records(channel)]
        assert len(numbers) == len(set(numbers)) == phones, channel

    # The worker shuts down gracefully on SIGTERM.
    assert deployment.stop_worker() == 0, deployment.worker_log_tail()


@ON_POSTGRESQL
@pytest.mark.timeout(180)
def test_cancel_closes_a_running_campaign_and_a_finished_campaign_refuses_signals(
    deployment: Deployment, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    deployment.start_worker()
    campaign = deployment.create_campaign(campaign_file(tmp_path, sms_wait="1h", voicemail_wait="1d"))
    deployment.ok("campaign", "launch", str(campaign))
    deployment.wait_for_files("email", len(CONTACTS.emails))

    cancelled = deployment.ok("campaign", "cancel", str(campaign), "--reason", "wrong list")
    assert "is CANCELLED (cancel acknowledged)" in cancelled.stdout
    done = deployment.wait_for(campaign, finished("CANCELLED"), "the campaign to be cancelled")
    assert done["workflow_status"] == "COMPLETED"
    assert done["steps"][0]["sent"] == len(CONTACTS.emails)
    for step in done["steps"][1:]:  # every contact's later steps are closed as CANCELLED
        assert (step["sent"], step["scheduled"], step["sending"], step["not_planned"]) == (0, 0, 0, 0), step
        assert (step["cancelled"], step["skipped"]) == (len(CONTACTS.emails), {}), step
    assert deployment.files("sms") == deployment.files("voicemail") == []
    temporal_server.wait_until_listed(deployment.workflow_id(campaign), 'CampaignStatus="CANCELLED"')

    error = deployment.refused("campaign", "pause", str(campaign))
    assert f"error: campaign {campaign} is CANCELLED; it cannot pause" in error


@ON_POSTGRESQL
@pytest.mark.timeout(150)
def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(
    deployment: Deployment, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    # A template variable no contact has (and no `default`) fails at create time.
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "demo-campaign.yaml").read_text())
    spec["steps"][1]["body"] = "Hi {{ first_name | default('there') }}, how is {{ favourite_colour }} going?"
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(spec, sort_keys=False))
    error = deployment.refused("campaign", "create", str(typo))
    assert "steps[1].body: 'favourite_colour' is undefined" in error
    assert _rows(deployment.database_url, "campaigns") == _rows(deployment.database_url, "steps") == 0

    # A campaign is launched once; a second launch is refused (here before any worker ran it,
    # so the refusal comes from Temporal's workflow id, not from the database).
    campaign = deployment.create_campaign(campaign_file(tmp_path, sms_wait="1h", voicemail_wait="1d"))
    deployment.ok("campaign", "launch", str(campaign))
    error = deployment.refused("campaign", "launch", str(campaign))
    assert f"error: campaign {campaign} was already launched" in error
    workflow_id = deployment.workflow_id(campaign)
    count = temporal_server.temporal("workflow", "count", "--query", f'WorkflowId="{workflow_id}"')
    assert count.stdout.split() == ["Total:", "1"]
    temporal_server.temporal("workflow", "terminate", "--workflow-id", workflow_id, "--reason", "end of test")


def _rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    finally:
        engine.dispose()
