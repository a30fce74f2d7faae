"""The proxy's ASGI app: pass every request through to the model API, record the model calls.

A POST whose path a codec claims (`integrations.codec_for`) is recorded with a `CallRecorder`, the
same object the httpx transport wrapper drives in an agent's process; everything else streams
through untouched and unrecorded. Bodies are passed back chunk by chunk as they arrive, exactly as
the upstream sent them (compressed ones included), and the recorder sees each chunk on the way.

The forwarding path is plain ASGI (`Proxy.forward`): it is the hot path, and one task per request
watches for the client leaving, from the moment the request body is in until the answer's last
byte, where a framework would add its own per-response listener. The proxy's own endpoints
(`/healthz`, `/metrics`, `/v1/traces` for OTLP exports, `/agent-tracer/v1/...`) and the lifespan
are a small Starlette app; the
web UI (`agent_tracer.ui`), when served, answers under `/agent-tracer/ui/`.

Credentials: the client's own `Authorization` / `x-api-key` headers are forwarded upstream, or,
with `--require-key`, checked and replaced by the proxy's upstream key (`auth.py`). The recorder
never sees headers, so no key can reach the store or a log.

Faults the client sees, each in the API's own error shape: a missing or wrong proxy key → 401; a
model-call body over the size limit → 413, or not a JSON object → 400 (nothing sent upstream);
upstream unreachable → 502; upstream time-out → 504. Upstream errors (4xx, 5xx) are passed back
unchanged. A body that breaks mid-way is ended cleanly for the client and recorded as failed; a
client that disconnects closes the upstream request and the call is recorded as incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from yarl import URL

import integrations
from agent_tracer import fastjson
from agent_tracer import runtime as runtime_module
from agent_tracer.capture import new_recorder, start_response
from agent_tracer.decode import COMPLETE, FAILED, INCOMPLETE
from agent_tracer.errors import ConfigError, first_line
from agent_tracer.feedback import feedback_row
from agent_tracer.messages import error_body
from agent_tracer.otlp.receiver import Receiver
from agent_tracer.proxy import routes as routes_module
from agent_tracer.proxy.auth import CREDENTIAL_HEADERS, KeyCheck
from agent_tracer.proxy.config import DEFAULT_UPSTREAMS, UI_PATH, ProxyConfig
from agent_tracer.proxy.metrics import Metrics
from agent_tracer.proxy.router import Router
from agent_tracer.proxy.routes import RoutesFile
from agent_tracer.proxy.runs import Run, run_from_headers
from agent_tracer.proxy.wire import NOT_FORWARDED, TRACE_ID_RESPONSE_HEADER, passed_back, reason_text, upstream_url
from agent_tracer.recorder import CallRecorder
from agent_tracer.records import FeedbackPayload
from agent_tracer.run_ids import trace_id_for
from integrations.anthropic_messages import AnthropicMessagesCodec

if TYPE_CHECKING:
    from agent_tracer.canonical import Codec
    from agent_tracer.runtime import Runtime

logger = logging.getLogger("agent_tracer.proxy")

CONNECT_TIMEOUT_S = 10.0
METRICS_SAVE_INTERVAL_S = 1.0
RETENTION_FIRST_S = 1.0
"""--retention's first prune, this long after the start (the store is open, the first calls in)."""
RETENTION_INTERVAL_S = 3600.0
CLIENT_GONE = 499
"""The status counted for a request whose client left before its answer (nginx's convention)."""

OTLP_PATH = "/v1/traces"
"""OTLP/HTTP trace exports (`agent_tracer.otlp`), taken into the proxy's store, never forwarded."""
OTLP_LOGS_PATH = "/v1/logs"
"""OTLP/HTTP log exports: the GenAI message events of the spans sent to `OTLP_PATH`."""
OWN_PATHS = ("/healthz", "/metrics", OTLP_PATH, OTLP_LOGS_PATH)
OWN_PREFIX = "/agent-tracer/"
FEEDBACK_FIELDS = frozenset({"outcome", "rating", "comment", "label", "correction"})


def api_for(path: str, codec: Codec | None) -> str:
    """ "anthropic" for the Messages API (and its sub-paths: count_tokens, batches), else "openai"."""
    if isinstance(codec, AnthropicMessagesCodec) or path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    return "openai"


def error_response(api: str, status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_body(api, status, message, code), status_code=status)


class _ClientGone(Exception):
    """The client disconnected before its request body was in."""


class _TooLarge(Exception):
    """The request body is over the limit."""


class Exchange:
    """One forwarded request: watches for the client leaving until the answer is finished, and
    then cancels the task forwarding it."""

    __slots__ = ("receive", "task", "watcher", "client_gone", "finished")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        task = asyncio.current_task()
        assert task is not None  # made inside the task that serves the request
        self.task = task
        self.watcher: asyncio.Task[None] | None = None
        self.client_gone = False
        self.finished = False

    def watch(self) -> None:
        """Start watching; called once the request body has been read (the watcher then owns
        `receive`)."""
        if self.watcher is None and not self.finished:
            self.watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if not self.finished:  # after the answer's last byte the server reports a disconnect too
            self.client_gone = True
            self.task.cancel()

    def finish(self) -> None:
        self.finished = True
        if self.watcher is not None:
            self.watcher.cancel()

    def cancelled(self, recorder: CallRecorder | None) -> None:
        """Record the call this exchange was cut off in: the client left, or the proxy is stopping."""
        if recorder is not None:
            if self.client_gone:
                recorder.finish_safely(INCOMPLETE, "the client disconnected")
            else:
                recorder.finish_safely(FAILED, "the proxy stopped")


class Proxy:
    """The state behind one app: settings, the runtime that records, the upstream client."""

    def __init__(
        self, config: ProxyConfig, runtime: Runtime, keys: KeyCheck | None = None, routes: RoutesFile | None = None
    ) -> None:
        self.config = config
        self.upstreams = config.upstreams
        self.runtime = runtime
        self.keys = keys
        self.max_body = config.max_request_bytes
        self.metrics = Metrics(runtime.stats.snapshot, config.metrics_dir, runtime.health)
        self.upstream = Upstream(config, runtime, self.metrics)
        self.router = Router(routes, self.upstream, runtime, self.metrics, keys) if routes is not None else None
        self.otlp = Receiver(runtime.config)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.upstream.start()
        loop = asyncio.get_running_loop()
        saver = loop.create_task(self._save_metrics()) if self.config.metrics_dir else None
        watcher = loop.create_task(self.router.routes.watch()) if self.router is not None else None
        pruner = loop.create_task(self._prune_now_and_then()) if self.config.retention else None
        try:
            yield
        finally:
            for task in (saver, watcher, pruner):
                if task is not None:
                    task.cancel()
            if self.router is not None:
                await self.router.stop()
            await self.upstream.close()
            if runtime_module.current() is self.runtime:  # write what is queued before the process ends
                await anyio.to_thread.run_sync(runtime_module.stop)
            self.otlp.close()
            self.metrics.save()

    async def _save_metrics(self) -> None:
        while True:
            await asyncio.sleep(METRICS_SAVE_INTERVAL_S)
            try:
                self.metrics.save()
            except OSError as exc:
                logger.warning("agent-tracer proxy: cannot share metrics with the other workers (%s)", exc)

    async def _prune_now_and_then(self) -> None:
        """--retention: prune soon after start, then every `RETENTION_INTERVAL_S`, in a thread
        (the store's calls block). With several workers, one prunes at a time (`retention.lock`)."""
        await asyncio.sleep(RETENTION_FIRST_S)
        while True:
            try:
                await anyio.to_thread.run_sync(self._prune_once)
            except Exception as exc:  # a store that is down now: the next round tries again
                logger.warning("agent-tracer proxy: retention could not prune this time (%s)", first_line(exc))
            await asyncio.sleep(RETENTION_INTERVAL_S)

    def _prune_once(self) -> None:
        from agent_tracer.store.database import create_engine, parse_url
        from agent_tracer.store.retention import prune

        cutoff = self.config.retention_cutoff()
        assert cutoff is not None  # only scheduled with --retention
        with _held_alone(self.config.metrics_dir, "retention.lock") as alone:
            if not alone:
                return
            engine = create_engine(parse_url(self.runtime.config.db))
            try:
                pruned = prune(
                    engine,
                    cutoff,
                    keep_rated=self.config.retention_keep_rated,
                    keep_tags=self.config.retention_keep_tags,
                )
            finally:
                engine.dispose()
        self.metrics.pruned(pruned.runs)
        if pruned.runs:
            logger.warning(
                "agent-tracer proxy: retention deleted %d runs that started before %s UTC (%d model calls)",
                pruned.runs,
                cutoff.isoformat(timespec="seconds"),
                pruned.rows["llm_calls"],
            )

    # -- the proxy's own endpoints

    async def healthz(self, request: Request) -> Response:
        """200 while the proxy answers (calls pass even when the store is down: they are spilled),
        with "degraded" and the figures when the store refuses writes or calls wait to be loaded back."""
        health = self.runtime.health()
        degraded = health["store"] != "ok" or health["spill_bytes"] > 0
        return JSONResponse({"status": "degraded" if degraded else "ok", **health})

    async def prometheus(self, request: Request) -> Response:
        text = self.metrics.render() + self.otlp.metrics()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def otlp_traces(self, request: Request) -> Response:
        """`POST /v1/traces`: OTLP trace exports into the store (`agent_tracer.otlp.receiver`); with
        `--require-key`, the exporter sends a proxy key as `Authorization: Bearer KEY`."""
        return await self._otlp(request, self.otlp.endpoint)

    async def otlp_logs(self, request: Request) -> Response:
        """`POST /v1/logs`: the GenAI message events of those spans, keyed as they are."""
        return await self._otlp(request, self.otlp.logs_endpoint)

    async def _otlp(self, request: Request, endpoint: Callable[[Request], Awaitable[Response]]) -> Response:
        if self.keys is not None and not self.keys.allows(request.headers):
            return PlainTextResponse("A valid proxy key is required.", 401, {"www-authenticate": "Bearer"})
        return await endpoint(request)

    async def feedback(self, request: Request) -> Response:
        """`POST /agent-tracer/v1/traces/{trace_id}/feedback` with {outcome, rating, comment, label,
        correction}:
        queued for the store like every recorded call (202), or 400 with the reason."""
        if self.keys is not None and not self.keys.allows(request.headers):
            return error_response("openai", 401, "A valid proxy key is required.", "invalid_api_key")
        try:
            data = fastjson.loads(await request.body())
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return error_response(
                "openai",
                400,
                'The body must be a JSON object such as {"outcome": "success", "rating": 5}.',
                "invalid_json",
            )
        unknown = set(data) - FEEDBACK_FIELDS
        if unknown:
            return error_response(
                "openai",
                400,
                f"Unknown field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(FEEDBACK_FIELDS))}.",
                "invalid_feedback",
            )
        try:
            trace_id = trace_id_for(request.path_params["trace_id"])
            row = feedback_row(
                trace_id,
                data.get("outcome"),
                data.get("rating"),
                data.get("comment"),
                data.get("label"),
                source="proxy",
                correction=data.get("correction"),
            )
        except (ValueError, ConfigError) as exc:
            return error_response("openai", 400, str(exc), "invalid_feedback")
        self.runtime.submit(FeedbackPayload(row))
        return JSONResponse({"id": row["id"], "trace_id": trace_id, "status": "accepted"}, status_code=202)

    # -- forwarding

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request; counts it in the metrics however it ends."""
        started = time.perf_counter()
        path = scope["path"]
        codec = integrations.codec_for(path) if scope["method"] == "POST" else None
        api = api_for(path, codec)
        self.metrics.in_flight += 1
        status = CLIENT_GONE
        try:
            status = await self._forward(scope, receive, send, codec, api)
        finally:
            self.metrics.in_flight -= 1
            self.metrics.observe(api, codec is not None, status, time.perf_counter() - started)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, codec: Codec | None, api: str) -> int:
        headers = _headers(scope)
        if self.keys is not None and not self.keys.allows(headers):
            return await _send_error(
                send,
                api,
                401,
                "A valid proxy key is required (Authorization: Bearer KEY or x-api-key: KEY).",
                "invalid_api_key",
            )
        url = upstream_url(self.upstreams[api], scope["path"], scope["query_string"].decode("latin-1"))
        exchange = Exchange(receive)
        recorder: CallRecorder | None = None
        content: bytes | AsyncIterator[bytes] | None
        forwarded = {name: value for name, value in headers.items() if name not in NOT_FORWARDED}
        if codec is not None:
            try:
                content = await _read_body(receive, headers.get("content-length"), self.max_body)
            except _ClientGone:
                return CLIENT_GONE
            except _TooLarge:
                limit = f"{self.config.max_request_mb:g} MiB"
                return await _send_error(
                    send,
                    api,
                    413,
                    f"The request body is over the proxy's limit of {limit} (agent-tracer proxy --max-request-mb).",
                    "request_too_large",
                    close=True,
                )
            try:
                parsed = fastjson.loads(content)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return await _send_error(send, api, 400, "The request body is not a JSON object.", "invalid_json")
            run = run_from_headers(headers)
            exchange.watch()
            route = self.router.route_for(scope["path"], parsed) if self.router is not None else None
            if route is not None:
                return await self._routed(send, exchange, route, parsed, forwarded, run)
            recorder = new_recorder(
                self.runtime, codec, url, content, source="proxy", context=run.context, labels=run.labels
            )
        elif "content-length" in headers or "transfer-encoding" in headers:
            content = _stream_body(exchange)  # starts the watch once the body is through
            if "content-length" in headers:
                forwarded["content-length"] = headers["content-length"]
        else:
            content = None
            exchange.watch()
        if self.keys is not None:
            for name in CREDENTIAL_HEADERS:
                forwarded.pop(name, None)
            forwarded.update(self.keys.upstream_credentials(api))

        try:
            return await self.upstream.relay(send, exchange, scope["method"], url, forwarded, content, recorder, api)
        except asyncio.CancelledError:
            exchange.cancelled(recorder)
            if not exchange.client_gone:  # the server is stopping
                raise
            return CLIENT_GONE
        finally:
            exchange.finish()

    async def _routed(
        self,
        send: Send,
        exchange: Exchange,
        route: routes_module.Route,
        body: dict[str, Any],
        headers: dict[str, str],
        run: Run,
    ) -> int:
        """A request for a routed model name, answered by the router (which records its calls)."""
        assert self.router is not None
        try:
            return await self.router.answer(send, exchange, route, body, headers, run)
        except asyncio.CancelledError:
            if not exchange.client_gone:
                raise
            return CLIENT_GONE
        finally:
            exchange.finish()


class Upstream:
    """The proxy's client to the model APIs, owned by `Proxy` and handed to its router: one pooled
    aiohttp session (open from the app's start to its stop), the environment's HTTP proxy per API,
    and the upstream faults counted in the metrics.

    `request` sends one request and gives back the answer with its body still to read; `relay`
    also passes that answer to the client as it comes, or the API's own error when there is none.
    """

    def __init__(self, config: ProxyConfig, runtime: Runtime, metrics: Metrics) -> None:
        self.timeout_s = config.timeout_s
        self.proxies = {api: env_proxy(url) for api, url in config.upstreams.items()}
        self.runtime = runtime
        self.metrics = metrics
        self.session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self.session = new_session(self.timeout_s)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | AsyncIterator[bytes] | None, api: str
    ) -> Awaitable[aiohttp.ClientResponse]:
        """Send one request to `url` (already encoded), through `api`'s HTTP proxy if any, with no
        redirects followed. Awaited: the answer's status and headers, its body left to read from
        `.content`; `release()` it once read to the end, else `close()` it. Raises
        `aiohttp.ClientError` or `OSError` when no answer comes, `TimeoutError` past the time-outs."""
        assert self.session is not None, "the app's lifespan has not started"
        return self.session.request(
            method,
            URL(url, encoded=True),
            headers=headers,
            data=content,
            allow_redirects=False,
            proxy=self.proxies[api],
        )

    async def relay(
        self,
        send: Send,
        exchange: Exchange,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | AsyncIterator[bytes] | None,
        recorder: CallRecorder | None,
        api: str,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> int:
        """Send upstream, pass the answer back to the client chunk by chunk (with `extra_headers`
        added; `recorder`, if any, sees every chunk and the ending); returns the status the client
        got. No answer: a 502 or 504 in `api`'s error shape, or `CLIENT_GONE` when the client left."""
        try:
            upstream = await self.request(method, url, headers, content, api)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if exchange.client_gone:  # it left while its body was being streamed up
                if recorder is not None:
                    recorder.finish_safely(INCOMPLETE, "the client disconnected")
                return CLIENT_GONE
            if isinstance(exc, TimeoutError):
                self.metrics.upstream_error(api, "timeout")
                return await self._fault(
                    send,
                    recorder,
                    exc,
                    api,
                    504,
                    f"The upstream API did not answer in time ({reason_text(exc)}).",
                    "upstream_timeout",
                )
            self.metrics.upstream_error(api, "unreachable")
            return await self._fault(
                send,
                recorder,
                exc,
                api,
                502,
                f"The upstream API is unreachable ({reason_text(exc)}).",
                "upstream_unreachable",
            )
        status = upstream.status
        if status == 429 or status >= 500:
            self.metrics.upstream_error(api, "http_429" if status == 429 else "http_5xx")
        error: BaseException | str | None
        ending, error = INCOMPLETE, "the client disconnected"
        try:
            response_headers = passed_back(upstream.raw_headers)
            if recorder is not None:
                start_response(self.runtime, recorder, httpx, status, upstream.headers)
                response_headers.append((TRACE_ID_RESPONSE_HEADER, recorder.trace_id.encode()))
            response_headers.extend(extra_headers)
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            try:
                async for chunk in upstream.content.iter_any():
                    if recorder is not None:
                        recorder.feed_safely(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                ending, error = COMPLETE, None
            except (aiohttp.ClientError, TimeoutError) as exc:  # the upstream body broke: end it cleanly
                ending, error = FAILED, exc
                self.metrics.upstream_error(api, "broken_body")
                logger.warning("agent-tracer proxy: upstream body broke (%s)", reason_text(exc))
            exchange.finished = True  # the server reports a disconnect after the last byte
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        finally:
            if ending == COMPLETE:
                upstream.release()  # the connection goes back to the pool
            else:
                upstream.close()  # a half-read body must not be read by the next request
            if recorder is not None:
                recorder.finish_safely(ending, error)

    async def _fault(
        self,
        send: Send,
        recorder: CallRecorder | None,
        exc: BaseException,
        api: str,
        status: int,
        message: str,
        code: str,
    ) -> int:
        if recorder is not None:
            recorder.finish_safely(FAILED, exc)
        return await _send_error(
            send, api, status, message, code, trace_id=recorder.trace_id if recorder is not None else None
        )


def new_session(timeout_s: float) -> aiohttp.ClientSession:
    """The upstream client: aiohttp (its C parser makes a proxy hop about half as costly as
    httpx's here). Bodies and headers pass as they are: no decompression, no headers of its own,
    no cookies kept (a shared jar would carry one client's cookies to the next), URLs not requoted."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None, connect=min(CONNECT_TIMEOUT_S, timeout_s), sock_read=timeout_s),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def env_proxy(url: str) -> str | None:
    """The HTTP(S)_PROXY that the environment names for `url` (NO_PROXY honoured), as httpx and
    the SDKs would use; read once at start-up (aiohttp's `trust_env` reads it on every request)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):  # type: ignore[attr-defined]  # not in typeshed
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; repeated ones joined with ", " as HTTP allows
    for request headers (aiohttp would keep only the last)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole request body, or `_TooLarge` as soon as it is known to be over `limit`."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def _stream_body(exchange: Exchange) -> AsyncIterator[bytes]:
    """A pass-through request body, streamed up as it arrives; the watch for the client leaving
    starts once it is all through."""
    while True:
        message = await exchange.receive()
        if message["type"] == "http.disconnect":
            exchange.client_gone = True
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            exchange.watch()
            return


async def _send_error(
    send: Send, api: str, status: int, message: str, code: str, *, close: bool = False, trace_id: str | None = None
) -> int:
    body = fastjson.dumps(error_body(api, status, message, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the client's unread body must not be taken for its next request
        headers.append((b"connection", b"close"))
    if trace_id is not None:
        headers.append((TRACE_ID_RESPONSE_HEADER, trace_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return status


class ProxyApp:
    """The ASGI app: the proxy's own paths and the lifespan go to a Starlette app, the web UI's
    (`UI_PATH`, when served) to the UI app, every other HTTP request is forwarded. The forwarding
    test comes first and is the same string comparisons with or without the UI."""

    def __init__(self, proxy: Proxy, ui: Starlette | None = None, ui_off: str | None = None) -> None:
        self.proxy = proxy
        self.ui = ui
        self.ui_off = ui_off or "it is not served by this proxy"
        self.own = Starlette(
            routes=[
                Route("/healthz", proxy.healthz, methods=["GET"]),
                Route("/metrics", proxy.prometheus, methods=["GET"]),
                Route(OTLP_PATH, proxy.otlp_traces, methods=["POST"]),
                Route(OTLP_LOGS_PATH, proxy.otlp_logs, methods=["POST"]),
                Route("/agent-tracer/v1/traces/{trace_id}/feedback", proxy.feedback, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )
        self.state = self.own.state

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.proxy.lifespan(app):
            if self.ui is None:
                yield
            else:
                async with self.ui.router.lifespan_context(self.ui):  # closes the UI's store
                    yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OWN_PATHS and not scope["path"].startswith(OWN_PREFIX):
            await self.proxy.forward(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(UI_PATH):
            if self.ui is not None:
                await self.ui(scope, receive, send)
            else:
                await PlainTextResponse(f"The web UI is off: {self.ui_off}.\n", status_code=404)(scope, receive, send)
        else:
            await self.own(scope, receive, send)


def create_app(
    config: ProxyConfig,
    runtime: Runtime,
    keys: KeyCheck | None = None,
    routes: RoutesFile | None = None,
    *,
    ui: Starlette | None = None,
    ui_off: str | None = None,
) -> ProxyApp:
    """The proxy app for `config`, answering the model names in `routes` through the router and
    serving `ui` (the web UI's app, mounted at `UI_PATH`) if given, else saying `ui_off` there.
    When `runtime` is the process's active one, the app's shutdown stops it (so everything
    recorded is written before the process ends)."""
    proxy = Proxy(config, runtime, keys, routes)
    app = ProxyApp(proxy, ui, ui_off)
    app.state.proxy = proxy
    return app


__all__ = ["DEFAULT_UPSTREAMS", "Exchange", "Proxy", "ProxyApp", "Upstream", "create_app", "error_response"]


@contextlib.contextmanager
def _held_alone(folder: str | None, name: str) -> Iterator[bool]:
    """Whether this worker holds `folder/name`'s lock (no other one does), for the block; True
    without a folder (a single process)."""
    if folder is None:
        yield True
        return
    import fcntl

    with open(Path(folder) / name, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
