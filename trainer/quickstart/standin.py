"""A loopback stand-in for the frontier model, for the swap when offline: it answers each BFCL
question it was given with that question's ground-truth calls, which is what a frontier model that
gets them right would send. Named as such everywhere (`STANDIN_MODEL`), so nobody takes its
perfect answers for a real model's.

    POST /v1/chat/completions   plain answers only (a stream is refused with 400): the ground truth
                                of the last user message, or a text saying it does not know it
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations import openai_chat
from trainer.serve.app import error_response

STANDIN_MODEL = "frontier-stand-in"
UNKNOWN = "The stand-in frontier knows only the quickstart's BFCL questions."


def create_standin(answers: Iterable[tuple[str, dict[str, Any]]]) -> Starlette:
    """The app answering each (question, ground-truth assistant message) pair's question."""
    known = dict(answers)

    async def chat(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            messages = body["messages"]
        except (ValueError, TypeError, KeyError):
            return error_response("The body must be a JSON object with messages.", 400, "messages")
        if body.get("stream"):
            return error_response("The stand-in frontier answers without streaming only.", 400, "stream")
        question = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        answer = known.get(question) if isinstance(question, str) else None
        calls = (answer or {}).get("tool_calls") or []
        content = None if calls else (answer or {}).get("content") or UNKNOWN
        return JSONResponse(
            openai_chat.completion(
                openai_chat.completion_id(),
                int(time.time()),
                STANDIN_MODEL,
                content,
                calls,
                "tool_calls" if calls else "stop",
                openai_chat.usage(0, 0),
            )
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
