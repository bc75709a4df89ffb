"""What a deployment's job queues need at run time: the jobs file, each queue's signing
secret and its handler."""

from __future__ import annotations

import base64

import httpx

from domain.jobs_yaml import load_jobs_file
from handlers.base import JobHandler
from handlers.http_delegation import HttpDelegation
from runtime.secrets import SecretBox
from runtime.settings import Settings
from schemas.jobs_file import JobsFile


def configured_jobs(settings: Settings) -> JobsFile | None:
    """The jobs file named by `OUTBOUND_JOBS_FILE`, or None (no job queues)."""
    return load_jobs_file(settings.jobs_file) if settings.jobs_file else None


def queue_secret(settings: Settings, queue: str) -> str:
    """The queue's Standard Webhooks secret (`whsec_…`), derived from the deployment key:
    nothing to store, the same on every worker, different for every queue."""
    key = SecretBox(settings.secret_key).signing_key(f"job-queue:{queue}")
    return "whsec_" + base64.b64encode(key).decode()


def job_handlers(settings: Settings, jobs: JobsFile, client: httpx.Client | None = None) -> dict[str, JobHandler]:
    """One handler per queue, by queue name."""
    shared = client or httpx.Client(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    handlers: dict[str, JobHandler] = {}
    for queue in jobs.queues:
        if queue.handler == "http":
            assert queue.endpoint is not None  # the queue file's validation requires it
            secret = queue_secret(settings, queue.name)
            handlers[queue.name] = HttpDelegation(str(queue.endpoint), secret, queue.timeout_seconds, shared)
    return handlers
