"""The Temporal Web UI tells a campaign's story without reading code (issue #4, item 3).

A real `outbound worker` runs a small two-step campaign on a Temporal dev server; one
contact's email is rejected for good. A headless Chromium then opens the dev server's
Web UI the way an operator would: the workflow list filtered by `CampaignId`, the
campaign workflow's search attributes and its summary and current details. The
histories behind those pages are checked through the `temporal` CLI: the timer names
the step and its start in the campaign's time zone, sends and the failure name the
contact by id, and no contact address appears anywhere.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e_support import EXAMPLES, Deployment, ExampleContacts, TemporalServer, clean_environment, dev_server

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CONTACTS = ExampleContacts.load()
# Recipients containing this are rejected by the outbox for good: one dead letter.
REJECTED = "ava.thompson"
PAGE_TIMEOUT = 30.0
# "2026-12-01 09:00 America/New_York": a step's start in the campaign's time zone.
LOCAL_START = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} America/New_York"


def _browser_or_skip() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing and not IN_CI:
        pytest.skip(f"headless Chromium is not installed ({', '.join(missing)}: Debian chromium, chromium-driver)")


class RejectingDeployment(Deployment):
    """A deployment whose outbox rejects one contact permanently (a real dead letter)."""

    @property
    def env(self) -> dict[str, str]:
        return clean_environment(
            **{name: value for name, value in super().env.items() if name.startswith("OUTBOUND_")},
            OUTBOUND_OUTBOX_FAULTS__PERMANENT_FAILURE_MARKER=REJECTED,
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TemporalServer]:
    with dev_server(tmp_path / "temporal") as server:
        yield server


@pytest.fixture
def deployment(server: TemporalServer, sqlite_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = RejectingDeployment(server, sqlite_url, tmp_path)
    deployment.load_examples()
    try:
        yield deployment
    finally:
        deployment.stop_worker()


def two_step_campaign(tmp_path: Path) -> Path:
    """The demo campaign's email, then its SMS an hour later: the campaign stays running,
    asleep until step 2, while the browser looks at it."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "demo-campaign.yaml").read_text())
    spec["name"] = "Web UI check"
    spec["steps"] = spec["steps"][:2]
    spec["steps"][1]["wait"] = "1h"
    path = tmp_path / "web-ui.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.timeout(240)
def test_the_web_ui_shows_the_campaign_its_search_attributes_summary_and_progress(
    deployment: Deployment, server: TemporalServer, tmp_path: Path
) -> None:
    _browser_or_skip()
    deployment.start_worker()
    campaign = deployment.create_campaign(two_step_campaign(tmp_path))
    deployment.ok("campaign", "launch", str(campaign))
    workflow_id, step_1 = deployment.workflow_id(campaign), f"{deployment.workflow_id(campaign)}-step-1"
    everyone = len(CONTACTS.emails)
    deployment.wait_for(
        campaign,
        lambda report: report["steps"][0]["finished"] and report["steps"][0]["failed"] == 1,
        "step 1 to finish with one dead letter",
    )
    server.wait_until_listed(step_1, f'CampaignId="{campaign}" AND ExecutionStatus="Completed"')

    # The histories: the timer and sends say what they are; the failure says who and why.
    campaign_history = _history_text(server, workflow_id)
    assert re.search(rf"wait until step 2 \(sms\) at {LOCAL_START}", campaign_history), campaign_history[-2000:]
    step_history = _history_text(server, step_1)
    assert "Step 1 of campaign" in _describe(server, step_1)
    rejected = _contact_id(deployment, REJECTED)
    assert re.search(rf"step 1: send email execution \d+ to contact {rejected}\b", step_history)
    assert re.search(rf"contact {rejected}, execution \d+: outbox fault: recipient rejected", step_history)
    assert re.search(rf"dead-letter execution \d+ to contact {rejected}: ProviderPermanent", step_history)
    leaked = [address for address in CONTACTS.emails if address in (campaign_history + step_history).lower()]
    assert leaked == [], "contact addresses in workflow history"

    with _browser(tmp_path / "chromium") as ui:
        base = f"http://127.0.0.1:{server.ui_port}/namespaces/default/workflows"

        # The list, filtered by the campaign's search attribute: the campaign and its step.
        query = urllib.parse.quote(f'CampaignId="{campaign}"')
        ui.get(f"{base}?query={query}")
        listing = ui.wait_for_text(lambda text: workflow_id in text and step_1 in text, "the filtered workflow list")
        assert "CampaignWorkflow" in listing
        assert "CampaignStepWorkflow" in listing

        # The campaign's page: its id, then the search attributes tab.
        ui.get(f"{base}/{urllib.parse.quote(workflow_id)}")
        ui.wait_for_text(lambda text: workflow_id in text and "RUNNING" in text, "the campaign workflow page")
        ui.click_tab("search-attributes-tab")
        attributes = ui.wait_for_text(
            lambda text: f'"CampaignId": "{campaign}"' in text and '"CampaignStatus": "ACTIVE"' in text,
            "the CampaignId and CampaignStatus search attributes",
        )
        assert '"Channel"' not in attributes  # the channel belongs to the step workflows

        # Summary, details and the live current details (fetched through the worker).
        ui.click_tab("user-metadata-tab")
        metadata = ui.wait_for_frames(
            lambda text: (
                f"Campaign {campaign}: Web UI check" in text
                and f"{everyone} enrolled" in text
                and re.search(rf"waiting for step 2 \(sms\) at {LOCAL_START}", text) is not None
            ),
            "the summary and the current details",
        )
        assert "1 of 2 steps started, 1 finished" in metadata
    server.temporal("workflow", "terminate", "--workflow-id", workflow_id, "--reason", "end of test")


# --- helpers ---------------------------------------------------------------------------


class WebUI:
    """A thin layer over selenium for a single-page app: every look waits explicitly."""

    def __init__(self, driver: Any) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.25)

    def get(self, url: str) -> None:
        self.driver.get(url)

    def wait_for_text(self, ready: Callable[[str], bool], what: str) -> str:
        """The page's visible text once `ready` holds for it."""
        from selenium.webdriver.common.by import By

        seen: list[str] = [""]

        def check(driver: Any) -> str | None:
            seen[0] = driver.find_element(By.TAG_NAME, "body").text
            return seen[0] if ready(seen[0]) else None

        return self._until(check, what, seen)

    def click_tab(self, test_id: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions

        locator = (By.CSS_SELECTOR, f"[data-testid='{test_id}']")
        self.wait.until(expected_conditions.element_to_be_clickable(locator), f"the {test_id}").click()

    def wait_for_frames(self, ready: Callable[[str], bool], what: str) -> str:
        """The text of the page's output frames (the UI renders summaries and details as
        markdown in sandboxed iframes); reloads while the current details catch up."""
        from selenium.webdriver.common.by import By

        seen: list[str] = [""]

        def check(driver: Any) -> str | None:
            texts = []
            for frame in driver.find_elements(By.CSS_SELECTOR, "iframe[title='output']"):
                driver.switch_to.frame(frame)
                try:
                    texts.append(driver.find_element(By.TAG_NAME, "body").text)
                finally:
                    driver.switch_to.default_content()
            seen[0] = "\n".join(texts)
            if ready(seen[0]):
                return seen[0]
            if texts and all(texts):  # rendered, but the details are older than the workflow
                driver.refresh()
            return None

        return self._until(check, what, seen)

    def _until(self, check: Callable[[Any], str | None], what: str, seen: list[str]) -> str:
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException

        try:
            # `until` returns the first truthy value `check` gave: the text.
            return str(self.wait.until(_ignoring(check, StaleElementReferenceException)))
        except TimeoutException:
            raise AssertionError(
                f"the Web UI did not show {what} within {PAGE_TIMEOUT:.0f} s; it showed:\n{seen[0]}"
            ) from None


def _ignoring(check: Callable[[Any], str | None], error: type[Exception]) -> Callable[[Any], str | None]:
    """The SPA re-renders under us: a vanished element means 'not yet', not a failure."""

    def guarded(driver: Any) -> str | None:
        try:
            return check(driver)
        except error:
            return None

    return guarded


class _browser:
    """One headless Chromium session with the flags a closed, root-run sandbox needs."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.driver: Any = None

    def __enter__(self) -> WebUI:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1600,1200",
            f"--user-data-dir={self.profile}",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        return WebUI(self.driver)

    def __exit__(self, *_: object) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


def _history_text(server: TemporalServer, workflow_id: str) -> str:
    """The workflow's history as JSON with every payload decoded, so summaries, inputs and
    failure messages can be searched as text."""
    events = json.loads(server.temporal("workflow", "show", "--workflow-id", workflow_id, "--output", "json").stdout)
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                try:
                    decoded.append(base64.b64decode(data).decode("utf-8", errors="replace"))
                except ValueError:
                    decoded.append(data)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            decoded.append(node)

    walk(events)
    return "\n".join(decoded)


def _describe(server: TemporalServer, workflow_id: str) -> str:
    return server.temporal("workflow", "describe", "--workflow-id", workflow_id).stdout


def _contact_id(deployment: Deployment, fragment: str) -> int:
    """The id of the one example contact whose address contains `fragment`."""
    from sqlalchemy import create_engine, text

    engine = create_engine(deployment.database_url)
    try:
        with engine.connect() as connection:
            found = connection.scalar(
                text("SELECT id FROM contacts WHERE email LIKE :pattern"), {"pattern": f"%{fragment}%"}
            )
    finally:
        engine.dispose()
    assert found is not None, fragment
    return int(found)
