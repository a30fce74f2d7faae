"""The HTTP side: an ASGI app (Starlette) answering OpenAI's Chat Completions from an `Engine`.

    POST /v1/chat/completions   plain, or `"stream": true` (server-sent events ending `data: [DONE]`)
    GET  /v1/models             the one model served, under its served name
    GET  /healthz               ok, with the queue's state and the engine's counts

Faults, each in OpenAI's error shape `{"error": {"message", "type", "param", "code"}}`: a request
the server will not run → 400; the queue full → 503 with Retry-After; the model failing → 500 (in
a stream: an error event, as OpenAI sends one). A client that goes away has its request cancelled.

For a benchmark or a test, build and run it in-process:

    engine = Engine.load("runs/merged", max_batch=8)
    with running(create_app(engine, "tuned"), port=0) as base_url:   # http://127.0.0.1:PORT/v1
        openai.OpenAI(base_url=base_url, api_key="-").chat.completions.create(model="tuned", ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_tracer.messages import error_body
from integrations import openai_chat, sse
from trainer.serve import protocol
from trainer.serve.engine import Engine, Generation, GenerationFailed, QueueFull, Sampling
from trainer.serve.protocol import ChatRequest, RequestError
from trainer.serve.reply import Assembler, Parts

RETRY_AFTER_S = 1
GRACEFUL_SHUTDOWN_S = 10
"""How long a stop waits for answers in flight before cutting them (their generation is cancelled)."""


class ChatApi:
    """The routes' handlers, over one engine and the name it is served under."""

    def __init__(self, engine: Engine, model_name: str) -> None:
        self.engine = engine
        self.model_name = model_name
        self.created = int(time.time())

    async def chat(self, request: Request) -> Response:
        try:
            chat = protocol.parse_request(await request.body())
            prompt = self._prompt(chat)
            generation = self.engine.submit(prompt, self._sampling(chat, len(prompt)))
        except RequestError as exc:
            return error_response(exc.message, 400, exc.param, exc.code)
        except QueueFull as exc:
            return error_response(
                f"The server is busy ({exc}): retry shortly.",
                503,
                code="queue_full",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        answer = _Answer(self.model_name, chat, generation)
        if chat.stream:
            return StreamingResponse(
                answer.events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        return await answer.whole(request)

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "agent-tracer"}
                ],
            }
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": self.model_name,
                "waiting": self.engine.waiting,
                "running": self.engine.running,
                **asdict(self.engine.stats),
                "guided_tool_calls": self.engine.guidance is not None,
                "unguided": self.engine.guidance.unguided if self.engine.guidance else 0,
            }
        )

    def _prompt(self, chat: ChatRequest) -> list[int]:
        from jinja2 import TemplateError

        try:
            prompt = self.engine.render(chat.messages, chat.tools)
        except TemplateError as exc:
            raise RequestError(
                f"The model's chat template cannot render these messages: {exc}.", "messages", "invalid_value"
            ) from None
        context = self.engine.context_length
        if len(prompt) >= context:
            raise RequestError(
                f"The messages take {len(prompt)} tokens, but this model's context is {context} tokens: shorten them.",
                "messages",
                "context_length_exceeded",
            )
        return prompt

    def _sampling(self, chat: ChatRequest, prompt_tokens: int) -> Sampling:
        room = self.engine.context_length - prompt_tokens
        if chat.max_tokens is not None and chat.max_tokens > room:
            raise RequestError(
                f"max_tokens is {chat.max_tokens}, but after the {prompt_tokens} tokens of the "
                f"messages this model's context of {self.engine.context_length} tokens has room for "
                f"{room}.",
                "max_tokens",
                "context_length_exceeded",
            )
        callable_tools = [t for t in chat.tools if chat.named_tool in (None, t["function"].get("name"))]
        return Sampling(
            max_tokens=chat.max_tokens or min(self.engine.default_max_tokens, room),
            temperature=chat.temperature,
            top_p=chat.top_p,
            stop=chat.stop,
            seed=chat.seed,
            tool_grammar=self.engine.tool_grammar(callable_tools, chat.call_required),
        )


class _Answer:
    """One request's answer on its way out, whole or as a stream."""

    def __init__(self, model_name: str, chat: ChatRequest, generation: Generation) -> None:
        self.model = model_name
        self.chat = chat
        self.generation = generation
        self.id = openai_chat.completion_id()
        self.created = int(time.time())
        self.assembler = Assembler(parse_tools=bool(chat.tools))

    async def whole(self, request: Request) -> Response:
        watcher = asyncio.create_task(_cancel_on_disconnect(request, self.generation))
        try:
            text = await self.generation.text()
        except GenerationFailed as exc:
            return error_response(str(exc), 500, code="generation_failed")
        finally:
            watcher.cancel()
        parts = self.assembler.feed(text)
        rest = self.assembler.finish()
        content, calls = parts.text + rest.text, parts.calls + rest.calls
        body = openai_chat.completion(
            self.id,
            self.created,
            self.model,
            content or (None if calls else ""),
            calls,
            self._finish_reason(),
            self._usage(),
        )
        return JSONResponse(body)

    async def events(self) -> AsyncIterator[bytes]:
        """The stream's events; the client going away closes this generator (Starlette), which
        cancels the generation."""
        with_usage = self.chat.include_usage
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            async for delta in self.generation:
                for event in self._deltas(self.assembler.feed(delta)):
                    yield event
            for event in self._deltas(self.assembler.finish()):
                yield event
        except GenerationFailed as exc:
            yield sse.encode(error_body("openai", 500, str(exc), "generation_failed"))
            return
        finally:
            self.generation.cancel()  # a no-op for a generation that has ended
        yield sse.encode(openai_chat.chunk(self.id, self.created, self.model, {}, self._finish_reason(), with_usage))
        if with_usage:
            yield sse.encode(openai_chat.usage_chunk(self.id, self.created, self.model, self._usage()))
        yield openai_chat.STREAM_END

    def _deltas(self, parts: Parts) -> Iterator[bytes]:
        if parts.text:
            yield self._chunk({"content": parts.text})
        if parts.calls:
            yield self._chunk({"tool_calls": parts.calls})

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return sse.encode(
            openai_chat.chunk(self.id, self.created, self.model, delta, with_usage=self.chat.include_usage)
        )

    def _finish_reason(self) -> str:
        """ "length" when the limit cut the answer, else "tool_calls" when it has calls, else "stop"."""
        reason = self.generation.finish_reason or "stop"
        return "tool_calls" if self.assembler.calls and reason != "length" else reason

    def _usage(self) -> dict[str, int]:
        return openai_chat.usage(len(self.generation.prompt_ids), self.generation.completion_tokens)


async def _cancel_on_disconnect(request: Request, generation: Generation) -> None:
    """Wait for the client to hang up (the body has been read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    generation.cancel()


def error_response(
    message: str, status: int, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body("openai", status, message, code, param), status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(
        f"{request.method} {request.url.path}: {exc.detail}.",
        exc.status_code,
        code="not_found" if exc.status_code == 404 else None,
    )


def create_app(engine: Engine, model_name: str) -> Starlette:
    """The app serving `engine` as `model_name`; its lifespan starts and stops the engine's worker."""
    api = ChatApi(engine, model_name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.close)

    routes = [
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/models", api.models),
        Route("/healthz", api.health),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve until SIGINT / SIGTERM."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


@contextlib.contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a thread while the block runs (port 0: any free port); yields the base
    URL clients take (`http://HOST:PORT/v1`)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="serve-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
