"""An OpenAI-compatible chat-completions server for tests (FastAPI): it checks each request
as a real endpoint would (bearer key, model, a system and a user message, JSON mode) and
answers from a script keyed by a phrase of the user message — a JSON verdict, malformed
JSON, an error status, or silence past the client's timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.jobs_support import serving

MODEL = "test-model-1"
KEY = "sk-test-abc"


@dataclass
class FakeModel:
    base_url: str = ""
    script: dict[str, Any] = field(default_factory=dict)  # phrase → dict (JSON answer) | str (raw) | int | "hang"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer_for(self, text: str) -> Any:
        for phrase, answer in self.script.items():
            if phrase in text:
                return answer
        return {"intent": "unclear"}


@contextmanager
def fake_model() -> Iterator[FakeModel]:
    app = FastAPI()
    state = FakeModel()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        problems = []
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if body.get("model") != MODEL:
            problems.append("model")
        roles = [message.get("role") for message in body.get("messages", [])]
        if roles != ["system", "user"]:
            problems.append("messages")
        if body.get("response_format") != {"type": "json_object"}:
            problems.append("response_format")
        if problems:
            return JSONResponse({"error": {"message": f"bad request: {problems}"}}, status_code=400)
        answer = state.answer_for(body["messages"][1]["content"])
        if answer == "hang":
            await asyncio.sleep(3)
            answer = {"intent": "unclear"}
        if isinstance(answer, int):
            return JSONResponse({"error": {"message": "upstream trouble"}}, status_code=answer)
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            }
        )

    with serving(app) as base:
        state.base_url = f"{base}/v1"
        yield state
