"""Activities of the campaign workflow: enrollment, lifecycle projections, stops."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.contacts_repo import stop_contact
from db.engine import SessionFactory, unit_of_work
from db.enrollment import prepare_campaign
from db.lifecycle import cancel_everything, project_status, record_pause, record_resume, shift_steps
from db.lifecycle_batches import Progress, cancel_open_rows, reslot_open_rows
from db.models import Campaign
from domain.time_labels import local_label
from schemas.activity_io import (
    LifecycleInput,
    LifecycleResult,
    PrepareCampaignInput,
    PrepareCampaignResult,
    SettleCampaignInput,
    SettleCampaignResult,
    StopContactInput,
)
from schemas.enums import CampaignStatus


class CampaignActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def prepare_campaign(self, request: PrepareCampaignInput) -> PrepareCampaignResult:
        """Enroll the contacts and fix each step's start, once per campaign."""
        try:
            with unit_of_work(self.sessions) as session:
                counts, steps = prepare_campaign(
                    session, request.campaign_id, request.now, request.start_at, request.version
                )
                definition = session.get_one(Campaign, request.campaign_id).definition
        except LookupError as error:
            raise ApplicationError(str(error), non_retryable=True) from None
        activity.logger.info("campaign %s enrolled %s contacts", request.campaign_id, counts.enrolled)
        verify_first = definition.get("verification") is not None
        write_first = bool(definition.get("ai"))
        return PrepareCampaignResult(steps=steps, counts=counts, verify_first=verify_first, write_first=write_first)

    @activity.defn
    def apply_lifecycle(self, request: LifecycleInput) -> LifecycleResult | None:
        """Commit the gate first (pause, resume, cancel, complete); the workflow tells the
        step workflows afterwards (DESIGN R2). `None` only in histories recorded before
        the result existed."""
        result = LifecycleResult()
        with unit_of_work(self.sessions) as session:
            if not project_status(session, request.campaign_id, request.state, request.version, request.now):
                return result  # an older or repeated decision: already applied
            if request.state is CampaignStatus.PAUSED:
                record_pause(session, request.campaign_id, request.now)
            elif request.state is CampaignStatus.ACTIVE and request.paused_at is not None:
                record_resume(
                    session, request.campaign_id, request.paused_at, request.now, reslot=not request.gate_only
                )
                timezone = shift_steps(session, request.campaign_id, request.shifted_steps)
                result.start_labels = {
                    plan.step_id: local_label(plan.start_at, timezone) for plan in request.shifted_steps
                }
            elif request.state is CampaignStatus.CANCELLED and not request.gate_only:
                cancel_everything(session, request.campaign_id, request.now)
        return result

    @activity.defn
    def settle_lifecycle(self, request: SettleCampaignInput) -> SettleCampaignResult:
        """The bulk half of a cancel (close every waiting row and unplanned pair) or a resume
        (re-slot every waiting row), in batches that never block a send; a retry resumes
        from the last heartbeat (DESIGN R20)."""
        details = activity.info().heartbeat_details
        progress = Progress.from_details(list(details)) if details else Progress()

        def heartbeat(at: Progress) -> None:
            activity.heartbeat(*at.as_details())

        if request.state is CampaignStatus.CANCELLED:
            cancel_open_rows(self.sessions, request.campaign_id, request.now, progress, heartbeat)
        elif request.state is CampaignStatus.ACTIVE and request.paused_at is not None:
            reslot_open_rows(self.sessions, request.campaign_id, request.paused_at, request.now, progress, heartbeat)
        activity.logger.info(
            "campaign %s %s: %s open rows, %s unplanned pairs",
            request.campaign_id,
            "cancel settled" if request.state is CampaignStatus.CANCELLED else "re-slotted after the pause",
            progress.rows,
            progress.unplanned,
        )
        return SettleCampaignResult(rows=progress.rows, unplanned=progress.unplanned)

    @activity.defn
    def stop_contact(self, request: StopContactInput) -> int:
        """A reply, bounce or opt-out: stops the contact in every campaign at once. A contact
        that does not exist is bad input, not a fault to retry."""
        with unit_of_work(self.sessions) as session:
            try:
                return stop_contact(session, request.contact_id, request.reason, request.now, source="signal")
            except LookupError as error:
                raise ApplicationError(str(error), type="ContactNotFound", non_retryable=True) from None
