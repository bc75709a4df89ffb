"""`outbound contract --out DIR`: what an app's developers are handed. One JSON Schema file
per message (signals, updates, the launch input, the status query, every webhook event,
the job payloads) and the HTTP API's OpenAPI document, byte for byte the committed
`schemas/openapi.json`, so the document in the repository and the exported one never differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from schemas.contract import json_schemas
from schemas.events import EventType
from starter import cli_system

pytestmark = pytest.mark.timeout(120)
COMMITTED_OPENAPI = Path(__file__).parent.parent / "schemas" / "openapi.json"


@pytest.fixture
def app() -> typer.Typer:
    """The system commands mounted as `starter/cli.py` mounts them."""
    root = typer.Typer()
    cli_system.register(root)
    return root


def test_contract_writes_a_schema_per_message_and_the_committed_openapi_document(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a stray default `contract/` folder would land here
    out = tmp_path / "exported" / "contract"  # parents are made

    done = CliRunner().invoke(app, ["contract", "--out", str(out)])

    assert done.exit_code == 0, done.output
    schemas = json_schemas()
    written = {path.name for path in out.iterdir()}
    assert written == {f"{name}.schema.json" for name in schemas} | {"openapi.json"}
    assert (out / "openapi.json").read_text() == COMMITTED_OPENAPI.read_text(), (
        "schemas/openapi.json is what `outbound contract` exports"
    )
    assert all(json.loads((out / f"{name}.schema.json").read_text()) == schema for name, schema in schemas.items())
    for kind in EventType:
        event = json.loads((out / f"event.{kind.value}.schema.json").read_text())
        assert event["properties"]["type"] == {"const": kind.value, "title": "Type"}, "every event, its own type"
        assert "data" in event["required"]
    failed = json.loads((out / "event.message.failed.schema.json").read_text())["properties"]["data"]
    assert {"message_id", "campaign_id", "contact", "error_type", "attempts"} <= set(failed["properties"])
    assert {"signal.pause.schema.json", "workflow.CampaignWorkflow.input.schema.json"} <= written
    assert done.output.count("wrote ") == len(written), "one line per file written"
    assert not (tmp_path / "contract").exists()


def test_contract_run_twice_into_one_folder_writes_the_same_files(app: typer.Typer, tmp_path: Path) -> None:
    first = CliRunner().invoke(app, ["contract", "--out", str(tmp_path)])
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    again = CliRunner().invoke(app, ["contract", "--out", str(tmp_path)])

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before, "the export is deterministic"
