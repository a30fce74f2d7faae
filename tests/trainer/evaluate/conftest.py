"""A scripted OpenAI-compatible server: each request's answer is looked up by its last user message
(or, when the conversation ends with a tool result, by "tool:" + that result), so every metric of
an evaluation, and every turn of an agent's tool loop, is known before it runs.

It streams as the API does (role chunk, text in two pieces, each tool call's name then its
arguments in two pieces, the finish chunk, a usage chunk, `[DONE]`), waits `Answer.delay` seconds
before the first token, answers a request without `stream` as one chat.completion JSON body,
and lists one model at GET /v1/models.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Answer:
    content: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    """(name, arguments): a dict, or the text sent as it is (malformed JSON, say)."""
    prompt_tokens: int = 100
    completion_tokens: int = 20
    delay: float = 0.0
    status: int = 200


class ScriptedServer:
    def __init__(self, answers: dict[str, Answer], model: str = "scripted-model") -> None:
        self.answers = answers
        self.model = model
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model",
                                                             "created": 0, "owned_by": "test"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body})
                answer = server.answers.get(_key(body["messages"]), Answer(content="I do not know."))
                if answer.status != 200:
                    return self._json(answer.status, {"error": {"message": "scripted failure", "type": "server_error"}})
                if not body.get("stream"):
                    time.sleep(answer.delay)
                    return self._json(200, _completion(answer, server.model))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                time.sleep(answer.delay)
                for chunk in _chunks(answer, server.model):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _key(messages: list[dict[str, Any]]) -> str:
    if messages[-1]["role"] == "tool":
        return "tool:" + messages[-1]["content"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def _completion(answer: Answer, model: str) -> dict[str, Any]:
    calls = [{"id": f"call_{index}", "type": "function", "function": {
        "name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}
        for index, (name, arguments) in enumerate(answer.calls)]  # fmt: skip
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls" if calls else "stop",
                         "message": {"role": "assistant", "content": answer.content, **({"tool_calls": calls} if calls else {})}}],
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens}}  # fmt: skip


def _chunks(answer: Answer, model: str) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if answer.content:
        half = len(answer.content) // 2
        yield chunk({"content": answer.content[:half]})
        yield chunk({"content": answer.content[half:]})
    for index, (name, arguments) in enumerate(answer.calls):
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        yield chunk({"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if answer.calls else "stop")
    yield {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
           "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                     "total_tokens": answer.prompt_tokens + answer.completion_tokens}}


@pytest.fixture
def scripted():
    """`scripted(answers, model=…)` starts a server (stopped after the test)."""
    servers: list[ScriptedServer] = []

    def start(answers: dict[str, dict[str, Any]], model: str = "scripted-model") -> ScriptedServer:
        """`answers`: last user message → the `Answer` fields (content, calls, tokens, delay, status)."""
        server = ScriptedServer({text: Answer(**fields) for text, fields in answers.items()}, model).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
