"""Recorded histories replay against today's workflow code (DESIGN R15).

A change that would break running campaigns (a new command order without
`workflow.patched`, a removed signal, a model that no longer decodes) fails here.
Re-record with `OUTBOUND_RECORD_HISTORIES=1 uv run pytest -k sqlite tests/test_campaign_*.py
tests/test_sending_guarantees.py` only when a change is deliberately incompatible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.temporal import DATA_CONVERTER
from workers.worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
REQUIRED = {
    "normal_run",
    "pause_resume",
    "cancel_after_first_step",
    "reply_mid_campaign",
    "quota_deferral",
    "step_after_continue_as_new",
    "dead_letter",
}


def test_every_required_scenario_has_a_recorded_history() -> None:
    assert {path.stem for path in HISTORIES} >= REQUIRED


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_a_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    record = json.loads(path.read_text())
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
