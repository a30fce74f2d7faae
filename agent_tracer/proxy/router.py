"""Answer a routed model name from the tuned primary, with the frontier fallback behind it.

A Chat Completions request whose `model` names a route (`routes.py`) is not forwarded as it is:

- **fallback** mode asks the primary (the route's model name swapped in) and keeps its answer
  unsent until it is judged; a failure or a bad answer sends the same request to the fallback,
  whose answer the client gets exactly as it came.
- **canary** does the same for `canary_percent` of the calls; the rest go to the fallback.
- **shadow** answers from the fallback and sends the request to the primary in the background.

A route's primary and fallback may each be several replicas: each call goes to the replica with
the fewest calls under way from this proxy process (ties taken in turn) whose breaker is closed;
a primary replica that cannot be reached, or answers 429 or 5xx, is followed by the next one
before the fallback is asked, since nothing has reached the client yet. Every call is recorded
with the replica that answered it (its `endpoint`) and counted by replica in `/metrics`.

The client never receives a byte of an answer that is later replaced. A plain answer is judged
whole; a stream is held until its first token (text), or to its end when the request could get a
tool call or asked for JSON, since a bad call is only known once its arguments are complete. Once
the first byte is sent the primary answers to the end: a primary that breaks after that is cut
cleanly (and recorded), never spliced with another answer.

Fallback reasons, recorded on both calls (`fallback_reason`) and on their spans: `connect_error`,
`timeout` (the whole answer, `timeout_s`), `first_token_timeout`, `http_<status>` (any answer that
is not 2xx), `broken_answer`, the bad-answer reasons of `verdict.py`, `circuit_open` (the breaker
skipped the primary), and, for calls the fallback answers by design, `canary` and `shadow`. A
shadow call records the reason the primary's answer would have been refused, if any.

`trial` asks an endpoint as a primary is asked and gives back its whole answer with the verdict
the fallback would give it, recording nothing: the web UI's replay of a recorded call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import httpx

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalResponse
from agent_tracer.capture import new_recorder, start_response
from agent_tracer.decode import COMPLETE, FAILED, INCOMPLETE
from agent_tracer.proxy.auth import CREDENTIAL_HEADERS
from agent_tracer.proxy.breaker import CircuitBreaker
from agent_tracer.proxy.routes import Endpoint, Route, RoutesFile
from agent_tracer.proxy.runs import Run, new_run_context
from agent_tracer.proxy.verdict import judge, wants_json
from agent_tracer.proxy.wire import TRACE_ID_RESPONSE_HEADER, passed_back, reason_text, upstream_url
from integrations.openai_chat import ChatStreamAccumulator, OpenAIChatCodec
from integrations.sse import SSEDecoder

if TYPE_CHECKING:
    from starlette.types import Send

    from agent_tracer.proxy.app import Exchange, Upstream
    from agent_tracer.proxy.auth import KeyCheck
    from agent_tracer.proxy.metrics import Metrics
    from agent_tracer.recorder import CallRecorder
    from agent_tracer.runtime import Runtime

logger = logging.getLogger("agent_tracer.proxy")

CHAT_PATH = "/v1/chat/completions"
ROUTE_HEADER = b"x-agent-route"
CODEC = OpenAIChatCodec()
_BREAKER_FAILURES = ("connect_error", "timeout", "first_token_timeout", "broken_answer", "invalid_response", "http_429")
"""Reasons that say the primary is down or overloaded (with any 5xx): they count for its breaker."""
_NEXT_REPLICA = ("connect_error", "http_429")
"""Reasons (with any 5xx) after which another primary replica is asked: no answer was begun."""


class Requester(Protocol):
    """What an answer is asked through: the proxy's `Upstream` (see its `request`), or any client
    with the same method (the web UI's replay)."""

    def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | AsyncIterator[bytes] | None, api: str
    ) -> Awaitable[aiohttp.ClientResponse]: ...


class _Refused(Exception):
    """The primary's answer must not reach the client; `reason` is the fallback reason."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason


class Router:
    """Routes for one proxy app: the routes file in force, a breaker per primary, shadow tasks.
    Its calls go through the proxy's `upstream`, are recorded by `runtime` and counted in `metrics`;
    with `keys`, the proxy's upstream key replaces the client's (unless an endpoint names its own)."""

    def __init__(
        self,
        routes: RoutesFile,
        upstream: Upstream,
        runtime: Runtime,
        metrics: Metrics,
        keys: KeyCheck | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.routes = routes
        self.upstream = upstream
        self.runtime = runtime
        self.metrics = metrics
        self.keys = keys
        self.draw = draw
        """A number in [0, 1) per canary call; the share below canary_percent goes to the primary."""
        self.breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self.outstanding: defaultdict[str, int] = defaultdict(int)
        """Calls under way per endpoint URL, all routes together: what a replica is chosen by."""
        self._turn = 0
        self.shadows: set[asyncio.Task[None]] = set()

    def route_for(self, path: str, body: dict[str, Any]) -> Route | None:
        if path.rstrip("/") != CHAT_PATH:
            return None
        model = body.get("model")
        return self.routes.current.get(model) if isinstance(model, str) else None

    def breaker(self, route: Route, endpoint: Endpoint) -> CircuitBreaker:
        key = (route.name, endpoint.url)
        breaker = self.breakers.get(key)
        if breaker is None or breaker.settings != route.breaker:
            breaker = self.breakers[key] = CircuitBreaker(route.breaker)
        return breaker

    def pick(
        self, route: Route, replicas: tuple[Endpoint, ...], tried: Collection[str] = (), *, breakers: bool = True
    ) -> tuple[Endpoint, CircuitBreaker | None] | None:
        """The replica to ask: the fewest calls under way (ties in turn), not yet `tried`, whose
        breaker lets the call through (taking its half-open trial); None when none does. Without
        `breakers` (the fallback, a shadow call) every replica may be asked."""
        if len(replicas) == 1:
            order: Iterable[Endpoint] = replicas
        else:
            self._turn += 1
            turn, count, outstanding = self._turn, len(replicas), self.outstanding
            order = sorted(replicas, key=lambda e: (outstanding[e.url], (replicas.index(e) - turn) % count))
        for endpoint in order:
            if endpoint.url in tried:
                continue
            if not breakers:
                return endpoint, None
            breaker = self.breaker(route, endpoint)
            if breaker.allow():
                return endpoint, breaker
        return None

    async def stop(self) -> None:
        """Cancel the shadow calls still running (they are recorded as incomplete)."""
        for task in list(self.shadows):
            task.cancel()
        if self.shadows:
            await asyncio.gather(*self.shadows, return_exceptions=True)

    # -- one request

    async def answer(
        self, send: Send, exchange: Exchange, route: Route, body: dict[str, Any], headers: dict[str, str], run: Run
    ) -> int:
        """Answer one routed request; returns the status the client got."""
        call = _Call(self, route, body, headers, run)
        if route.mode == "shadow":
            self._shadow(call)
            return await call.fallback(send, exchange, "shadow")
        if route.mode == "canary" and self.draw() * 100 >= (route.canary_percent or 0.0):
            return await call.fallback(send, exchange, "canary")
        tried: list[str] = []
        reason = "circuit_open"
        while (picked := self.pick(route, route.primaries, tried)) is not None:
            endpoint, breaker = picked
            assert breaker is not None  # picked with breakers
            tried.append(endpoint.url)
            self.outstanding[endpoint.url] += 1
            try:
                status = await call.primary(send, exchange, endpoint)
            except _Refused as refused:
                reason = refused.reason
                if reason in _BREAKER_FAILURES or reason.startswith("http_5"):
                    breaker.failed()
                else:
                    breaker.released()
                self.metrics.replica(route.name, endpoint.url, reason)
                if reason in _NEXT_REPLICA or reason.startswith("http_5"):
                    continue
                break
            except BaseException:
                breaker.released()
                raise
            finally:
                self.outstanding[endpoint.url] -= 1
            breaker.succeeded()
            self.metrics.routed(route.name, "primary", "")
            self.metrics.replica(route.name, endpoint.url, "")
            return status
        return await call.fallback(send, exchange, reason)

    def _shadow(self, call: _Call) -> None:
        task = asyncio.get_running_loop().create_task(call.shadow())
        self.shadows.add(task)
        task.add_done_callback(self.shadows.discard)


class _Call:
    """One routed request: the client's body and headers, and the trace its calls share."""

    def __init__(self, router: Router, route: Route, body: dict[str, Any], headers: dict[str, str], run: Run) -> None:
        self.router = router
        self.route = route
        self.body = body
        self.headers = headers
        self.labels = run.labels
        self.context = run.context or new_run_context()
        """The primary's and the fallback's calls are siblings in one trace."""

    def _request(
        self,
        endpoint: Endpoint,
        role: str,
        reason: str | None = None,
    ) -> tuple[str, dict[str, str], bytes, CallRecorder | None]:
        url = _chat_url(endpoint)
        payload = fastjson.dumps({**self.body, "model": endpoint.model}).encode()
        headers = dict(self.headers)
        headers["content-type"] = "application/json"
        keys = self.router.keys
        if endpoint.api_key or keys is not None:
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)
            if endpoint.api_key:
                headers["authorization"] = f"Bearer {endpoint.api_key}"
            elif keys is not None:
                headers.update(keys.upstream_credentials("openai"))
        if role != "fallback":
            headers["accept-encoding"] = "identity"  # its answer is read here, to be judged
        recorder = new_recorder(
            self.router.runtime,
            CODEC,
            url,
            payload,
            source="proxy",
            route=role,
            context=self.context,
            labels=self.labels,
        )
        if recorder is not None:
            recorder.fallback_reason = reason
        return url, headers, payload, recorder

    async def fallback(self, send: Send, exchange: Exchange, reason: str) -> int:
        """The fallback's answer (its least busy replica's), passed through as it comes (its
        failures too: it is the last resort)."""
        router = self.router
        router.metrics.routed(self.route.name, "fallback", reason)
        endpoint = self._replica(self.route.fallbacks)
        url, headers, payload, recorder = self._request(endpoint, "fallback", reason)
        router.outstanding[endpoint.url] += 1
        try:
            return await router.upstream.relay(
                send,
                exchange,
                "POST",
                url,
                headers,
                payload,
                recorder,
                "openai",
                extra_headers=((ROUTE_HEADER, b"fallback"),),
            )
        except asyncio.CancelledError:
            exchange.cancelled(recorder)
            raise
        finally:
            router.outstanding[endpoint.url] -= 1

    def _replica(self, replicas: tuple[Endpoint, ...]) -> Endpoint:
        picked = self.router.pick(self.route, replicas, breakers=False)
        assert picked is not None  # without breakers every replica may be picked
        return picked[0]

    async def primary(self, send: Send, exchange: Exchange, endpoint: Endpoint) -> int:
        """Ask the primary replica `endpoint`; send its answer to the client once judged good
        (returns the status), else raise `_Refused` having sent nothing."""
        url, headers, payload, recorder = self._request(endpoint, "primary")
        answer = _Answer(self.router.runtime, self.route, recorder, streamed=bool(self.body.get("stream")))
        try:
            await answer.open(self.router.upstream, url, headers, payload)
            await answer.read(until_first_token=not _holds_to_end(self.body))
            return await answer.commit(send, exchange, self.body)
        except _Refused as refused:
            answer.finish_refused(refused)
            raise
        except asyncio.CancelledError:
            exchange.cancelled(recorder)
            raise
        finally:
            answer.close()

    async def shadow(self) -> None:
        """The primary's answer to the same request, recorded (route "shadow") and dropped."""
        endpoint = self._replica(self.route.primaries)
        url, headers, payload, recorder = self._request(endpoint, "shadow")
        self.router.outstanding[endpoint.url] += 1
        answer = _Answer(self.router.runtime, self.route, recorder, streamed=bool(self.body.get("stream")))
        reason = ""
        try:
            await answer.hear_out(self.router.upstream, url, headers, payload, self.body)
            answer.finish(COMPLETE, None)
        except _Refused as refused:
            reason = refused.reason
            answer.finish_refused(refused)
        except asyncio.CancelledError:
            answer.finish(INCOMPLETE, "the proxy stopped before the shadow call ended")
            raise
        finally:
            answer.close()
            self.router.outstanding[endpoint.url] -= 1
        self.router.metrics.routed(self.route.name, "shadow", reason)


class _Answer:
    """The primary's answer as it arrives, held back from the client, under the route's time limits."""

    def __init__(self, runtime: Runtime | None, route: Route, recorder: CallRecorder | None, *, streamed: bool) -> None:
        self.runtime = runtime
        self.route = route
        self.recorder = recorder
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.deadline = loop.time() + route.timeout_s
        self.first_token_deadline = (
            loop.time() + route.first_token_timeout_s if route.first_token_timeout_s and streamed else None
        )
        """Only a stream shows its first token; a plain answer is whole when its headers come."""
        self.response: aiohttp.ClientResponse | None = None
        self.chunks: list[bytes] = []
        self.sse: SSEDecoder | None = None
        self.accumulator: ChatStreamAccumulator | None = None
        self.first_token = False
        self.ended = False
        self.canonical: CanonicalResponse | None = None
        """The whole answer, decoded, once judged."""

    async def _within(self, awaitable: Any, first_token: bool = False) -> Any:
        deadline = self.deadline
        if first_token and self.first_token_deadline is not None and self.first_token_deadline < deadline:
            deadline = self.first_token_deadline
        try:
            return await asyncio.wait_for(awaitable, max(deadline - self.loop.time(), 0.0))
        except TimeoutError:
            if deadline != self.deadline:
                raise _Refused(
                    "first_token_timeout", f"no first token within {self.route.first_token_timeout_s:g} s"
                ) from None
            raise _Refused("timeout", f"no whole answer within {self.route.timeout_s:g} s") from None

    async def open(self, upstream: Requester, url: str, headers: dict[str, str], payload: bytes) -> None:
        try:
            self.response = await self._within(
                upstream.request("POST", url, headers, payload, "openai"), first_token=True
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise _Refused("connect_error", reason_text(exc)) from None
        response = self.response
        if self.recorder is not None and self.runtime is not None:
            start_response(self.runtime, self.recorder, httpx, response.status, response.headers)
        if response.status >= 300:
            await self._read_rest()
            raise _Refused(f"http_{response.status}", f"the primary answered HTTP {response.status}")
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            self.sse, self.accumulator = SSEDecoder(), CODEC.stream_accumulator()

    async def read(self, *, until_first_token: bool) -> None:
        """Read (and hold) the answer to its end, or a stream only to its first token."""
        if self.sse is None or self.accumulator is None:
            await self._read_rest()
            return
        while not self.ended:
            if until_first_token and self.first_token:
                return
            chunk = await self._next_chunk()
            for event, data in self.sse.feed(chunk):
                try:
                    if self.accumulator.add(event, data):
                        self.first_token = True
                except ValueError as exc:
                    raise _Refused("broken_answer", f"an event that is not a chat chunk ({exc})") from None

    async def _next_chunk(self) -> bytes:
        assert self.response is not None
        content = self.response.content
        try:
            # What has arrived already is taken as it is: a timed wait (a task each) only when waiting.
            chunk = content.read_nowait()
            if not chunk and not content.at_eof():
                chunk = await self._within(content.readany(), first_token=not self.first_token)
        except aiohttp.ClientError as exc:
            raise _Refused("broken_answer", reason_text(exc)) from None
        if not chunk:
            self.ended = True
        else:
            self.chunks.append(chunk)
            if self.recorder is not None:
                self.recorder.feed_safely(chunk)
        return chunk

    async def _read_rest(self) -> None:
        while not self.ended:
            await self._next_chunk()

    async def hear_out(
        self, upstream: Requester, url: str, headers: dict[str, str], payload: bytes, request: dict[str, Any]
    ) -> None:
        """Ask, read the whole answer (a stream to its end) and judge it: `_Refused` if bad."""
        await self.open(upstream, url, headers, payload)
        await self.read(until_first_token=False)
        self.judge(request)

    def judge(self, request: dict[str, Any]) -> None:
        """Raise `_Refused` for an answer that must not reach the agent (a whole one, or a stream
        that ended); a stream still open was good at its first token."""
        if self.sse is None or self.accumulator is None:
            try:
                response = CODEC.decode_response(fastjson.loads(b"".join(self.chunks)))
            except ValueError as exc:
                raise _Refused("invalid_response", f"not a chat completion ({exc})") from None
        elif not self.ended:
            return
        else:
            if self.accumulator.error or not self.accumulator.done:
                raise _Refused("broken_answer", self.accumulator.error or "the stream ended without [DONE]")
            response = self.accumulator.response()
        self.canonical = response
        reason = judge(request, response)
        if reason is not None:
            raise _Refused(reason)

    async def commit(self, send: Send, exchange: Exchange, request: dict[str, Any]) -> int:
        """Judge what is held; if good, send it to the client and pass the rest of a stream
        through as it comes. Returns the client's status."""
        self.judge(request)
        response = self.response
        assert response is not None
        headers = passed_back(response.raw_headers)
        if self.recorder is not None:
            headers.append((TRACE_ID_RESPONSE_HEADER, self.recorder.trace_id.encode()))
        headers.append((ROUTE_HEADER, b"primary"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        ending, error = COMPLETE, None
        try:
            if self.chunks:
                await send({"type": "http.response.body", "body": b"".join(self.chunks), "more_body": True})
            while not self.ended:
                chunk = await self._next_chunk()
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _Refused as refused:  # too late to fall back: end the answer cleanly
            ending, error = FAILED, f"{refused.reason}: {refused} (after the answer had begun)"
            logger.warning(
                "agent-tracer proxy: route %r primary broke after its answer began (%s)", self.route.name, error
            )
        exchange.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finish(ending, error)
        return response.status

    def finish(self, ending: str, error: str | None) -> None:
        if self.recorder is not None:
            self.recorder.finish_safely(ending, error)

    def finish_refused(self, refused: _Refused) -> None:
        if self.recorder is not None:
            self.recorder.fallback_reason = refused.reason
        bad_answer = self.ended and not refused.reason.startswith(("http_", "broken_answer"))
        self.finish(COMPLETE if bad_answer else FAILED, None if bad_answer else f"{refused.reason}: {refused}")

    def close(self) -> None:
        if self.response is not None:
            if self.ended:
                self.response.release()
            else:
                self.response.close()


def _holds_to_end(body: dict[str, Any]) -> bool:
    """Whether a streamed answer must be held whole before it is judged: when it may hold a tool
    call or must be JSON (their faults show only at the end)."""
    return bool(body.get("tools")) or wants_json(body)


def _chat_url(endpoint: Endpoint) -> str:
    return upstream_url(endpoint.url, CHAT_PATH, "")


@dataclass
class Trial:
    """An endpoint's answer to one request, and what the router would have done with it."""

    reason: str | None
    """The fallback reason (`http_500`, `timeout`, `unknown_tool`, …); None: the answer is kept."""
    detail: str | None
    """One line on the reason, when there is more to say than its code."""
    status: int | None
    """The answer's HTTP status; None when none came."""
    response: CanonicalResponse | None
    """The whole answer, decoded (also a bad one); None when there is no chat completion."""
    body: bytes
    """The answer's bytes as they came (an error answer's body, say)."""
    latency_ms: float


async def trial(upstream: Requester, route: Route, endpoint: Endpoint, body: dict[str, Any]) -> Trial:
    """Ask `endpoint` for `body` (a Chat Completions request; the endpoint's model and key swapped
    in) as a route's primary is asked, under `route`'s time limits; read the whole answer (a stream
    to its end, as a shadow call) and judge it as the fallback would. Nothing is recorded, nothing
    is counted, the route's breaker is left alone."""
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if endpoint.api_key:
        headers["authorization"] = f"Bearer {endpoint.api_key}"
    payload = fastjson.dumps({**body, "model": endpoint.model}).encode()
    answer = _Answer(None, route, None, streamed=bool(body.get("stream")))
    started = answer.loop.time()
    reason = detail = None
    try:
        await answer.hear_out(upstream, _chat_url(endpoint), headers, payload, body)
    except _Refused as refused:
        reason, detail = refused.reason, (str(refused) if str(refused) != refused.reason else None)
    finally:
        answer.close()
    return Trial(
        reason,
        detail,
        answer.response.status if answer.response is not None else None,
        answer.canonical,
        b"".join(answer.chunks),
        (answer.loop.time() - started) * 1000,
    )
