"""`/v1/jobs` and `/v1/queues`: producers enqueue, inspect, cancel and retry jobs over HTTP,
with an API key (the same code path as `outbound jobs`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status
from starlette.concurrency import run_in_threadpool

from db.engine import SessionFactory
from db.jobs import queue_counts
from runtime.job_queues import configured_jobs
from runtime.settings import Settings
from schemas.jobs import JobView
from schemas.jobs_api import AddJobRequest, AddJobResponse, QueueStats
from starter.job_producer import JobError, JobProducer
from workers.api.auth import api_key_guard
from workers.api.temporal_link import TemporalSource, client_or_503

_STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}


def jobs_router(settings: Settings, sessions: SessionFactory, temporal: TemporalSource | None) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(api_key_guard(settings, sessions))])
    jobs = configured_jobs(settings)

    async def producer() -> JobProducer:
        return JobProducer(await client_or_503(temporal), sessions, jobs, settings.task_queue_prefix)

    @router.post("/jobs", status_code=201, response_model=AddJobResponse)
    async def add_job(body: AddJobRequest, response: Response) -> AddJobResponse:
        """201 with a new job; 200 with `"created": false` and the job its id already names."""
        try:
            enqueued = await (await producer()).add(
                body.queue,
                body.data,
                name=body.name,
                job_key=body.job_id,
                delay_seconds=body.delay,
                priority=body.priority,
                attempts=body.attempts,
            )
        except JobError as error:
            raise HTTPException(_STATUS_OF[error.kind], str(error)) from None
        response.status_code = status.HTTP_201_CREATED if enqueued.created else status.HTTP_200_OK
        return AddJobResponse(created=enqueued.created, job=enqueued.job)

    @router.get("/jobs/{reference}", response_model=JobView)
    async def get_job(reference: str, queue: str | None = None) -> JobView:
        """A job by row id or job id (`?queue=` when the id is used in several queues)."""
        try:
            return await run_in_threadpool(JobProducer.lookup, sessions, _qualified(reference, queue))
        except JobError as error:
            raise HTTPException(_STATUS_OF[error.kind], str(error)) from None

    @router.delete("/jobs/{reference}", status_code=202, response_model=JobView)
    async def cancel_job(reference: str, queue: str | None = None) -> JobView:
        try:
            return await (await producer()).cancel(_qualified(reference, queue))
        except JobError as error:
            raise HTTPException(_STATUS_OF[error.kind], str(error)) from None

    @router.post("/jobs/{reference}/retry", status_code=202, response_model=JobView)
    async def retry_job(reference: str, queue: str | None = None) -> JobView:
        try:
            return await (await producer()).retry(_qualified(reference, queue))
        except JobError as error:
            raise HTTPException(_STATUS_OF[error.kind], str(error)) from None

    @router.get("/queues", response_model=list[QueueStats])
    async def queues() -> list[QueueStats]:
        names = [queue.name for queue in jobs.queues] if jobs else []

        def counted() -> dict[str, dict[str, int]]:
            with sessions() as session:
                return queue_counts(session, names)

        counts = await run_in_threadpool(counted)
        return [
            QueueStats(
                name=queue.name,
                handler=queue.handler,
                slots=queue.slots,
                rate_limit=queue.rate_limit,
                attempts=queue.attempts,
                priority=queue.priority,
                counts=counts[queue.name],
            )
            for queue in (jobs.queues if jobs else [])
        ]

    return router


def _qualified(reference: str, queue: str | None) -> str:
    return f"{queue}/{reference}" if queue else reference
