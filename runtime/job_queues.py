"""What a deployment's job queues need at run time: the jobs file, each queue's signing
secret and its handler."""

from __future__ import annotations

import base64

import httpx

from db.engine import SessionFactory
from domain.jobs_yaml import load_jobs_file
from handlers.ai_write import WriteTexts
from handlers.base import JobHandler
from handlers.enrich import Enrich
from handlers.http_delegation import HttpDelegation
from handlers.mail_routes import MailRoutes
from handlers.verify_email import VerifyEmail
from runtime.ai import WRITE_PROMPT, ChatModel, read_prompt
from runtime.secrets import SecretBox
from runtime.settings import Settings
from schemas.jobs_file import JobsFile, builtin_jobs


def configured_jobs(settings: Settings) -> JobsFile:
    """The queues of the jobs file named by `OUTBOUND_JOBS_FILE` and the built-in ones it
    does not replace (`verify-email`)."""
    return load_jobs_file(settings.jobs_file).with_builtins() if settings.jobs_file else builtin_jobs()


def queue_secret(settings: Settings, queue: str) -> str:
    """The queue's Standard Webhooks secret (`whsec_…`), derived from the deployment key:
    nothing to store, the same on every worker, different for every queue."""
    key = SecretBox(settings.secret_key).signing_key(f"job-queue:{queue}")
    return "whsec_" + base64.b64encode(key).decode()


def job_handlers(
    settings: Settings, jobs: JobsFile, sessions: SessionFactory, client: httpx.Client | None = None
) -> dict[str, JobHandler]:
    """One handler per queue, by queue name."""
    shared = client or httpx.Client(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    routes: MailRoutes | None = None  # one DNS cache for every verify-email queue
    handlers: dict[str, JobHandler] = {}
    for queue in jobs.queues:
        if queue.handler == "http":
            assert queue.endpoint is not None  # the queue file's validation requires it
            secret = queue_secret(settings, queue.name)
            handlers[queue.name] = HttpDelegation(str(queue.endpoint), secret, queue.timeout_seconds, shared)
        elif queue.handler == "verify-email":
            routes = routes or MailRoutes(settings.verification)
            handlers[queue.name] = VerifyEmail(sessions, routes)
        elif queue.handler == "ai-write":
            model = ChatModel(settings.ai) if settings.ai.model else None
            handlers[queue.name] = WriteTexts(sessions, model, read_prompt(WRITE_PROMPT))
        elif queue.handler == "enrich":
            assert queue.provider is not None  # the queue file's validation requires it
            secret = None
            if queue.provider.auth is not None:
                stored = settings.enrichment_secrets.get(queue.provider.auth.secret)
                secret = stored.get_secret_value() if stored is not None else None
            handlers[queue.name] = Enrich(sessions, queue.name, queue.provider, secret, queue.timeout_seconds, shared)
    return handlers
