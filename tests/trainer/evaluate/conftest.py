"""Scripted OpenAI-compatible servers (the fake upstream, `FakeUpstream(reply=…)`): each request's
answer is looked up by its last user message (or, when the conversation ends with a tool result,
by "tool:" + that result), so every metric of an evaluation, and every turn of an agent's tool
loop, is known before it runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from agent_tracer.loopback import free_port
from agent_tracer.testing import FakeUpstream, Reply

UNKNOWN = "I do not know."


def _key(messages: list[dict[str, Any]]) -> str:
    if messages[-1]["role"] == "tool":
        return "tool:" + messages[-1]["content"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


@pytest.fixture
def scripted():
    """`scripted(answers, model=…)` starts a server (stopped after the test). `answers`: last user
    message → the `Reply` fields (content, calls, prompt_tokens, completion_tokens, delay, status);
    tokens are 100 in and 20 out unless given, and the answer names `model`, the one model listed."""
    with contextlib.ExitStack() as servers:

        def start(answers: dict[str, dict[str, Any]], model: str = "scripted-model") -> FakeUpstream:
            replies = {
                text: Reply(**{"prompt_tokens": 100, "completion_tokens": 20, "model": model, **fields})
                for text, fields in answers.items()
            }
            unknown = Reply(content=UNKNOWN, prompt_tokens=100, completion_tokens=20, model=model)
            reply = lambda body: replies.get(_key(body["messages"]), unknown)  # noqa: E731
            return servers.enter_context(FakeUpstream(reply=reply, models=[model]))

        yield start


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"
