"""The `ai-write` handler: a model writes a campaign's `{{ ai.<name> }}` texts for one
contact, before the campaign's first step (or when `outbound campaign generate` asks).

A job item names the campaign and the contact: `{"campaign_id": 3, "contact_id": 42}`. Each
declared text is rendered from its prompt (a Jinja template over the contact), written by the
model as `{"text": "..."}` and stored. A text the model cannot write — an answer off the
contract, too long, empty — is stored as a failure with its reason, and the campaign's
default template stands in for it: never an empty sentence. A model that does not answer (a
timeout, a rate limit, a 5xx) fails the attempt as retryable; the queue's retries apply.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import openai

from db.campaigns_repo import campaign_spec
from db.engine import SessionFactory, unit_of_work
from db.generated_texts import store_text, written_texts
from db.models import Contact
from domain.templates import TemplateRenderError, contact_context, render_template
from handlers.base import JobDone, JobFailed, JobRequest, ProgressReport
from runtime.ai import ChatModel, UnusableAnswer

_TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


def clean_text(value: Any, max_chars: int) -> tuple[str | None, str | None]:
    """(the text, None) if the model's text can go into an email, else (None, why not)."""
    if not isinstance(value, str):
        return None, "the answer has no text"
    text = " ".join(value.split())
    if not text:
        return None, "the text is empty"
    if len(text) > max_chars:
        return None, f"the text is longer than {max_chars} characters"
    return text, None


class WriteTexts:
    def __init__(self, sessions: SessionFactory, model: ChatModel | None, system_prompt: str) -> None:
        self.sessions = sessions
        self.model = model
        self.system_prompt = system_prompt

    def run(self, request: JobRequest, report_progress: ProgressReport) -> JobDone:
        campaign_id, contact_id = _ids(request.data)
        if self.model is None:
            raise JobFailed("no language model is configured (OUTBOUND_AI__MODEL)", retryable=False)
        with self.sessions() as session:
            spec = campaign_spec(session, campaign_id)
            contact = session.get(Contact, contact_id)
            if contact is None:
                raise JobFailed(f"no contact {contact_id}", retryable=False)
            context = contact_context(contact)
            done = written_texts(session, campaign_id, contact_id)
        outcome: dict[str, str] = {}
        for name, text_spec in spec.ai.items():
            if name in done:
                outcome[name] = "written before"
                continue
            text, error, usage = self._write(name, text_spec.prompt_text or "", text_spec.max_chars, context)
            with unit_of_work(self.sessions) as session:
                store_text(session, campaign_id, contact_id, name, datetime.now(UTC), text=text, error=error,
                           usage=usage)  # fmt: skip
            outcome[name] = "written" if text is not None else f"default: {error}"
        return JobDone(result=outcome)

    def _write(
        self, name: str, prompt: str, max_chars: int, context: dict[str, Any]
    ) -> tuple[str | None, str | None, dict[str, Any]]:
        assert self.model is not None
        try:
            instructions = render_template(prompt, context, field=f"ai.{name}.prompt")
        except TemplateRenderError as error:
            return None, str(error), {}
        try:
            answer, usage = self.model.json_answer(self.system_prompt, instructions, f"write ai.{name}")
        except _TRANSIENT as error:
            raise JobFailed(f"the model did not answer for ai.{name}: {type(error).__name__}", retryable=True) from None
        except UnusableAnswer as error:  # answered all the same: the call's usage is kept
            return None, str(error), asdict(error.usage)
        except openai.OpenAIError as error:  # a refused request: no answer, no usage
            return None, f"the model's answer is unusable: {type(error).__name__}", {}
        text, problem = clean_text(answer.get("text"), max_chars)
        return text, problem, asdict(usage)


def _ids(data: dict[str, Any]) -> tuple[int, int]:
    campaign_id, contact_id = data.get("campaign_id"), data.get("contact_id")
    if not isinstance(campaign_id, int) or not isinstance(contact_id, int) or isinstance(campaign_id, bool):
        raise JobFailed("ai-write takes {'campaign_id': N, 'contact_id': N}", retryable=False)
    return campaign_id, contact_id
