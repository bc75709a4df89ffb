"""`examples/local_model.py`, the stand-in for a language model that the jobs demo reads
replies with: an OpenAI-compatible endpoint that the real `openai` client talks to, refusing
what a real endpoint would refuse, so that the demo shows the model path and its fallback."""

from __future__ import annotations

import json

import httpx
import pytest

from domain.reply_intent import ReplyIntent
from examples.local_model import MODEL, LocalModel
from runtime.ai import ChatModel, ReplyClassifier
from runtime.settings import AiSettings

SCRIPT = {
    "pricing": {"intent": "interested", "referral": None, "return_date": None},
    "schedule a call": "Sounds like they want a meeting!",
}


def settings_for(model: LocalModel, name: str = MODEL) -> AiSettings:
    return AiSettings(model=name, base_url=model.base_url, retries=0, timeout=5)


def test_the_real_client_gets_the_scripted_answer_with_its_usage() -> None:
    with LocalModel(SCRIPT) as model:
        answer, usage = ChatModel(settings_for(model)).json_answer("Classify.", "Could you send pricing?", "test")
    assert answer == SCRIPT["pricing"]
    assert usage.model == MODEL
    assert usage.prompt_tokens == 5  # the words of both messages
    assert usage.completion_tokens > 0


def test_a_reply_is_read_by_the_stand_in_and_an_answer_that_is_not_json_leaves_it_to_the_rules() -> None:
    with LocalModel(SCRIPT) as model:
        classifier = ReplyClassifier(settings_for(model))
        interested = classifier.classify("Sounds good, could you send me pricing?")
        meeting = classifier.classify("Can we schedule a call on Thursday?")
        unknown = classifier.classify("Hmm.")
        assert model.calls == 3
    assert (interested.intent, interested.source) == (ReplyIntent.INTERESTED, MODEL)
    assert (meeting.intent, meeting.source) == (ReplyIntent.MEETING_REQUEST, "rules")
    assert (unknown.intent, unknown.source) == (ReplyIntent.UNCLEAR, MODEL)


def test_a_request_a_real_endpoint_would_refuse_is_refused() -> None:
    with LocalModel(SCRIPT) as model:
        classifier = ReplyClassifier(settings_for(model, name="some-other-model"))
        assert classifier.classify("could you send me pricing?").source == "rules"
        assert model.calls == 0
        for body in (
            {"model": MODEL, "messages": [{"role": "user", "content": "pricing"}]},
            {"model": MODEL, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "pricing"}]},
            {"model": MODEL, "messages": "pricing", "response_format": {"type": "json_object"}},
        ):
            answer = httpx.post(f"{model.base_url}/chat/completions", json=body, timeout=5)
            assert answer.status_code == 400, body
            assert "bad request" in answer.json()["error"]["message"]
        not_json = httpx.post(f"{model.base_url}/chat/completions", content=b"{", timeout=5)
        assert not_json.status_code == 400
        assert httpx.post(f"{model.base_url}/embeddings", json={}, timeout=5).status_code == 404
        assert model.calls == 0


@pytest.mark.parametrize("phrase", ["pricing", "schedule a call"])
def test_the_first_phrase_found_names_the_answer(phrase: str) -> None:
    with LocalModel(SCRIPT) as model:
        status, body = model.respond(
            "/v1/chat/completions",
            {
                "model": MODEL,
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"about {phrase}"}],
                "response_format": {"type": "json_object"},
            },
        )
    assert status == 200
    content = body["choices"][0]["message"]["content"]
    scripted = SCRIPT[phrase]
    assert content == (scripted if isinstance(scripted, str) else json.dumps(scripted))
