"""Traces, metrics and JSON logs of a real campaign run on the time-skipping test server.

Each test wires one piece of telemetry the way the worker process does (an interceptor
on the client, the Prometheus runtime, the JSON formatter) and runs a small campaign
through the production worker wiring (`build_workers`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from db.engine import unit_of_work
from db.models import MailboxSync, Sender
from runtime.logs import TemporalIdsFilter, json_formatter
from runtime.metrics import OutboundMetrics, metrics_runtime
from runtime.settings import OutboxFaults
from runtime.telemetry import Tracing
from runtime.temporal import DATA_CONVERTER
from tests.e2e_support import free_port
from tests.support import EMAIL_STEP, Outbound, campaign_spec, email_quota_used_today, people, seed
from workers.mailbox_lag import MailboxLagSampler

# One database is enough here: what is observed does not depend on the dialect.
pytestmark = [pytest.mark.timeout(120), pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Span names from `span` up to its root, following parent ids."""
    names = [span.name]
    while span.parent is not None:
        parent = by_id.get(span.parent.span_id)
        assert parent is not None, f"{span.name}'s parent was not exported"
        names.append(parent.name)
        span = parent
    return names


async def test_one_trace_runs_from_launch_through_both_workflows_to_each_send(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processors("outbound-test", [SimpleSpanProcessor(exporter)])
    config = workflow_env.client.config()  # keeps the time-skipping interceptor
    client = Client(**(config | {"interceptors": [*config["interceptors"], *tracing.interceptors()]}))
    traced = dataclasses.replace(outbound, client=client)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})

    async with traced.worker():
        with tracing.span("campaign launch", {"outbound.campaign_id": campaign}):
            handle = await traced.launch(campaign)
        await handle.result()
    tracing.shutdown()

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    (root,) = [span for span in spans if span.name == "campaign launch"]
    sends = [span for span in spans if span.name == "RunActivity:send_message"]
    assert len(sends) == 3
    assert {span.context.trace_id for span in spans} == {root.context.trace_id}, "one trace"
    # TracingInterceptor's workflow spans (RunWorkflow, zero-length) hang off the span that
    # started the workflow, as do the workflow's commands; so each send's chain is:
    for send in sends:
        assert _chain(send, by_id) == [
            "RunActivity:send_message",
            "StartActivity:send_message",
            "StartChildWorkflow:CampaignStepWorkflow",
            "StartWorkflow:CampaignWorkflow",
            "campaign launch",
        ]
    runs = {span.name: _chain(span, by_id)[1:] for span in spans if span.name.startswith("RunWorkflow:")}
    assert runs == {
        "RunWorkflow:CampaignWorkflow": ["StartWorkflow:CampaignWorkflow", "campaign launch"],
        "RunWorkflow:CampaignStepWorkflow": [
            "StartChildWorkflow:CampaignStepWorkflow",
            "StartWorkflow:CampaignWorkflow",
            "campaign launch",
        ],
    }
    for send in sends:
        attributes = dict(send.attributes or {})
        assert (attributes["outbound.campaign_id"], attributes["outbound.step"]) == (campaign, 1)
        assert attributes["outbound.outcome"] == "sent"
        assert {"outbound.execution_id", "outbound.contact_id"} <= set(attributes)
    assert not [span.name for span in spans if "@" in json.dumps(dict(span.attributes or {}))], "no addresses"


def _scrape(port: int) -> Samples:
    """`/metrics` as {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = (pair.split("=", 1) for pair in labels.rstrip("}").split(",") if pair)
        samples[(name, frozenset((key, raw.strip('"')) for key, raw in pairs))] = float(value)
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (series, have), value in samples.items() if series == name and wanted <= have)


async def _metered_client(workflow_env: WorkflowEnvironment) -> tuple[int, Runtime, Client]:
    """A client on a runtime serving Prometheus on a free port, as the worker process has:
    the port to scrape, the runtime (for Outbound's meters) and the client."""
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    assert runtime is not None
    config = workflow_env.client.service_client.config
    client = await Client.connect(
        config.target_host, namespace=workflow_env.client.namespace, data_converter=DATA_CONVERTER, runtime=runtime
    )
    return port, runtime, client


async def test_one_metrics_endpoint_serves_temporals_and_outbounds_series(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    port, runtime, client = await _metered_client(workflow_env)
    measured = dataclasses.replace(outbound, client=client, faults=OutboxFaults(permanent_failure_marker="a1@"))
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})  # a1's is refused
    # A Gmail mailbox last synced 90 s ago: the sampler reports its lag, by id.
    now = datetime.now(UTC)
    with unit_of_work(outbound.sessions) as session:
        inbox = Sender(
            channel="email", address="inbox@outbound.example", provider="gmail", daily_limit=10, created_at=now
        )
        session.add(inbox)
        session.flush()
        mailbox = inbox.id
        session.add(MailboxSync(sender_id=mailbox, last_synced_at=now - timedelta(seconds=90), messages_seen=0))
    MailboxLagSampler(outbound.sessions, OutboundMetrics(runtime.metric_meter)).sample(now)

    async with measured.worker():
        await (await measured.launch(campaign)).result()

    samples = _scrape(port)
    assert _value(samples, "outbound_sends_total", channel="email", outcome="sent") == 2
    assert _value(samples, "outbound_sends_total", channel="email", outcome="failed") == 1  # a1@ is refused
    assert _value(samples, "outbound_sends_total", channel="email", outcome="deferred") == 0
    assert _value(samples, "outbound_dead_letters_total", channel="email") == 1
    assert _value(samples, "outbound_mailbox_sync_lag_seconds", mailbox_id=str(mailbox)) == 90
    email_queue = f"{outbound.prefix}email"
    assert _value(samples, "temporal_activity_execution_latency_count", task_queue=email_queue) >= 3
    assert any(name.startswith("temporal_") and ("task_queue", email_queue) in labels for name, labels in samples)
    assert "@" not in json.dumps(sorted(str(key) for key in samples)), "no addresses in labels"


async def test_a_send_past_the_daily_limit_is_counted_as_a_deferral(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    port, _, client = await _metered_client(workflow_env)
    measured = dataclasses.replace(outbound, client=client)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)}, daily_limit=10)
    await email_quota_used_today(outbound, workflow_env, 9)  # another campaign already used 9 of 10 today

    async with measured.worker():
        started = await measured.launch(campaign)
        deadline = asyncio.get_running_loop().time() + 30
        while _value(_scrape(port), "outbound_deferrals_total", channel="email") < 1:
            assert asyncio.get_running_loop().time() < deadline, "no deferral was counted"
            await asyncio.sleep(0.2)
        await workflow_env.sleep(timedelta(days=1, hours=1))  # to the sender's next day
        await started.result()

    samples = _scrape(port)
    assert _value(samples, "outbound_deferrals_total", channel="email") == 1
    assert _value(samples, "outbound_sends_total", channel="email", outcome="deferred") == 1
    assert _value(samples, "outbound_sends_total", channel="email", outcome="sent") == 2
    assert len(outbound.files("email")) == 2


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Activity log records as the worker writes them with OUTBOUND_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(TemporalIdsFilter())
    logger = logging.getLogger("temporalio.activity")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_sends_json_log_line_carries_the_ids_and_no_address(outbound: Outbound, json_log: io.StringIO) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await handle.result()

    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    sends = [record for record in records if record.get("outcome") == "sent" and record.get("campaign_id") == campaign]
    assert len(sends) == 2
    for record in sends:
        assert (record["step"], record["channel"], record["activity_type"]) == (1, "email", "send_message")
        assert isinstance(record["contact_id"], int)
        assert isinstance(record["execution_id"], int)
        assert record["workflow_id"] == f"{outbound.prefix}campaign-{campaign}-step-1"
        assert record["run_id"]
        assert {"time", "level", "logger", "message"} <= set(record)
    assert "@" not in json_log.getvalue()


async def test_jobs_are_counted_per_queue_and_outcome_and_sampled_per_state(
    outbound: Outbound, workflow_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from domain.jobs_yaml import load_jobs_file
    from starter.job_producer import JobProducer
    from tests.jobs_support import feature_service, with_jobs, write_jobs_file
    from workers.job_counts import JobCountSampler

    port, runtime, client = await _metered_client(workflow_env)
    measured = dataclasses.replace(outbound, client=client)
    secret = with_jobs(measured, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, attempts=2)
        with_jobs(measured, jobs_file)
        producer = JobProducer(client, outbound.sessions, load_jobs_file(jobs_file), outbound.prefix)
        async with measured.worker():
            good = await producer.add("enrich", {}, job_key="good")
            bad = await producer.add("enrich", {"fail_times": 5}, job_key="bad")
            for job in (good.job, bad.job):
                await producer.handle(job).result()
        JobCountSampler(outbound.sessions, OutboundMetrics(runtime.metric_meter), ["enrich"]).sample()

    samples = _scrape(port)
    assert _value(samples, "outbound_jobs_total", queue="enrich", outcome="completed") == 1
    assert _value(samples, "outbound_jobs_total", queue="enrich", outcome="attempt_failed") == 2
    assert _value(samples, "outbound_jobs_total", queue="enrich", outcome="failed") == 1
    assert _value(samples, "outbound_jobs", queue="enrich", status="completed") == 1
    assert _value(samples, "outbound_jobs", queue="enrich", status="failed") == 1
    assert _value(samples, "outbound_jobs", queue="enrich", status="waiting") == 0
