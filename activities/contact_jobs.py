"""Activities that prepare a campaign's contacts before its first step, each through a bulk
job the campaign workflow runs as a child: verification (`verification:` in the campaign
file: the job over those without a recent verdict, then the enrollments whose verdict fails
turned `unverified`) and written texts (`ai:`: the job over those the model has not written
for yet)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.campaigns_repo import campaign_spec
from db.engine import SessionFactory, unit_of_work
from db.generated_texts import contacts_without_texts
from db.job_items import write_bulk_job
from db.jobs import NewJob
from db.verification import apply_requirement, enrolled_needing_verification
from schemas.activity_io import ApplyVerificationInput, ContactsJobInput, ContactsJobPlan
from schemas.campaign_file import VerificationRequirement
from schemas.jobs import BulkJobInput, JobView
from schemas.jobs_file import VERIFY_HANDLER, WRITE_HANDLER, JobsFile, QueueSpec


class ContactJobActivities:
    def __init__(self, sessions: SessionFactory, jobs: JobsFile) -> None:
        self.sessions = sessions
        self.jobs = jobs

    @activity.defn
    def plan_verification(self, request: ContactsJobInput) -> ContactsJobPlan | None:
        """The job over the contacts to verify (written once: a retry finds it), or None
        when every enrolled contact has a recent verdict."""
        queue = self._queue(VERIFY_HANDLER)
        with unit_of_work(self.sessions) as session:
            requirement = _requirement(session, request.campaign_id)
            if requirement is None:
                return None
            ids = enrolled_needing_verification(session, request.campaign_id, requirement, request.now)
            if not ids:
                return None
            new = NewJob(queue.name, f"campaign-{request.campaign_id}-verify", {}, queue.priority, queue.attempts,
                         name=f"verify campaign {request.campaign_id}")  # fmt: skip
            job, _ = write_bulk_job(session, new, ({"contact_id": contact_id} for contact_id in ids), request.now)
        return _plan(job, queue, request.task_queue_prefix, len(ids))

    @activity.defn
    def plan_writing(self, request: ContactsJobInput) -> ContactsJobPlan | None:
        """The job over the enrolled contacts the model has not written the `ai:` texts for
        (written once: a retry finds it), or None when there is nothing to write."""
        queue = self._queue(WRITE_HANDLER)
        with unit_of_work(self.sessions) as session:
            names = list(campaign_spec(session, request.campaign_id).ai)
            ids = contacts_without_texts(session, request.campaign_id, names, enrolled_only=True)
            if not ids:
                return None
            items = ({"campaign_id": request.campaign_id, "contact_id": contact_id} for contact_id in ids)
            new = NewJob(queue.name, f"campaign-{request.campaign_id}-write", {}, queue.priority, queue.attempts,
                         name=f"write the ai texts of campaign {request.campaign_id}")  # fmt: skip
            job, _ = write_bulk_job(session, new, items, request.now)
        return _plan(job, queue, request.task_queue_prefix, len(ids))

    def _queue(self, handler: str) -> QueueSpec:
        try:
            return self.jobs.for_handler(handler)
        except LookupError as error:
            raise ApplicationError(str(error), type="NoQueueForHandler", non_retryable=True) from None

    @activity.defn
    def apply_verification(self, request: ApplyVerificationInput) -> int:
        """Enrollments that fail the requirement now skip every step; how many."""
        with unit_of_work(self.sessions) as session:
            requirement = _requirement(session, request.campaign_id)
            return 0 if requirement is None else apply_requirement(session, request.campaign_id, requirement)


def _plan(job: JobView, queue: QueueSpec, prefix: str, count: int) -> ContactsJobPlan:
    items = job.items or count
    # A model call takes seconds: a batch of one keeps a slow answer from holding nine others.
    batch = 1 if queue.handler == WRITE_HANDLER else 10
    bulk = BulkJobInput(job_id=job.id, queue=queue.name, attempts=queue.attempts, timeout_seconds=queue.timeout_seconds,
                        window=100, batch=batch, task_queue_prefix=prefix, items=items)  # fmt: skip
    return ContactsJobPlan(job_key=job.job_key, queue=queue.name, priority=job.priority, contacts=items, bulk=bulk)


def _requirement(session: Session, campaign_id: int) -> VerificationRequirement | None:
    return campaign_spec(session, campaign_id).verification
