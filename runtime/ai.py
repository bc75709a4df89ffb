"""Language-model calls through any OpenAI-compatible chat-completions endpoint (the `openai`
package with `base_url`: a hosted model, or a local vLLM / Ollama / LiteLLM server).

Prompts are files under `prompts/`, read when the client is made (a missing one is an error
then, not at the first reply). Every call logs the model, the tokens and the latency, never
the prompt or the completion: replies carry personal data.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import openai
from pydantic import ValidationError

from domain.reply_intent import IntentVerdict, intent_by_rules, new_text
from runtime.settings import AiSettings

log = logging.getLogger("outbound.ai")
PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
REPLY_PROMPT = "classify_reply.md"
WRITE_PROMPT = "write_text.md"  # the system message of `ai-write` (a campaign's prompt is the user's)
_REPLY_CHARS = 4000  # of the reply's new text sent to the model


class PromptMissing(Exception):
    pass


def read_prompt(name: str, folder: Path = PROMPTS) -> str:
    path = folder / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptMissing(f"the prompt file {path} does not exist") from None


@dataclass(frozen=True, slots=True)
class Usage:
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class UnusableAnswer(ValueError):
    """The model answered, but not with a JSON object: the call is recorded all the same."""

    def __init__(self, reason: str, usage: Usage) -> None:
        super().__init__(f"the model's answer is unusable: {reason}")
        self.reason = reason
        self.usage = usage


class ChatModel:
    """One model behind an OpenAI-compatible endpoint; answers are JSON objects."""

    def __init__(self, settings: AiSettings) -> None:
        assert settings.model is not None
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"  # local servers take any
        self.model = settings.model
        self.client = openai.OpenAI(
            base_url=settings.base_url, api_key=key, timeout=settings.timeout, max_retries=settings.retries
        )

    def json_answer(self, system: str, user: str, purpose: str) -> tuple[dict[str, Any], Usage]:
        """The model's JSON object and the call's usage; raises openai.OpenAIError (no answer)
        or UnusableAnswer (an answer that is not a JSON object, with the usage)."""
        started = time.perf_counter()
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format={"type": "json_object"},
            temperature=0,
        )
        usage = Usage(
            model=completion.model or self.model,
            prompt_tokens=completion.usage.prompt_tokens if completion.usage else 0,
            completion_tokens=completion.usage.completion_tokens if completion.usage else 0,
            latency_ms=round((time.perf_counter() - started) * 1000),
        )
        log.info(
            "model call: %s", purpose,
            extra={"model": usage.model, "prompt_tokens": usage.prompt_tokens,
                   "completion_tokens": usage.completion_tokens, "latency_ms": usage.latency_ms},
        )  # fmt: skip
        content = completion.choices[0].message.content if completion.choices else None
        try:
            answer = json.loads(content or "")
        except ValueError as error:
            raise UnusableAnswer(type(error).__name__, usage) from None
        if not isinstance(answer, dict):
            raise UnusableAnswer("not a JSON object", usage)
        return answer, usage


class ReplyClassifier:
    """A reply's intent from the model when one is configured, else (or when the call fails
    or answers something that is not the contract) from the rules."""

    def __init__(self, settings: AiSettings, prompts: Path = PROMPTS) -> None:
        self.model = ChatModel(settings) if settings.model else None
        self.prompt = read_prompt(REPLY_PROMPT, prompts) if self.model else ""

    def classify(self, body: str, received: date | None = None) -> IntentVerdict:
        """`received`: the day the reply arrived, so that "back on 14 January" has a year."""
        if self.model is None:
            return intent_by_rules(body, received)
        text = new_text(body)[:_REPLY_CHARS]
        system = self.prompt
        if received is not None:
            system += f"\nThe reply arrived on {received.isoformat()} (for a date given without a year).\n"
        try:
            answer, usage = self.model.json_answer(system, text, "classify a reply")
            return IntentVerdict.model_validate({**answer, "source": usage.model})
        except (openai.OpenAIError, ValueError, ValidationError) as error:  # UnusableAnswer is a ValueError
            log.warning("reply classification fell back to the rules: %s", type(error).__name__)
            return intent_by_rules(body, received)
