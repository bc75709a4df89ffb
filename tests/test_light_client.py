"""An app imports `starter.client` to launch and control campaigns; that must not load the
worker stack (workflows, activities, the database layer, the providers' SDKs)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WORKER_STACK = ("workflows", "activities", "providers", "db", "googleapiclient", "twilio", "sqlalchemy")


@pytest.mark.timeout(60)
def test_importing_the_client_loads_the_temporal_client_and_the_schemas_only() -> None:
    probe = "import json, sys, starter.client; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=50, check=True)
    loaded = json.loads(done.stdout)
    heavy = sorted({name for name in loaded if name.split(".")[0] in WORKER_STACK})
    assert heavy == [], f"importing starter.client loaded {heavy}"
    assert "temporalio.client" in loaded
    assert "schemas.workflow_io" in loaded
