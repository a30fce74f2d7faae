"""The proxy's ASGI app: pass every request through to the model API, record the model calls.

A POST whose path a codec claims (`integrations.codec_for`) is recorded with a `CallRecorder`, the
same object the httpx transport wrapper drives in an agent's process; everything else goes through
untouched and unrecorded. Bodies are passed back chunk by chunk as they arrive, exactly as the
upstream sent them (compressed ones included), and the recorder sees each chunk on the way through.

The client's own `Authorization` / `x-api-key` headers are forwarded upstream; the recorder never
sees headers, so they cannot reach the store or a log.

Faults the client sees, each in the API's own error shape: a body that is not a JSON object on a
recorded path → 400 (nothing sent upstream); upstream unreachable → 502; upstream time-out → 504.
Upstream errors (4xx, 5xx) are passed back unchanged. A body that breaks mid-way is ended cleanly
for the client and recorded as failed; a client that disconnects closes the upstream request and
the call is recorded as incomplete.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import integrations
from agent_tracer import fastjson
from agent_tracer import runtime as runtime_module
from agent_tracer.capture import new_recorder, start_response
from agent_tracer.decode import COMPLETE, FAILED, INCOMPLETE
from agent_tracer.recorder import CallRecorder
from integrations.anthropic_messages import AnthropicMessagesCodec

if TYPE_CHECKING:
    from agent_tracer.canonical import Codec
    from agent_tracer.runtime import Runtime

logger = logging.getLogger("agent_tracer.proxy")

DEFAULT_UPSTREAMS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}
"""API name → base URL the request path is appended to."""

DEFAULT_TIMEOUT_S = 600.0
"""How long the upstream may take to answer, and between two chunks of a body."""

CONNECT_TIMEOUT_S = 10.0

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length"}
"""Request headers the proxy sets itself (httpx: host, content-length) or that are per hop."""
_NOT_PASSED_BACK = _HOP_BY_HOP | {"content-length"}
"""Response headers the proxy's server sets itself: the body goes back chunked, so that a body
that breaks half-way can still be ended cleanly for the client."""


def upstream_url(base: str, path: str, query: str) -> str:
    """The base URL plus the request path and query. A base that already ends in the path's
    first segments (`http://vllm:8000/v1` and `/v1/chat/completions`) is not doubled."""
    base = base.rstrip("/")
    base_path = urlsplit(base).path
    if base_path and (path == base_path or path.startswith(base_path + "/")):
        base = base[: len(base) - len(base_path)]
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def api_for(path: str, codec: Codec | None) -> str:
    """"anthropic" for the Messages API (and its sub-paths: count_tokens, batches), else "openai"."""
    if isinstance(codec, AnthropicMessagesCodec) or path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    return "openai"


def error_response(api: str, status: int, message: str, code: str) -> JSONResponse:
    """An error the proxy itself answers, in the shape of `api`'s own errors."""
    if api == "anthropic":
        kind = {400: "invalid_request_error", 504: "timeout_error"}.get(status, "api_error")
        return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status
    )


class _ClientGone(Exception):
    """The client disconnected before the upstream answered."""


class _PassThrough(StreamingResponse):
    """A streamed upstream body; whatever ends the response (the body's end, a client that went
    away, a cancelled task) closes the body iterator, which closes the upstream response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


class Proxy:
    """The state behind one app: upstream base URLs, the runtime that records, the shared client."""

    def __init__(self, upstreams: dict[str, str], runtime: Runtime, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        unknown = set(upstreams) - set(DEFAULT_UPSTREAMS)
        if unknown:
            raise ValueError(f"unknown upstream(s): {', '.join(sorted(unknown))} (known: openai, anthropic)")
        self.upstreams = {**DEFAULT_UPSTREAMS, **upstreams}
        self.runtime = runtime
        self.timeout = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_S, timeout))
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )
        try:
            yield
        finally:
            await self.client.aclose()
            self.client = None
            if runtime_module.current() is self.runtime:  # write what is queued before the process ends
                await anyio.to_thread.run_sync(runtime_module.stop)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        codec = integrations.codec_for(path) if request.method == "POST" else None
        api = api_for(path, codec)
        url = upstream_url(self.upstreams[api], path, request.url.query)
        body = await request.body()
        recorder: CallRecorder | None = None
        if codec is not None:
            try:
                parsed = fastjson.loads(body)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return error_response(api, 400, "The request body is not a JSON object.", "invalid_json")
            recorder = new_recorder(self.runtime, codec, url, body, source="proxy")

        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _NOT_FORWARDED]
        upstream_request = httpx.Request(request.method, url, headers=headers, content=body)
        try:
            upstream = await self._send(request, upstream_request)
        except _ClientGone:
            if recorder is not None:
                recorder.finish_safely(INCOMPLETE, "the client disconnected before the answer")
            return Response(status_code=499)  # nobody reads it
        except httpx.TimeoutException as exc:
            return self._fault(recorder, exc, api, 504, f"The upstream API did not answer in time ({_reason(exc)}).",
                               "upstream_timeout")
        except httpx.HTTPError as exc:
            return self._fault(recorder, exc, api, 502, f"The upstream API is unreachable ({_reason(exc)}).",
                               "upstream_unreachable")
        except BaseException as exc:  # cancelled: the server is stopping
            if recorder is not None:
                recorder.finish_safely(FAILED, exc)
            raise

        if recorder is not None:
            start_response(self.runtime, recorder, httpx, upstream.status_code, upstream.headers)
        response = _PassThrough(_relay(upstream, recorder), status_code=upstream.status_code)
        response.raw_headers = [
            (k, v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in _NOT_PASSED_BACK
        ]
        return response

    async def _send(self, request: Request, upstream_request: httpx.Request) -> httpx.Response:
        """Send upstream and wait for its headers; a client that disconnects meanwhile cancels the
        upstream request (raises `_ClientGone`)."""
        assert self.client is not None, "the app's lifespan has not started"
        response: httpx.Response | None = None
        failure: BaseException | None = None
        async with anyio.create_task_group() as group:

            async def watch_client() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_client)
            try:
                response = await self.client.send(upstream_request, stream=True)
            except Exception as exc:
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if response is None:
            raise _ClientGone
        return response

    @staticmethod
    def _fault(recorder: CallRecorder | None, exc: Exception, api: str, status: int, message: str,
               code: str) -> Response:
        if recorder is not None:
            recorder.finish_safely(FAILED, exc)
        return error_response(api, status, message, code)


async def _relay(upstream: httpx.Response, recorder: CallRecorder | None) -> AsyncIterator[bytes]:
    """The upstream body as it arrives, raw; how it ends is how the recorded call ends."""
    ending: str = INCOMPLETE
    error: BaseException | str | None = "the client disconnected"
    try:
        async for chunk in upstream.aiter_raw():
            if recorder is not None:
                recorder.feed_safely(chunk)
            yield chunk
        ending, error = COMPLETE, None
    except httpx.HTTPError as exc:  # the upstream body broke: end it cleanly for the client
        ending, error = FAILED, exc
        logger.warning("agent-tracer proxy: upstream body broke (%s)", _reason(exc))
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
        if recorder is not None:
            recorder.finish_safely(ending, error)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def create_app(
    upstreams: dict[str, str] | None,
    runtime: Runtime,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Starlette:
    """The proxy app. `upstreams` maps "openai" / "anthropic" to base URLs (the defaults for the
    ones not given). When `runtime` is the process's active one, the app's shutdown stops it (so
    everything recorded is written before the process ends)."""
    proxy = Proxy(upstreams or {}, runtime, timeout)
    app = Starlette(
        routes=[
            Route("/healthz", proxy.healthz, methods=["GET"]),
            Route("/{path:path}", proxy.handle, methods=METHODS),
        ],
        lifespan=proxy.lifespan,
    )
    app.state.proxy = proxy
    return app


__all__ = ["DEFAULT_UPSTREAMS", "Proxy", "create_app", "error_response", "upstream_url"]
