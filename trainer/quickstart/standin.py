"""A loopback stand-in for the frontier model, for the swap when offline: it answers each BFCL
question it was given with that question's ground-truth calls, which is what a frontier model that
gets them right would send. Named as such everywhere (`STANDIN_MODEL`), so nobody takes its
perfect answers for a real model's.

    POST /v1/chat/completions   plain answers only (a stream is refused with 400): the ground truth
                                of the last user message, or a text saying it does not know it

It runs on the same loopback server and writes the same Chat Completions answers as the test fake
upstream (`agent_tracer.loopback`, `integrations.openai_chat`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from agent_tracer.loopback import LoopbackHandler, LoopbackServer
from agent_tracer.messages import error_body
from integrations import openai_chat

STANDIN_MODEL = "frontier-stand-in"
UNKNOWN = "The stand-in frontier knows only the quickstart's BFCL questions."


class _Handler(LoopbackHandler):
    def answer(self) -> None:
        known: dict[str, dict[str, Any]] = self.owner.known
        body = self.read_body()
        if (self.command, self.path.split("?", 1)[0]) != ("POST", "/v1/chat/completions"):
            return self._error(f"{self.command} {self.path}: Not Found.", 404, code="not_found")
        try:
            request = json.loads(body)
            messages = request["messages"]
        except (ValueError, TypeError, KeyError):
            return self._error("The body must be a JSON object with messages.", 400, "messages")
        if request.get("stream"):
            return self._error("The stand-in frontier answers without streaming only.", 400, "stream")
        question = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        answer = known.get(question) if isinstance(question, str) else None
        calls = (answer or {}).get("tool_calls") or []
        content = None if calls else (answer or {}).get("content") or UNKNOWN
        finish_reason = "tool_calls" if calls else "stop"
        usage = openai_chat.usage(0, 0)
        ident = openai_chat.completion_id()
        self.send_json(
            200, openai_chat.completion(ident, int(time.time()), STANDIN_MODEL, content, calls, finish_reason, usage)
        )

    def _error(self, message: str, status: int, param: str | None = None, code: str | None = None) -> None:
        self.send_json(status, error_body("openai", status, message, code, param))


class StandinFrontier(LoopbackServer):
    """Serves the answers to each (question, ground-truth assistant message) pair's question while
    started (`with StandinFrontier(pairs) as standin: standin.openai_base_url`)."""

    handler = _Handler

    def __init__(self, answers: Iterable[tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self.known = dict(answers)
