"""A stand-in for a language model, for trying the AI features offline (the jobs demo uses
it): an OpenAI-compatible `POST /v1/chat/completions` on 127.0.0.1. It checks each request
as an endpoint would (the model's name, a system and a user message, JSON mode) and answers
from a script: the first phrase found in the user message names the answer, a JSON object or
text that is not JSON (a model that ignores JSON mode, to show the fallback). Any other
message gets `{"intent": "unclear"}`. Token counts are the words of the request and of the
answer, so the usage a caller records is not zero. It decides nothing: a real model does.

    with LocalModel({"pricing": {"intent": "interested"}}) as model:
        ...  # OUTBOUND_AI__MODEL=local-stand-in OUTBOUND_AI__BASE_URL=<model.base_url>
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from examples.served_in_a_thread import ServedInAThread

MODEL = "local-stand-in"
Answer = dict[str, Any] | str


class LocalModel(ServedInAThread):
    _thread_name = "local-model"

    def __init__(self, script: dict[str, Answer], model: str = MODEL) -> None:
        self.script = script
        self.model = model
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    request = None
                status, body = outer.respond(self.path, request)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the caller logs each call (model, tokens, latency)."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def respond(self, path: str, request: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request, refusing what an endpoint would refuse."""
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, _error(f"no route {path}")
        problems = _problems(request, self.model)
        if problems:
            return 400, _error("bad request: " + "; ".join(problems))
        self.calls += 1
        user = request["messages"][1]["content"]
        answer = next((answer for phrase, answer in self.script.items() if phrase in user), {"intent": "unclear"})
        content = answer if isinstance(answer, str) else json.dumps(answer)
        prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in request["messages"])
        completion_tokens = len(content.split())
        return 200, {
            "id": f"chatcmpl-local-{self.calls}",
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _problems(request: Any, model: str) -> list[str]:
    if not isinstance(request, dict):
        return ["the body is not a JSON object"]
    problems = []
    if request.get("model") != model:
        problems.append(f"unknown model {request.get('model')!r} (this server has {model!r})")
    messages = request.get("messages")
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages] if isinstance(messages, list) else None
    if roles != ["system", "user"]:
        problems.append("expected a system and a user message")
    if request.get("response_format") != {"type": "json_object"}:
        problems.append("expected JSON mode (response_format json_object)")
    return problems


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}
