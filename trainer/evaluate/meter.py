"""Counting what an agent's own code asks of a model: an httpx transport that tallies requests,
answers and tokens, for one `openai.AsyncOpenAI` client handed to the agent.

Why a transport and not a wrapper around the SDK: the agent gets a real, untouched client (every
SDK call, streaming helper and raw response works as usual) and the count is right whatever the
agent calls (chat completions, responses, streamed or not), retries included, as
`agent_tracer.capture` does for recording. It is simpler than capture: no spans, no codec; the
body of each answer is read as it passes and its `usage` taken at the end.

- a **call** is a POST the client sent (a retry is another call; GET /models is none);
- a **turn** is a call answered with a 2xx status: a model answer the agent got back;
- tokens are the answers' `usage` (chat's prompt/completion tokens, the Responses API's
  input/output tokens, in a JSON body or the last SSE event carrying them), summed; None until an
  answer reported some (a stream asked without `stream_options.include_usage` reports none).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

SSE_DATA = b"data:"


@dataclass
class Meter:
    calls: int = 0
    turns: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
        tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(tokens_in, int):
            self.input_tokens = (self.input_tokens or 0) + tokens_in
        if isinstance(tokens_out, int):
            self.output_tokens = (self.output_tokens or 0) + tokens_out

    def read_body(self, body: bytes, content_type: str) -> None:
        """Take the usage out of a whole answer body, JSON or SSE."""
        if "event-stream" not in content_type:
            self.add_usage(_usage(_json(body)))
            return
        usage = None
        for line in body.splitlines():
            if line.startswith(SSE_DATA):
                usage = _usage(_json(line[len(SSE_DATA) :])) or usage
        self.add_usage(usage)


def metered_client(url: str, api_key: str, timeout: float, retries: int) -> tuple[Any, Meter]:
    """A real `openai.AsyncOpenAI` for `url` whose every request is counted in the `Meter` returned."""
    import openai

    module = _http_module(openai.DefaultAsyncHttpxClient)
    meter = Meter()
    transport = _transport_type(module)(module.AsyncHTTPTransport(), meter)
    http_client = openai.DefaultAsyncHttpxClient(transport=transport)
    client = openai.AsyncOpenAI(
        base_url=url, api_key=api_key, timeout=timeout, max_retries=retries, http_client=http_client
    )
    return client, meter


def _http_module(client_class: type) -> ModuleType:
    """httpx or httpx2: whichever the installed SDK builds its clients on."""
    base = next(cls for cls in client_class.__mro__ if cls.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.split(".")[0])


@functools.cache
def _transport_type(module: ModuleType) -> type:
    class MeteredTransport(module.AsyncBaseTransport):  # type: ignore[name-defined]  # this httpx module's base
        def __init__(self, inner: Any, meter: Meter) -> None:
            self.inner, self.meter = inner, meter

        async def handle_async_request(self, request: Any) -> Any:
            counted = request.method == "POST"
            self.meter.calls += counted
            response = await self.inner.handle_async_request(request)
            if counted and response.status_code < 300:
                self.meter.turns += 1
                response.stream = _body_reader(module)(response.stream, self.meter, response.headers)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    return MeteredTransport


@functools.cache
def _body_reader(module: ModuleType) -> type:
    class BodyReader(module.AsyncByteStream):  # type: ignore[name-defined]  # this httpx module's base
        """The answer's bytes passed on unchanged, kept, and read for usage when it ends."""

        def __init__(self, inner: Any, meter: Meter, headers: Any) -> None:
            from agent_tracer.capture import content_decoder

            self.inner, self.meter = inner, meter
            self.chunks: list[bytes] | None = []
            self.content_type = headers.get("content-type", "")
            try:
                self.decode = content_decoder(module, headers.get("content-encoding", ""))
            except ValueError:  # an encoding httpx cannot decode: the tokens stay unknown
                self.decode, self.chunks = None, None
            self.done = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.inner:
                if self.chunks is not None:
                    self.chunks.append(self.decode(chunk) if self.decode else chunk)
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()
            if not self.done and self.chunks is not None:
                self.done = True
                self.meter.read_body(b"".join(self.chunks), self.content_type)

    return BodyReader


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _usage(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if value.get("usage"):
        return value["usage"]
    response = value.get("response")  # the Responses API's response.completed event
    return response.get("usage") if isinstance(response, dict) else None
