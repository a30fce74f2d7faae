"""The routes file: which model names the proxy answers from a tuned model, and what stands behind it.

Its shape is `EXAMPLE` below (also printed by `agent-tracer routes --help`). Modes: `fallback` asks
the primary first and the fallback when it fails or answers badly;
`shadow` answers from the fallback and sends the same request to the primary in the background,
recording both; `canary` sends `canary_percent` of the calls down the fallback path's primary
first, the rest straight to the fallback.

`primary` and `fallback` are each one endpoint or a list of replicas serving the same model: the
proxy sends each call to the replica with the fewest calls under way whose breaker is closed
(`router.py`), and tries another primary replica when one cannot be reached.

An endpoint's `api_key_env` names the environment variable holding its key (read when the file is
loaded, never written anywhere); an endpoint without one gets the client's own credentials.

`load_routes` turns a file into `Routes` or one-line `ConfigError`s; `unreachable` says which
endpoints do not accept a connection. `RoutesFile` holds the routes in force and reloads them when
the file changes, keeping the last good ones (and logging why) when an edit does not load.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent_tracer.errors import ConfigError

logger = logging.getLogger("agent_tracer.proxy")

EXAMPLE = """\
routes:
  support-agent:                  # the model name the agent sends
    mode: fallback                # fallback | shadow | canary
    primary:  {url: "http://127.0.0.1:8001/v1", model: tuned}
    # replicas of one model:  primary: [{url: "http://10.0.0.1:8000/v1", model: tuned}, {url: …}]
    fallback: {url: "https://api.openai.com/v1", model: gpt-4o, api_key_env: OPENAI_API_KEY}
    timeout_s: 10                 # the primary's whole answer (default 30)
    first_token_timeout_s: 3      # a streamed answer's first token (default: timeout_s)
    canary_percent: 10            # canary mode: the share of calls the primary answers
    breaker: {failures: 5, cooldown_s: 30}   # per replica
"""

MODES = ("fallback", "shadow", "canary")
DEFAULT_TIMEOUT_S = 30.0
CONNECT_CHECK_S = 3.0
RELOAD_INTERVAL_S = 0.5
"""How often the file's modification time is looked at (one stat call)."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible API: its base URL (`…/v1`), the model name to send it, its key."""

    url: str
    model: str
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Breaker:
    """After `failures` primary failures in a row the primary is skipped for `cooldown_s`."""

    failures: int = 5
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class Route:
    name: str
    mode: str
    primaries: tuple[Endpoint, ...]
    """The primary's replicas (one or more), all serving the same model."""
    fallbacks: tuple[Endpoint, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S
    first_token_timeout_s: float | None = None
    canary_percent: float | None = None
    breaker: Breaker = Breaker()

    @property
    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """Every endpoint with its role: "primary" and "fallback", or "primary 1", "primary 2", …
        for replicas."""
        return [
            (f"{role} {index}" if len(group) > 1 else role, endpoint)
            for role, group in (("primary", self.primaries), ("fallback", self.fallbacks))
            for index, endpoint in enumerate(group, 1)
        ]


Routes = dict[str, Route]
"""Model name the agent sends → its route."""

_ROUTE_KEYS = {"mode", "primary", "fallback", "timeout_s", "first_token_timeout_s", "canary_percent", "breaker"}
_ENDPOINT_KEYS = {"url", "model", "api_key_env"}
_BREAKER_KEYS = {"failures", "cooldown_s"}


def load_routes(path: str | Path, *, keys: bool = True) -> Routes:
    """The routes in a YAML file; `ConfigError` with one line naming the file, route and field.
    `keys=False` reads the file without its endpoints' keys (to show it: a variable that is not set
    here is no fault of the file)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the routes file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_routes(data, str(path), keys=keys)


def parse_routes(data: Any, where: str = "routes", *, keys: bool = True) -> Routes:
    if not isinstance(data, dict) or not isinstance(data.get("routes"), dict) or not data["routes"]:
        raise ConfigError(f"{where}: expected a top-level `routes:` mapping of model names to routes")
    extra = set(data) - {"routes"}
    if extra:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(sorted(map(str, extra)))}")
    return {
        str(name): _route(f"{where}: route {name!r}", str(name), spec, keys) for name, spec in data["routes"].items()
    }


def _route(where: str, name: str, spec: Any, keys: bool) -> Route:
    _check_keys(where, spec, _ROUTE_KEYS)
    mode = spec.get("mode", "fallback")
    if mode not in MODES:
        raise ConfigError(f"{where}: unknown mode {mode!r} (one of {', '.join(MODES)})")
    for role in ("primary", "fallback"):
        if spec.get(role) is None:
            raise ConfigError(f"{where}: no {role} endpoint (a {role}: {{url: …, model: …}} is required)")
    timeout_s = _positive(where, "timeout_s", spec.get("timeout_s", DEFAULT_TIMEOUT_S))
    first_token = spec.get("first_token_timeout_s")
    if first_token is not None:
        first_token = _positive(where, "first_token_timeout_s", first_token)
    canary = spec.get("canary_percent")
    if mode == "canary" and canary is None:
        raise ConfigError(f"{where}: mode canary needs canary_percent (0-100)")
    if canary is not None and (not _is_number(canary) or not 0 <= canary <= 100):
        raise ConfigError(f"{where}: canary_percent must be a number from 0 to 100, not {canary!r}")
    breaker = spec.get("breaker") or {}
    _check_keys(f"{where} breaker", breaker, _BREAKER_KEYS)
    failures = breaker.get("failures", Breaker.failures)
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
        raise ConfigError(f"{where}: breaker failures must be a whole number of at least 1, not {failures!r}")
    cooldown = _positive(where, "breaker cooldown_s", breaker.get("cooldown_s", Breaker.cooldown_s))
    return Route(
        name=name,
        mode=mode,
        primaries=_replicas(f"{where} primary", spec["primary"], keys),
        fallbacks=_replicas(f"{where} fallback", spec["fallback"], keys),
        timeout_s=timeout_s,
        first_token_timeout_s=first_token,
        canary_percent=float(canary) if canary is not None else None,
        breaker=Breaker(failures, cooldown),
    )


def _replicas(where: str, spec: Any, keys: bool) -> tuple[Endpoint, ...]:
    """One endpoint, or a list of replicas (each checked, no URL twice)."""
    if not isinstance(spec, list):
        return (_endpoint(where, spec, keys),)
    if not spec:
        raise ConfigError(f"{where}: an empty list (one endpoint, or a list of replicas, is required)")
    found = tuple(_endpoint(f"{where} {index}", item, keys) for index, item in enumerate(spec, 1))
    urls = [endpoint.url for endpoint in found]
    twice = next((url for url in urls if urls.count(url) > 1), None)
    if twice is not None:
        raise ConfigError(f"{where}: the replica {twice} is listed twice")
    return found


def _endpoint(where: str, spec: Any, keys: bool) -> Endpoint:
    _check_keys(where, spec, _ENDPOINT_KEYS)
    url, model, key_env = spec.get("url"), spec.get("model"), spec.get("api_key_env")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: url {url!r} is not an http:// or https:// URL")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}: model must be the model name to send it")
    key = None
    if key_env is not None:
        if not isinstance(key_env, str) or not key_env:
            raise ConfigError(f"{where}: api_key_env must name an environment variable")
        key = os.environ.get(key_env) if keys else None
        if keys and not key:
            raise ConfigError(f"{where}: the environment variable {key_env} (api_key_env) is not set")
    return Endpoint(url.rstrip("/"), model, key_env, key)


def _check_keys(where: str, spec: Any, known: set[str]) -> None:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, not {type(spec).__name__}")
    unknown = set(map(str, spec)) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(where: str, name: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a positive number of seconds, not {value!r}")
    return float(value)


async def unreachable(routes: Routes, timeout_s: float = CONNECT_CHECK_S) -> list[str]:
    """One line for each endpoint that does not accept a TCP connection (each address tried once)."""
    endpoints: dict[tuple[str, int], tuple[str, str, Endpoint]] = {}
    for name, route in routes.items():
        for role, endpoint in route.endpoints:
            endpoints.setdefault(endpoint.host_port, (name, role, endpoint))

    async def connects(host: str, port: int) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            return str(exc) or type(exc).__name__
        writer.close()
        return None

    results = await asyncio.gather(*(connects(*address) for address in endpoints))
    return [
        f"route {name!r} {role} {endpoint.url} is unreachable ({error})"
        for (name, role, endpoint), error in zip(endpoints.values(), results)
        if error is not None
    ]


async def checked_routes(path: str | Path) -> Routes:
    """The routes in `path`, refused (`ConfigError`) when an endpoint is unreachable."""
    routes = load_routes(path)
    problems = await unreachable(routes)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}")
    return routes


class RoutesFile:
    """The routes in force, reloaded when the file changes. A request takes `current` once and
    keeps that route to its end, so an edit never changes a call half-way."""

    def __init__(self, path: str | Path, routes: Routes) -> None:
        self.path = Path(path)
        self.current = routes
        self._seen = self._stamp()
        self.reloads = 0
        self.rejected = 0

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def reload_if_changed(self) -> bool:
        """Load the file again if it changed since last looked at; True when new routes apply."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            routes = await checked_routes(self.path)
        except ConfigError as exc:
            self.rejected += 1
            logger.warning("agent-tracer proxy: kept the routes in force; the edit does not load: %s", exc)
            return False
        self.current = routes
        self.reloads += 1
        logger.warning("agent-tracer proxy: routes reloaded from %s (%s)", self.path, ", ".join(routes))
        return True

    async def watch(self, interval_s: float = RELOAD_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.reload_if_changed()


def route_dict(route: Route) -> dict[str, Any]:
    """A route as plain data in the file's shape (one endpoint, or a list of replicas), its
    endpoints' keys left out."""
    data = asdict(route)
    for role, group in (("primary", "primaries"), ("fallback", "fallbacks")):
        replicas = data.pop(group)
        for endpoint in replicas:
            endpoint.pop("api_key")
        data[role] = replicas[0] if len(replicas) == 1 else replicas
    return data


def describe_routes(routes: Routes) -> list[str]:
    """A line per route for `routes show` and the proxy's start-up; names key variables, never keys."""
    lines = []
    for name, route in routes.items():
        extra = f", canary {route.canary_percent:g}%" if route.mode == "canary" else ""
        first = f", first token {route.first_token_timeout_s:g} s" if route.first_token_timeout_s else ""
        ends = f"primary {_describe(route.primaries)} → fallback {_describe(route.fallbacks)}"
        lines.append(
            f"{name}: {route.mode}{extra}; {ends}; "
            f"timeout {route.timeout_s:g} s{first}; breaker {route.breaker.failures} failures / "
            f"{route.breaker.cooldown_s:g} s"
        )
    return lines


def _describe(replicas: tuple[Endpoint, ...]) -> str:
    def one(endpoint: Endpoint) -> str:
        key = f" (key from ${endpoint.api_key_env})" if endpoint.api_key_env else ""
        return f"{endpoint.model} at {endpoint.url}{key}"

    if len(replicas) == 1:
        return one(replicas[0])
    return f"{len(replicas)} replicas ({', '.join(map(one, replicas))})"
