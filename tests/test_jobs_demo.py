"""`outbound demo --jobs` runs the job platform end to end on the embedded defaults: a dev
server, the example feature service, a worker, jobs that complete, retry and fail; then
addresses verified against a local DNS server and replies read for their intent."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e_support import OUTBOUND, clean_environment, describe, free_port

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
def test_the_jobs_demo_completes_retries_and_dead_letters_as_it_says(tmp_path: Path) -> None:
    env = clean_environment(OUTBOUND_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    demo = subprocess.run(
        [str(OUTBOUND), "demo", "--jobs"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200
    )
    assert demo.returncode == 0, describe(demo)
    output = " ".join(demo.stdout.split())
    assert "Jobs finished: 3 completed, 1 failed (a dead letter)" in output, describe(demo)
    for address, verdict in [
        ("jane@acme.example", "deliverable"),
        ("sales@acme.example", "risky │ role_address"),
        ("temp@mailinator.com", "risky │ disposable"),
        ("joe@nomail.example", "undeliverable │ null_mx"),
        ("ann@gone.example", "undeliverable │ no_domain"),
    ]:
        assert f"{address} │ {verdict}" in output, describe(demo)
    # Three replies read by the stand-in for a model through the real client, one whose
    # answer was not JSON read by the rules.
    for intent in ("interested", "out_of_office", "referral"):
        assert re.search(rf"│ {intent} │[^│]*│ local-stand-in │", output), describe(demo)
    assert re.search(r"│ meeting_request │[^│]*│ rules │", output), describe(demo)
    assert "'return_date': '2027-01-05'" in output
    assert "a stand-in for a model (examples/local_model.py)" in output
    assert "Created a local secret key" in demo.stderr, "the embedded default made its key"
    assert (tmp_path / ".outbound" / "secret.key").exists()
