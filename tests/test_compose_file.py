"""docker-compose.temporal.yml holds together (issue #4, item 7).

No Docker engine runs here, so the file is checked as data: every service a
`depends_on` names exists, one-shot jobs gate the long-running services, ports line up
(the UI talks to the frontend on 7233, the API listens where it is published), each
`OUTBOUND_*` variable is a setting `runtime.settings.Settings` really reads and its value
validates, named volumes are declared, long-running services have health checks, the
search attributes registered are exactly `runtime.names.SEARCH_ATTRIBUTES`, and the
commands the Outbound image runs are real `outbound` commands.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import BaseModel

from runtime.names import SEARCH_ATTRIBUTES
from runtime.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.temporal.yml"
DOCKERFILE = REPO / "Dockerfile"
OUTBOUND = Path(sys.executable).parent / "outbound"

OUTBOUND_SERVICES = ("migrate", "schedules", "worker", "api")
ONE_SHOT = ("temporal-schema", "temporal-setup", "migrate", "schedules")
# ${NAME}, ${NAME:-default}, ${NAME:?error}: compose interpolation.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?(?P<op>[-?])(?P<arg>[^}]*))?\}")

Service = dict[str, Any]


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, Service]:
    found: dict[str, Service] = compose()["services"]
    return found


def environment(service: Service) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {str(name): str(value) for name, value in env.items()}


def settings_env_names() -> set[str]:
    """The variables Settings reads: OUTBOUND_<FIELD>, nested models as OUTBOUND_<FIELD>__<SUB>."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"OUTBOUND_{field_name}__{sub}".upper() for sub in annotation.model_fields}
        else:
            names.add(f"OUTBOUND_{field_name}".upper())
    return names


def interpolated(value: str, secret_key: str) -> str:
    """What compose would substitute with nothing set: defaults, a real key for required ones."""

    def substitute(match: re.Match[str]) -> str:
        if match["op"] == "-":
            return match["arg"]
        if match["name"] == "OUTBOUND_SECRET_KEY":
            return secret_key
        raise AssertionError(f"no default for ${{{match['name']}}} in {value!r}")

    return INTERPOLATION.sub(substitute, value)


def port_pairs(service: Service) -> list[tuple[int, int]]:
    """`"host:container"` entries as (host, container)."""
    pairs = []
    for entry in service.get("ports", []):
        host, container = str(entry).rsplit(":", 1)
        pairs.append((int(host.split(":")[-1]), int(container)))
    return pairs


def test_the_stack_has_every_service_and_dependencies_point_at_real_ones() -> None:
    assert set(services()) == {
        "temporal-db",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "outbound-db",
        *OUTBOUND_SERVICES,
    }
    for name, service in services().items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for target, rule in depends.items():
            assert target in services(), f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule == {"condition": expected}, (name, target, rule)
    # The order that makes a cold start work: schema → server → namespace/attributes → workers.
    assert set(services()["temporal"]["depends_on"]) == {"temporal-schema"}
    assert set(services()["worker"]["depends_on"]) == {"migrate", "temporal-setup"}
    # Without it warmup, follow-ups, analytics and retention would never run.
    assert services()["schedules"]["command"] == ["schedules", "sync"]
    assert set(services()["schedules"]["depends_on"]) == {"migrate", "temporal-setup"}
    assert "outbound-db" in services()["migrate"]["depends_on"]


def test_images_are_pinned_and_outbound_services_use_the_locked_image() -> None:
    for name, service in services().items():
        image = str(service["image"])
        if name in OUTBOUND_SERVICES:
            assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
            continue
        repository, _, tag = image.partition(":")
        assert re.fullmatch(r"\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
        assert repository in {"postgres", "temporalio/admin-tools", "temporalio/server", "temporalio/ui"}, image
    dockerfile = DOCKERFILE.read_text()
    assert "uv sync --frozen --no-dev" in dockerfile  # exactly the lockfile, no dev tools
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim", dockerfile, re.MULTILINE)
    assert re.search(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", dockerfile)
    assert 'ENTRYPOINT ["outbound"]' in dockerfile


def test_ports_line_up() -> None:
    stack = services()
    assert port_pairs(stack["temporal"]) == [(7233, 7233)]
    assert environment(stack["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    ui_port = int(environment(stack["temporal-ui"])["TEMPORAL_UI_PORT"])
    assert [container for _, container in port_pairs(stack["temporal-ui"])] == [ui_port]
    api_env = environment(stack["api"])
    assert port_pairs(stack["api"]) == [(int(api_env["OUTBOUND_API_PORT"]),) * 2]
    assert api_env["OUTBOUND_API_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert f":{api_env['OUTBOUND_API_PORT']}/health" in " ".join(stack["api"]["healthcheck"]["test"])
    for name in OUTBOUND_SERVICES:
        assert environment(stack[name])["OUTBOUND_TEMPORAL_ADDRESS"] == "temporal:7233", name
        assert "@outbound-db:5432/" in environment(stack[name])["OUTBOUND_DATABASE_URL"], name
    # Workers scale: no fixed name, no host port.
    assert "container_name" not in stack["worker"]
    assert "ports" not in stack["worker"]
    assert all("container_name" not in service for service in stack.values())


def test_every_outbound_variable_is_a_setting_and_its_value_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    known = settings_env_names()
    key = Fernet.generate_key().decode()
    for name in OUTBOUND_SERVICES:
        env = environment(services()[name])
        unknown = sorted(variable for variable in env if variable.startswith("OUTBOUND_") and variable not in known)
        assert unknown == [], f"{name} sets variables no setting reads: {unknown}"
        for variable in list(known):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in env.items():
            monkeypatch.setenv(variable, interpolated(value, key))
        settings = Settings()
        assert settings.database_url.startswith("postgresql+psycopg://"), name
        assert settings.secret_key is not None
        assert settings.secret_key.get_secret_value() == key
        assert str(settings.outbox_dir) == "/data/outbox"
        assert settings.log_format == "json"
        if name == "api":
            assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8080)
    worker_env = environment(services()["worker"])
    assert float(worker_env["OUTBOUND_GRACEFUL_SHUTDOWN_SECONDS"]) < _seconds(services()["worker"]["stop_grace_period"])
    assert worker_env["OUTBOUND_METRICS_ADDRESS"].endswith(":9464")
    assert ":9464/metrics" in " ".join(services()["worker"]["healthcheck"]["test"])


def test_volumes_are_declared_and_stateful_services_keep_their_data() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for service in services().values():
        for mount in service.get("volumes", []):
            source = str(mount).split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"bind-mounted {source} is missing"
            else:
                used.add(source)
    assert used == declared
    assert "temporal-db-data:/var/lib/postgresql/data" in services()["temporal-db"]["volumes"]
    assert "outbound-db-data:/var/lib/postgresql/data" in services()["outbound-db"]["volumes"]
    assert "outbound-outbox:/data/outbox" in services()["worker"]["volumes"]


def test_long_running_services_have_health_checks_and_jobs_do_not_restart_forever() -> None:
    for name, service in services().items():
        if name in ONE_SHOT:
            assert str(service["restart"]).startswith("on-failure:"), name
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no health check"
        assert check["test"], name
        assert check["interval"], name
        assert service["restart"] == "unless-stopped", name


def test_the_search_attributes_registered_are_exactly_outbounds() -> None:
    setup = services()["temporal-setup"]
    names = environment(setup)["SEARCH_ATTRIBUTES"].split()
    assert names == [key.name for key in SEARCH_ATTRIBUTES]
    script = setup["command"][0]
    assert "for name in $$SEARCH_ATTRIBUTES; do" in script
    assert 'search-attribute create -n "$$NAMESPACE" --name "$$name" --type Keyword' in script
    assert all(key.indexed_value_type.name == "KEYWORD" for key in SEARCH_ATTRIBUTES)
    schema = services()["temporal-schema"]["command"][0]
    assert "temporal/versioned" in schema
    assert "visibility/versioned" in schema


@pytest.mark.timeout(60)
def test_the_outbound_services_run_real_cli_commands() -> None:
    for name in OUTBOUND_SERVICES:
        command = [str(part) for part in services()[name]["command"]]
        done = subprocess.run([str(OUTBOUND), *command, "--help"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{name}: `outbound {' '.join(command)}` is not a command\n{done.stderr}"


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match[1])
