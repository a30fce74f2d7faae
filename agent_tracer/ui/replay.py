"""Replay: a run's recorded model calls sent again, to another endpoint, and judged as the proxy would.

On a run page each model call has a Replay form (choose an endpoint), and the run a "Replay all
in order": each recorded Chat Completions request is sent as it was recorded (the endpoint's model
and key swapped in), in the run's order, and the answer is shown beside the recorded one with the
verdict the proxy's fallback would give it: `kept`, or the fallback reason (`unknown_tool`,
`http_500`, `timeout`, …). The asking and the judging are the router's own (`proxy.router.trial`),
so the page says what the proxy would have done.

The endpoints offered (`ReplayTargets`): a routes file's primaries and fallbacks (the proxy's UI
offers its own routes, reloaded with them) and named endpoints (`--endpoint NAME=URL,…`, the
spec `agent-tracer eval` takes). Keys come from the environment (`api_key_env` / `key_env`) and
never reach a page. A replay writes nothing to the store and is not recorded: it asks through an
aiohttp session of its own, which the tracer's capture (httpx transports) does not see. It is a
POST like the other forms (CSRF token), refused in read-only mode since it spends tokens.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from yarl import URL

from agent_tracer import endpoints as named
from agent_tracer.errors import ConfigError, TraceNotFound
from agent_tracer.proxy.app import env_proxy, new_session
from agent_tracer.proxy.router import Trial, trial
from agent_tracer.proxy.routes import DEFAULT_TIMEOUT_S, Endpoint, Route, Routes
from agent_tracer.proxy.wire import reason_text
from agent_tracer.store import LLMCall
from agent_tracer.ui import views
from agent_tracer.ui.forms import form_fields

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

READ_ONLY = "This UI is read-only (started with --read-only): replay is off, since it spends the endpoint's tokens."
NOT_CONFIGURED = (
    "No endpoint to replay on. Start the UI with `agent-tracer ui --routes routes.yaml` (its routes' "
    "endpoints) or `--endpoint NAME=URL[,model=…][,key_env=…]` (repeatable); the proxy's UI offers "
    "the endpoints of its own --routes."
)
_FORMATS = {"openai.responses": "an OpenAI Responses", "anthropic.messages": "an Anthropic Messages"}
MODELS_TIMEOUT_S = 10.0
"""How long GET /models may take, for a named endpoint given without a model."""


@dataclass(frozen=True)
class Target:
    """An endpoint replay can ask, with the time limits its answers are judged under."""

    id: str
    """The form's value: `route:NAME:primary`, `route:NAME:fallback` or `endpoint:NAME`."""
    label: str
    url: str
    model: str | None
    """None: the first model the endpoint lists (GET /models)."""
    key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    """Known already (a routes file the proxy loaded); else read from `key_env` when asked."""
    placeholder_key: bool = False
    """A named endpoint without `key_env` gets the placeholder key, as `agent-tracer eval` sends it."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    first_token_timeout_s: float | None = None


class ReplayTargets:
    """The endpoints offered: a routes file's (`routes` gives the routes in force: the proxy's own
    reload) and named ones; `timeout_s` replaces every time limit when given, else a route's own
    apply and a named endpoint gets `DEFAULT_TIMEOUT_S`."""

    def __init__(
        self,
        routes: Callable[[], Routes] | None = None,
        endpoints: Iterable[named.Endpoint] = (),
        timeout_s: float | None = None,
    ) -> None:
        self.routes = routes
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s

    @classmethod
    def from_options(
        cls, routes_file: str | None, endpoint_specs: Iterable[str], timeout_s: float | None
    ) -> ReplayTargets:
        """`agent-tracer ui --routes FILE --endpoint SPEC… --replay-timeout S`; `ConfigError` for
        a file or spec that does not load. The file's keys are read when a replay asks for them,
        so a key this UI does not hold spoils only the endpoints that need it."""
        from agent_tracer.proxy.routes import load_routes

        loaded = load_routes(routes_file, keys=False) if routes_file else None
        specs = list(endpoint_specs)
        found = named.endpoints_from(specs, purpose="to replay on") if specs else []
        return cls((lambda: loaded) if loaded is not None else None, found, timeout_s)

    def offered(self) -> list[Target]:
        targets = []
        for name, route in (self.routes() if self.routes is not None else {}).items():
            for role, endpoint in route.endpoints:
                targets.append(
                    Target(
                        f"route:{name}:{role.replace(' ', '-')}",
                        f"{name} {role}: {endpoint.model} at {endpoint.url}",
                        endpoint.url,
                        endpoint.model,
                        endpoint.api_key_env,
                        endpoint.api_key,
                        timeout_s=self.timeout_s or route.timeout_s,
                        first_token_timeout_s=None if self.timeout_s else route.first_token_timeout_s,
                    )
                )
        for spec in self.endpoints:
            model = spec.model or "its first listed model"
            targets.append(
                Target(
                    f"endpoint:{spec.name}",
                    f"{spec.name}: {model} at {spec.url}",
                    spec.url.rstrip("/"),
                    spec.model,
                    spec.key_env,
                    placeholder_key=spec.key_env is None,
                    timeout_s=self.timeout_s or DEFAULT_TIMEOUT_S,
                )
            )
        return targets


@dataclass
class Result:
    """One model call replayed: what came back and the verdict, as the page shows them."""

    call_id: str
    number: int
    target: str
    verdict: str
    """"kept", the fallback reason, or "not sent"."""
    kept: bool
    detail: str | None = None
    latency: str | None = None
    answer: views.MessageView | None = None
    recorded: views.MessageView | None = None


@dataclass
class Replayed:
    """What one replay POST did: the endpoint and the results in the run's order."""

    target: Target
    results: list[Result]

    @property
    def by_call(self) -> dict[str, Result]:
        return {result.call_id: result for result in self.results}


class _Client:
    """The replay's own aiohttp session (the router's `Requester`), made on first use: the
    tracer's capture wraps httpx, never this, so a replay is not recorded."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def request(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | AsyncIterator[bytes] | None, api: str
    ) -> Awaitable[aiohttp.ClientResponse]:
        if self.session is None:
            self.session = new_session(max(DEFAULT_TIMEOUT_S, 600.0))
        return self.session.request(
            method, URL(url, encoded=True), headers=headers, data=content, allow_redirects=False, proxy=env_proxy(url)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class Replay:
    """The run page's replay forms and their POST."""

    def __init__(self, ui: UI, targets: ReplayTargets | None) -> None:
        self.ui = ui
        self.targets = targets or ReplayTargets()
        self.client = _Client()
        self.models: dict[str, str] = {}
        """A named endpoint's URL → the model it listed first (asked once)."""

    async def close(self) -> None:
        await self.client.close()

    def view(self, replayed: Replayed | None = None) -> dict[str, Any]:
        """The templates' `replay`: the endpoints offered, the one chosen, the results by call."""
        targets = self.targets.offered()
        return {
            "targets": targets,
            "active": bool(targets) and not self.ui.read_only,
            "not_configured": NOT_CONFIGURED,
            "chosen": replayed.target.id if replayed else None,
            "replayed": replayed,
            "results": replayed.by_call if replayed else {},
        }

    async def post(self, request: Request) -> Response:
        """`POST /runs/{id}/replay`: `endpoint` (a target's id) and `call` (a model call's id, or
        none for all of them in order); the run page again, with the answers beside the recorded ones."""
        if self.ui.read_only:
            return self.ui.error(request, 403, READ_ONLY)
        form = await form_fields(request)
        trace_id = request.path_params["trace_id"]
        targets = {target.id: target for target in self.targets.offered()}
        if not targets:
            return await self.ui.run(request, message=NOT_CONFIGURED, status=400)
        target = targets.get(form.get("endpoint", ""))
        if target is None:
            return await self.ui.run(
                request, message=f"Not replayed: unknown endpoint {form.get('endpoint')!r}", status=400
            )
        call_id = form.get("call", "").strip()
        try:
            detail = await run_in_threadpool(
                self.ui.store.get_trace, trace_id, full_calls=[call_id] if call_id else None
            )
        except TraceNotFound as exc:
            return self.ui.error(request, 404, f"Unknown run: {exc}")
        numbered = [(number, call) for number, call in enumerate(detail.calls, start=1)]
        if call_id:
            numbered = [(number, call) for number, call in numbered if call.id == call_id]
            if not numbered:
                return self.ui.error(request, 404, f"Unknown model call: {call_id!r} in run {detail.trace.id!r}")
        results = [await self.replay_call(target, number, call) for number, call in numbered]
        return await self.ui.run(request, replayed=Replayed(target, results))

    async def replay_call(self, target: Target, number: int, call: LLMCall) -> Result:
        """Send one recorded call to `target` and judge the answer; a call that cannot be sent
        gets one line saying why."""
        recorded = (call.response or {}).get("message")
        result = Result(
            call.id,
            number,
            target.label,
            "not sent",
            False,
            recorded=views.message_view(recorded, answer=True) if recorded else None,
        )
        try:
            body = request_body(call)
            endpoint = await self.endpoint(target)
        except ConfigError as exc:
            result.detail = str(exc)
            return result
        route = Route(
            name=target.id,
            mode="fallback",
            primaries=(endpoint,),
            fallbacks=(endpoint,),
            timeout_s=target.timeout_s,
            first_token_timeout_s=target.first_token_timeout_s,
        )
        answered = await trial(self.client, route, endpoint, body)
        result.verdict = answered.reason or "kept"
        result.kept = answered.reason is None
        result.detail = _detail(answered)
        result.latency = views.ms(answered.latency_ms)
        if answered.response is not None:
            result.answer = views.message_view(answered.response.message, answer=True)
        return result

    async def endpoint(self, target: Target) -> Endpoint:
        """The router's endpoint for `target`: its key from the environment, its model listed by
        the endpoint when none was given; `ConfigError` with one line when neither can be had."""
        key = target.api_key
        if key is None and target.key_env:
            key = os.environ.get(target.key_env)
            if not key:
                raise ConfigError(f"the environment variable {target.key_env} (the endpoint's key) is not set here")
        if key is None and target.placeholder_key:
            key = named.PLACEHOLDER_KEY
        model = target.model or self.models.get(target.url) or await self._first_model(target.url, key)
        return Endpoint(target.url, model, target.key_env, key)

    async def _first_model(self, url: str, key: str | None) -> str:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        try:
            response = await self.client.request("GET", f"{url}/models", headers, None, "openai")
            async with response:
                data = await response.json(content_type=None) if response.status < 300 else None
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"no model given and GET {url}/models failed: {reason_text(exc)}") from None
        models = data.get("data") if isinstance(data, dict) else None
        first = models[0].get("id") if isinstance(models, list) and models and isinstance(models[0], dict) else None
        if not isinstance(first, str):
            raise ConfigError(f"no model given and GET {url}/models listed none (HTTP {status})")
        self.models[url] = first
        return first


def request_body(call: LLMCall) -> dict[str, Any]:
    """The recorded Chat Completions body, as the agent sent it; `ConfigError` with one line for a
    call in another format (the router speaks Chat Completions only, and translates nothing)."""
    if call.api in _FORMATS:
        raise ConfigError(
            f"{_FORMATS[call.api]} call: replay sends Chat Completions requests, as the proxy's routes do, "
            "and this format is not translated"
        )
    if call.api not in (None, "openai.chat"):
        raise ConfigError(f"a {call.api} call: replay sends Chat Completions requests only")
    if call.raw_request:
        try:
            body = json.loads(call.raw_request)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            return body
    canonical = call.request or {}
    if not isinstance(canonical.get("messages"), list):
        raise ConfigError("the recorded request holds no messages to send")
    body = {"model": canonical.get("model"), "messages": canonical["messages"], **(canonical.get("params") or {})}
    if canonical.get("tools"):
        body["tools"] = canonical["tools"]
    if canonical.get("stream"):
        body["stream"] = True
    return body


def _detail(answered: Trial) -> str | None:
    """One line on a refused answer: the router's words, and an error answer's own message."""
    if answered.reason is None:
        return None
    line = answered.detail
    if answered.status is not None and answered.status >= 300 and answered.body:
        said = _error_message(answered.body)
        if said:
            line = f"{line}: {said}" if line else said
    return line


def _error_message(body: bytes) -> str:
    """An API error body's message (OpenAI's and Anthropic's shape), else its first line of text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message.strip():
        text = message.strip()
    first = text.splitlines()[0] if text else ""
    return first[:300] + ("…" if len(first) > 300 else "")
