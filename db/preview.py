"""A campaign's steps rendered for one contact, as `outbound campaign preview` shows them:
the contact's variables, the `ai:` texts the model wrote (or the defaults standing in), and
the email footer's variables as placeholders (the links are signed per message at send)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Campaign, Contact, GeneratedText
from domain.templates import TemplateRenderError, contact_context, render_template
from schemas.campaign_file import CampaignFile
from schemas.enums import Channel


class PreviewError(Exception):
    pass


@dataclass(frozen=True)
class PreviewStep:
    position: int
    channel: str
    subject: str | None
    text: str


@dataclass(frozen=True)
class WrittenBy:
    """The model call behind a written text, as recorded with it."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int | None  # None for texts written before it was recorded


@dataclass(frozen=True)
class Preview:
    ai: dict[str, tuple[str, WrittenBy | None]] = field(default_factory=dict)  # name → (text, None for the default)
    steps: list[PreviewStep] = field(default_factory=list)


def preview_steps(session: Session, campaign_id: int, email: str) -> Preview:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise PreviewError(f"campaign {campaign_id} does not exist")
    contact = session.scalars(
        select(Contact).where(Contact.workspace_id == campaign.workspace_id, Contact.email == email.strip().lower())
    ).one_or_none()
    if contact is None:
        raise PreviewError(f"no contact with the email {email!r}")
    spec = CampaignFile.model_validate(campaign.definition)
    variables = contact_context(contact)
    written = {
        row.name: row
        for row in session.scalars(
            select(GeneratedText).where(
                GeneratedText.campaign_id == campaign_id, GeneratedText.contact_id == contact.id
            )
        )
    }
    try:
        ai: dict[str, tuple[str, WrittenBy | None]] = {}
        for name, text in spec.ai.items():
            row = written.get(name)
            if row is not None and row.text:
                by = WrittenBy(row.model or "the model", row.prompt_tokens, row.completion_tokens, row.latency_ms)
                ai[name] = (row.text, by)
            else:
                ai[name] = (render_template(text.default, variables, field=f"ai.{name}.default"), None)
        context = variables | {"ai": {name: text for name, (text, _) in ai.items()}}
        email_context = context | {"unsubscribe_url": "<unsubscribe link>", "postal_address": spec.postal_address or ""}
        steps = []
        for position, step in enumerate(spec.steps, start=1):
            seen = email_context if step.channel is Channel.EMAIL else context
            subject = render_template(step.subject, seen, field="subject") if step.subject else None
            source = step.body if step.channel is not Channel.VOICEMAIL else (step.say or step.audio_url or "")
            steps.append(PreviewStep(position, step.channel.value, subject, render_template(source or "", seen)))
    except TemplateRenderError as error:
        raise PreviewError(f"this contact's messages cannot be rendered: {error}") from None
    return Preview(ai, steps)
