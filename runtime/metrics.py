"""Metrics: Temporal's own and Outbound's counters on one Prometheus `/metrics` endpoint.

The worker process builds its Temporal `Runtime` with a Prometheus exporter when
`OUTBOUND_METRICS_ADDRESS` is set, and Outbound's counters are made from that runtime's
meter, so one scrape shows both the SDK's series (`temporal_*`: task slots, poll and
schedule-to-start latencies, activity failures) and Outbound's (`outbound_*`). Without
the setting the runtime's meter is the SDK's no-op meter and every `add` is a method
call on an object that does nothing.

Labels are low-cardinality and carry no contact data: channel, outcome and mailbox
(sender) id, job queue and state only.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import MetricCounter, MetricGaugeFloat, MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

SENDS = "outbound_sends_total"
DEFERRALS = "outbound_deferrals_total"
DEAD_LETTERS = "outbound_dead_letters_total"
SYNC_LAG = "outbound_mailbox_sync_lag_seconds"
MAILBOX_PAUSES = "outbound_mailbox_pauses_total"
JOBS = "outbound_jobs_total"
JOBS_BY_STATUS = "outbound_jobs"


def metrics_runtime(bind_address: str | None) -> Runtime | None:
    """A runtime serving Prometheus metrics on `bind_address` (host:port), or None for the
    SDK's default runtime (no metrics). Each runtime has its own threads: one per process."""
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


def client_meter(client: Client) -> MetricMeter:
    """The meter of the runtime `client` (and so its workers) runs on."""
    runtime = client.service_client.config.runtime or Runtime.default()
    return runtime.metric_meter


class OutboundMetrics:
    """Outbound's own series. Counters with their label values are made once and kept,
    so a send pays one dictionary lookup and one `add`."""

    def __init__(self, meter: MetricMeter | None = None) -> None:
        meter = meter or MetricMeter.noop
        self._sends = meter.create_counter(SENDS, "Send attempts that reached an outcome, by channel.")
        self._deferrals = meter.create_counter(DEFERRALS, "Sends moved to the sender's next window (quota, grant).")
        self._dead_letters = meter.create_counter(DEAD_LETTERS, "Executions that failed for good (dead letter).")
        self._pauses = meter.create_counter(MAILBOX_PAUSES, "Mailboxes paused after repeated rate limits or 5xx.")
        self._lag = meter.create_gauge_float(SYNC_LAG, "Seconds since a mailbox's inbound sync last succeeded.", "s")
        self._jobs = meter.create_counter(JOBS, "Job attempts and endings, by queue and outcome.")
        self._job_states = meter.create_gauge_float(JOBS_BY_STATUS, "Jobs per queue and state (sampled).")
        self._job_gauges: dict[tuple[str, str], MetricGaugeFloat] = {}
        self._labelled: dict[tuple[str, ...], MetricCounter] = {}
        self._gauges: dict[int, MetricGaugeFloat] = {}

    def send(self, channel: str, outcome: str) -> None:
        key = ("send", channel, outcome)
        counter = self._labelled.get(key)
        if counter is None:
            counter = self._labelled[key] = self._sends.with_additional_attributes(
                {"channel": channel, "outcome": outcome}
            )
        counter.add(1)

    def deferral(self, channel: str) -> None:
        self._one(self._deferrals, "deferral", channel)

    def dead_letter(self, channel: str) -> None:
        self._one(self._dead_letters, "dead_letter", channel)

    def mailbox_paused(self, channel: str) -> None:
        self._one(self._pauses, "mailbox_paused", channel)

    def job(self, queue: str, outcome: str) -> None:
        """`completed`, `attempt_failed` (to be retried), `failed`, `cancelled`."""
        key = ("job", queue, outcome)
        counter = self._labelled.get(key)
        if counter is None:
            attributes = {"queue": queue, "outcome": outcome}
            counter = self._labelled[key] = self._jobs.with_additional_attributes(attributes)
        counter.add(1)

    def jobs_in_state(self, queue: str, status: str, count: int) -> None:
        gauge = self._job_gauges.get((queue, status))
        if gauge is None:
            attributes = {"queue": queue, "status": status}
            gauge = self._job_gauges[(queue, status)] = self._job_states.with_additional_attributes(attributes)
        gauge.set(float(count))

    def mailbox_sync_lag(self, mailbox_id: int, seconds: float) -> None:
        gauge = self._gauges.get(mailbox_id)
        if gauge is None:
            gauge = self._gauges[mailbox_id] = self._lag.with_additional_attributes({"mailbox_id": str(mailbox_id)})
        gauge.set(max(0.0, seconds))

    def _one(self, base: MetricCounter, kind: str, channel: str) -> None:
        key = (kind, channel)
        counter = self._labelled.get(key)
        if counter is None:
            counter = self._labelled[key] = base.with_additional_attributes({"channel": channel})
        counter.add(1)


NO_METRICS = OutboundMetrics()
