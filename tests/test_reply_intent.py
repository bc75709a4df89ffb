"""A reply's intent: from an OpenAI-compatible model when one is configured (a local server
that checks each request), from the rules when not — and from the rules, without a crash,
when the model answers malformed JSON, an unknown intent, an error, or nothing in time.
Written reply samples, quoted history included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from domain.reply_intent import IntentVerdict, ReplyIntent, automatic_reply_intent, intent_by_rules, new_text
from runtime.ai import PromptMissing, ReplyClassifier
from runtime.settings import AiSettings
from tests.openai_fake import KEY, MODEL, FakeModel, fake_model

SAMPLES = {
    "interested": "Sounds interesting, can you send me more details on pricing?\n\nOn Mon, Sam wrote:\n> Hi",
    "meeting": "Happy to chat. Are you free on Thursday at 3pm? Or book via calendly.\n> earlier text",
    "not_interested": "Thanks, but we're all set with our current vendor. Not interested.",
    "referral": "I don't handle this - please reach out to maria.lopez@acme.example, she runs ops.",
    "ooo": "I am out of the office until 2027-01-05 with limited access to email.",
    "unsubscribe": "Please remove me from your list.\n\n-----Original Message-----\nFrom: Sam",
    "unclear": "Who is this?",
}


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with fake_model() as running:
        yield running


def classifier(model: FakeModel, timeout: float = 2.0) -> ReplyClassifier:
    settings = AiSettings(base_url=model.base_url, model=MODEL, api_key=SecretStr(KEY), timeout=timeout, retries=0)
    return ReplyClassifier(settings)


@pytest.mark.parametrize(
    ("sample", "intent"),
    [
        ("interested", ReplyIntent.INTERESTED),
        ("meeting", ReplyIntent.MEETING_REQUEST),
        ("not_interested", ReplyIntent.NOT_INTERESTED),
        ("referral", ReplyIntent.REFERRAL),
        ("ooo", ReplyIntent.OUT_OF_OFFICE),
        ("unsubscribe", ReplyIntent.UNSUBSCRIBE_REQUEST),
        ("unclear", ReplyIntent.UNCLEAR),
    ],
)
def test_the_rules_read_each_sample_written_reply(sample: str, intent: ReplyIntent) -> None:
    verdict = intent_by_rules(SAMPLES[sample])
    assert verdict.intent is intent
    assert verdict.source == "rules"


def test_the_rules_fill_the_referral_and_the_return_date_from_the_text() -> None:
    referral = intent_by_rules(SAMPLES["referral"]).referral
    assert referral is not None
    assert referral.email == "maria.lopez@acme.example"
    assert intent_by_rules(SAMPLES["ooo"]).return_date == date(2027, 1, 5)


@pytest.mark.parametrize(
    ("text", "received", "back"),
    [
        ("I am out of the office and back on 14 January.", date(2026, 12, 18), date(2027, 1, 14)),
        ("Out of office until Monday, November 30.", date(2026, 11, 23), date(2026, 11, 30)),
        ("On leave from 10 Dec. and back on Jan 14th.", date(2026, 12, 9), date(2027, 1, 14)),
        ("Out of office until January 14th, 2027.", None, date(2027, 1, 14)),
        ("I am out of the office and back on 14 January.", None, None),
        ("Out of office until 31 February.", date(2026, 12, 18), None),
    ],
    ids=["day month, next year", "month day", "the latest date named", "with a year", "no year to complete",
         "no such day"],
)  # fmt: skip
def test_the_rules_read_a_return_date_written_in_words(text: str, received: date | None, back: date | None) -> None:
    verdict = intent_by_rules(text, received)
    assert (verdict.intent, verdict.return_date) == (ReplyIntent.OUT_OF_OFFICE, back)


def test_an_automatic_reply_is_out_of_office_whatever_the_judge_read_in_it() -> None:
    notice = "I am away until 14 January. To stop receiving our newsletter, unsubscribe at example.com/u."
    judged = intent_by_rules(notice, date(2026, 12, 18))
    assert judged.intent is ReplyIntent.UNSUBSCRIBE_REQUEST, "the rules alone would misread it"
    verdict = automatic_reply_intent(judged, notice, date(2026, 12, 18))
    assert (verdict.intent, verdict.return_date, verdict.source) == (
        ReplyIntent.OUT_OF_OFFICE,
        date(2027, 1, 14),
        "rules",
    )
    by_model = IntentVerdict(intent=ReplyIntent.OUT_OF_OFFICE, return_date=date(2027, 1, 15), source=MODEL)
    assert automatic_reply_intent(by_model, notice, date(2026, 12, 18)) == by_model, "the model's date comes first"
    assert automatic_reply_intent(None, "Thanks, we received your message.").return_date is None


def test_quoted_history_is_not_the_reply() -> None:
    assert new_text(SAMPLES["unsubscribe"]) == "Please remove me from your list."
    quoted_optout = "Sure, tell me more.\n\nOn Tue, Sam wrote:\n> reply STOP or unsubscribe anytime"
    assert intent_by_rules(quoted_optout).intent is ReplyIntent.INTERESTED


def test_the_model_decides_when_configured_and_only_the_new_text_is_sent(model: FakeModel) -> None:
    model.script["send me more details"] = {"intent": "meeting_request"}
    model.script["reach out to"] = {
        "intent": "referral", "referral": {"name": "Maria Lopez", "email": "maria.lopez@acme.example"},
    }  # fmt: skip
    verdict = classifier(model).classify(SAMPLES["interested"])
    assert (verdict.intent, verdict.source) == (ReplyIntent.MEETING_REQUEST, MODEL), "the model, not the rules"
    referral = classifier(model).classify(SAMPLES["referral"]).referral
    assert referral is not None
    assert referral.name == "Maria Lopez"
    sent = model.requests[0]["messages"]
    assert sent[1]["content"] == new_text(SAMPLES["interested"]), "quoted history stays home"
    assert "B2B sales" in sent[0]["content"], "the prompt file is the system message"


def test_the_model_is_told_the_day_a_reply_arrived_to_complete_a_yearless_return_date(model: FakeModel) -> None:
    model.script["back on"] = {"intent": "out_of_office", "return_date": "2027-01-14"}
    verdict = classifier(model).classify("Out of office, back on 14 January.", date(2026, 12, 18))
    assert (verdict.intent, verdict.return_date) == (ReplyIntent.OUT_OF_OFFICE, date(2027, 1, 14))
    system, user = model.requests[0]["messages"]
    assert "arrived on 2026-12-18" in system["content"]
    assert user["content"] == "Out of office, back on 14 January.", "the reply's text, and nothing else"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("{not json", id="malformed JSON"),
        pytest.param('["interested"]', id="JSON but not an object"),
        pytest.param({"intent": "ecstatic"}, id="an intent that does not exist"),
        pytest.param({"intent": "out_of_office", "return_date": "next week"}, id="a date that is not one"),
        pytest.param(500, id="a server error"),
        pytest.param(401, id="a refused key"),
        pytest.param("hang", id="no answer in time"),
    ],
)
def test_a_model_that_fails_falls_back_to_the_rules(
    model: FakeModel, answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    model.script["remove me"] = answer
    with caplog.at_level(logging.INFO, logger="outbound.ai"):
        verdict = classifier(model, timeout=0.5).classify(SAMPLES["unsubscribe"])
    assert (verdict.intent, verdict.source) == (ReplyIntent.UNSUBSCRIBE_REQUEST, "rules")
    assert any("fell back to the rules" in record.getMessage() for record in caplog.records)
    assert "remove me" not in caplog.text, "no reply text in the logs"


def test_every_call_logs_model_tokens_and_latency_but_no_text(
    model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="outbound.ai"):
        classifier(model).classify(SAMPLES["meeting"])
    [call] = [record for record in caplog.records if record.getMessage() == "model call: classify a reply"]
    assert (call.model, call.prompt_tokens, call.completion_tokens) == (MODEL, 120, 30)  # type: ignore[attr-defined]
    assert call.latency_ms >= 0  # type: ignore[attr-defined]
    assert "Thursday" not in caplog.text


def test_without_a_model_the_rules_decide_and_a_missing_prompt_is_an_error_at_start(tmp_path: Path) -> None:
    assert ReplyClassifier(AiSettings()).classify(SAMPLES["ooo"]).intent is ReplyIntent.OUT_OF_OFFICE
    settings = AiSettings(base_url="http://127.0.0.1:9/v1", model=MODEL)
    with pytest.raises(PromptMissing, match=r"classify_reply\.md does not exist"):
        ReplyClassifier(settings, prompts=tmp_path)
