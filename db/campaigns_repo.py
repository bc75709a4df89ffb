"""Creating a campaign (DRAFT) from a validated campaign file.

Everything the file refers to is checked before the first write: the lead groups and
senders must exist, and every template must render with the variables the groups'
contacts actually have. A mistake therefore fails `campaign create` with a list of
problems and writes nothing, instead of failing thousands of sends after launch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, true
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from db.models import (
    DEFAULT_WORKSPACE_ID,
    Campaign,
    CampaignLeadGroup,
    CampaignSender,
    Contact,
    LeadGroup,
    LeadGroupMember,
    Sender,
    Step,
    Workspace,
)
from domain.addresses import normalise_sender_address
from domain.compliance import EMAIL_VARIABLES
from domain.templates import CONTACT_FIELDS, PLACEHOLDER, TemplateRenderError, check_templates
from schemas.campaign_file import CampaignFile
from schemas.enums import CampaignStatus, Channel

CONTACT_FIELDS_SET = frozenset(CONTACT_FIELDS)


class CampaignCreateError(ValueError):
    """The campaign refers to something missing or has a bad template; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def create_campaign(
    session: Session, spec: CampaignFile, now: datetime, *, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> int:
    """Store `spec` as a DRAFT campaign with its steps, lead groups and senders; its id.

    Raises `CampaignCreateError` (having written nothing) when a lead group or sender
    does not exist or a template cannot render for the groups' contacts.
    """
    problems: list[str] = []
    spec = _with_postal_address(session, spec, workspace_id, problems)
    group_ids = _lead_group_ids(session, spec, workspace_id, problems)
    sender_ids = _sender_ids(session, spec, workspace_id, problems)
    if not problems:  # templates are checked against the groups' variables, so the groups must exist
        problems += _template_problems(spec, CONTACT_FIELDS_SET | custom_variables(session, group_ids))
    if problems:
        raise CampaignCreateError(problems)
    campaign = Campaign(
        workspace_id=workspace_id,
        name=spec.name,
        timezone=spec.timezone,
        definition=spec.model_dump(mode="json"),
        status=CampaignStatus.DRAFT.value,
        lifecycle_version=0,
        created_at=now,
    )
    session.add(campaign)
    session.flush()
    session.add_all(_steps(campaign.id, spec))
    session.add_all(CampaignLeadGroup(campaign_id=campaign.id, group_id=group_id) for group_id in group_ids)
    session.add_all(CampaignSender(campaign_id=campaign.id, sender_id=sender_id) for sender_id in sender_ids)
    session.flush()
    return campaign.id


def _with_postal_address(session: Session, spec: CampaignFile, workspace_id: int, problems: list[str]) -> CampaignFile:
    """An email campaign's postal address: its file's, else the workspace default, kept in
    the stored definition so the sends need no look-up; none at all is a problem."""
    if spec.postal_address or not any(step.channel is Channel.EMAIL for step in spec.steps):
        return spec
    workspace = session.get(Workspace, workspace_id)
    default = workspace.postal_address if workspace else None
    if not default:
        problems.append(
            "postal_address: an email campaign needs the sender's physical postal address, which every"
            " commercial email must show (CAN-SPAM); add `postal_address:` to the campaign file or set a"
            ' default with `outbound workspace set --postal-address "..."`'
        )
        return spec
    return spec.model_copy(update={"postal_address": default})


def _lead_group_ids(session: Session, spec: CampaignFile, workspace_id: int, problems: list[str]) -> list[int]:
    found = dict(
        session.execute(
            select(LeadGroup.name, LeadGroup.id).where(
                LeadGroup.workspace_id == workspace_id, LeadGroup.name.in_(spec.lead_groups)
            )
        ).all()
    )
    for index, name in enumerate(spec.lead_groups):
        if name not in found:
            problems.append(
                f"lead_groups[{index}]: there is no lead group named {name!r}"
                " (create it with `outbound contacts import FILE.csv --group NAME`)"
            )
    return sorted({found[name] for name in spec.lead_groups if name in found})


def _sender_ids(session: Session, spec: CampaignFile, workspace_id: int, problems: list[str]) -> list[int]:
    """The active senders the file names, per channel (an SMS number is also a voicemail caller)."""
    ids: set[int] = set()
    for channel in Channel:
        addresses = spec.senders.for_channel(channel)
        if not addresses:
            continue
        found = dict(
            session.execute(
                select(Sender.address, Sender.id).where(
                    Sender.workspace_id == workspace_id, Sender.channel == channel.value, Sender.status == "active"
                )
            ).all()
        )
        for index, address in enumerate(addresses):
            sender_id = found.get(_normalised(channel, address))
            if sender_id is None:
                problems.append(
                    f"senders.{channel.value}[{index}]: {address!r} is not a registered active {channel.value}"
                    f" sender (add it with `outbound senders add --channel {channel.value} --address ...`)"
                )
            else:
                ids.add(sender_id)
    return sorted(ids)


def _normalised(channel: Channel, address: str) -> str:
    try:
        return normalise_sender_address(channel, address)
    except ValueError:
        return address  # reported as not registered, with the address as written


def custom_variables(session: Session, group_ids: list[int]) -> set[str]:
    """The custom variable names of the contacts in these lead groups.

    The distinct keys are computed by the database from the JSON column, so a
    100,000-contact group costs one query and no contact rows in memory.
    """
    if not group_ids:
        return set()
    return {key for key in session.scalars(_variable_keys_query(session, group_ids)) if key}


def _variable_keys_query(session: Session, group_ids: list[int]) -> Select[str]:
    # `json_each` / `jsonb_each` in FROM may refer to the contacts row on both databases.
    if session.get_bind().dialect.name == "postgresql":
        entries = func.jsonb_each(sql_cast(Contact.variables, postgresql.JSONB)).table_valued("key")
    else:
        entries = func.json_each(Contact.variables).table_valued("key")
    in_groups = select(LeadGroupMember.contact_id).where(LeadGroupMember.group_id.in_(group_ids))
    return select(entries.c.key).select_from(Contact).join(entries, true()).where(Contact.id.in_(in_groups)).distinct()


def _template_problems(spec: CampaignFile, known_variables: frozenset[str] | set[str]) -> list[str]:
    """Every template problem; an email's templates also see `unsubscribe_url` and
    `postal_address`, which the send fills in, and every step sees the `ai.<name>` texts the
    campaign declares. An `ai:` prompt and default are templates over the contact too."""
    problems: list[str] = []
    objects = {"ai": dict.fromkeys(spec.ai, PLACEHOLDER)} if spec.ai else {}
    for is_email in (True, False):
        templates = {
            f"steps[{index}].{name}": source
            for index, step in enumerate(spec.steps)
            if (step.channel is Channel.EMAIL) is is_email
            for name, source in step.templates().items()
        }
        known = set(known_variables) | (EMAIL_VARIABLES if is_email else set())
        try:
            check_templates(templates, known, objects)
        except TemplateRenderError as error:
            problems += error.problems
    ai_templates: dict[str, str] = {}
    for name, text in spec.ai.items():
        ai_templates[f"ai.{name}.default"] = text.default
        if text.prompt_text is None:
            problems.append(f"ai.{name}.prompt: not read; create the campaign from its file (`campaign create FILE`)")
        else:
            ai_templates[f"ai.{name}.prompt"] = text.prompt_text
    try:
        check_templates(ai_templates, set(known_variables))
    except TemplateRenderError as error:
        problems += error.problems
    return sorted(problems, key=_step_order)


def _step_order(problem: str) -> int:
    """Problems in step order (a stable sort keeps each step's own order)."""
    index = problem.removeprefix("steps[").split("]", 1)[0]
    return int(index) if index.isdigit() else 0


def _steps(campaign_id: int, spec: CampaignFile) -> list[Step]:
    return [
        Step(
            campaign_id=campaign_id,
            position=position,
            channel=step.channel.value,
            day=step.day,
            wait_days=step.wait.days,
            wait_seconds=step.wait.seconds,
            subject=step.subject,
            body=step.body,
            say=step.say,
            audio_url=step.audio_url,
            new_thread=step.new_thread,
            speak_to_humans=step.speak_to_humans,
        )
        for position, step in enumerate(spec.steps, start=1)
    ]


def campaign_spec(session: Session, campaign_id: int) -> CampaignFile:
    """The campaign file a stored campaign was created from (the campaign must exist)."""
    return CampaignFile.model_validate(session.get_one(Campaign, campaign_id).definition)
