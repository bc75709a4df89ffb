"""The README's quick start, tested by following it on a fresh clone.

`./scripts/demo` runs on a clone of the committed HEAD (so a file that works only because
it sits uncommitted in a developer's checkout fails here), with nothing but a free Temporal
port chosen for it; `./scripts/test` is what CI runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.e2e_support import REPO, clean_environment, describe, free_port, port_is_open

pytestmark = pytest.mark.e2e

README = (REPO / "README.md").read_text()
DEMO, TEST = "./scripts/demo", "./scripts/test"
EXAMPLE_CONTACTS = 55  # distinct emails in examples/leads-a.csv and examples/leads-b.csv


def cannot_run(reason: str) -> None:
    """Skip locally; under CI=true a test that cannot run fails (as the PostgreSQL tests do)."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def quick_start_commands() -> list[str]:
    """The commands of the README's "Quick start" code block, comments stripped."""
    section = README.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the quick start has no bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_quick_start_is_the_demo_and_the_test_command_ci_runs() -> None:
    assert quick_start_commands() == [DEMO, TEST]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(rf"^(exec )?{re.escape(TEST)}\b", ci, re.MULTILINE), ".ci/run must run the README's test command"


@pytest.mark.timeout(600)
def test_the_demo_runs_the_sample_campaign_end_to_end_on_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("uv") is None:
        cannot_run("uv is not on PATH (scripts/bootstrap.sh would install it with pip)")
    grpc_port = free_port()
    ui_port = grpc_port + 1000  # the demo's default, like `temporal server start-dev`
    if port_is_open(ui_port):
        cannot_run(f"port {ui_port} for the demo's Web UI is taken")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)

    env = clean_environment(OUTBOUND_TEMPORAL_ADDRESS=f"127.0.0.1:{grpc_port}")
    env.pop("VIRTUAL_ENV", None)  # the clone gets its own .venv, as on a developer's machine
    demo = subprocess.run([DEMO], cwd=clone, env=env, capture_output=True, text=True, timeout=540, check=False)

    assert demo.returncode == 0, describe(demo)
    output = " ".join(demo.stdout.split())
    assert "finished: completed" in output, describe(demo)
    heard = re.search(r"Your app heard, as signed webhooks \(examples/webhook_receiver.py\): (.*)", output)
    assert heard is not None, describe(demo)
    assert re.search(r"campaign\.launched \(evt_\d+\).*campaign\.completed \(evt_\d+\)", heard.group(1)), (
        "the campaign's events reached the demo's receiver, verified, in order"
    )
    assert f"Outbox (the messages written): {clone / '.outbound' / 'outbox'}" in output
    assert re.search(rf"Web UI: http://localhost:{ui_port}/namespaces/default/workflows/campaign-\d+", output)
    assert len(list((clone / ".outbound" / "outbox" / "email").glob("*.eml"))) == EXAMPLE_CONTACTS
