"""The runs page's filters, read from and written back to the URL's query string.

Names in the URL are short and stable (`q`, `name`, `outcome`, `rating`, `tag`, `model`, `since`,
`until`, `tools`, `status` (ok, error: the run or one of its calls failed), `held_out` (yes, no:
tagged held-out), `route` (primary, fallback, shadow, direct: a call answered that way), `limit`,
`after`) so that a link can be shared; their values become the keywords
of `TraceStore.traces()`. A value that cannot be read raises `FilterError` with one line for the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from agent_tracer.errors import ConfigError, StoreError
from agent_tracer.store.queries import parse_time, to_utc
from agent_tracer.store.timeline import DIRECT, ROUTES

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_CURSOR_SEPARATOR = "_"
_TOOLS = {"yes": True, "no": False}
_STATUSES = ("ok", "error")


class FilterError(ConfigError):
    """A filter value in the URL that cannot be used; its message is shown on the page."""


@dataclass
class RunFilters:
    """What the runs page shows: the filters as typed (`given`) and as the store takes them."""

    given: dict[str, str] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime | None, str] | None = None

    def query(self, **changes: str | None) -> str:
        """The query string of these filters with `changes` (None drops a name), for links."""
        values = {**self.given, **changes}
        return urlencode({key: value for key, value in values.items() if value})


def parse_filters(params: Mapping[str, str]) -> RunFilters:
    """The filters in a query string; `FilterError` for a value that cannot be used."""
    given = {key: params[key].strip() for key in _NAMES if params.get(key, "").strip()}
    store: dict[str, Any] = {}
    for key in ("name", "outcome", "model"):
        if key in given:
            store[key] = given[key]
    if "q" in given:  # full-text search over what the calls said
        store["text"] = given["q"]
    if "tag" in given:
        store["tags"] = [given["tag"]]
    if "rating" in given:
        store["min_rating"] = _number(given["rating"], "rating")
    for key in ("since", "until"):
        if key in given:
            try:
                store[key] = parse_time(given[key])
            except ConfigError as exc:
                raise FilterError(f"{key}: {exc}") from None
    if "tools" in given:
        if given["tools"] not in _TOOLS:
            raise FilterError(f"tools must be yes or no, not {given['tools']!r}")
        store["has_tool_calls"] = _TOOLS[given["tools"]]
    if "status" in given:
        if given["status"] not in _STATUSES:
            raise FilterError(f"status must be ok or error, not {given['status']!r}")
        store["status"] = given["status"]
    if "held_out" in given:
        if given["held_out"] not in _TOOLS:
            raise FilterError(f"held_out must be yes or no, not {given['held_out']!r}")
        store["held_out"] = _TOOLS[given["held_out"]]
    if "route" in given:
        if given["route"] not in (*ROUTES, DIRECT):
            raise FilterError(f"route must be one of {', '.join((*ROUTES, DIRECT))}, not {given['route']!r}")
        store["route"] = given["route"]
    limit = DEFAULT_LIMIT
    if "limit" in given:
        limit = int(_number(given["limit"], "limit"))
        if not 1 <= limit <= MAX_LIMIT or limit != float(given["limit"]):
            raise FilterError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {given['limit']!r}")
    after = parse_cursor(given["after"]) if "after" in given else None
    return RunFilters(given=given, store=store, limit=limit, after=after)


def cursor(started_at: datetime | None, trace_id: str) -> str:
    """The `after=` value that continues the list after this trace."""
    return f"{started_at.isoformat() if started_at else ''}{_CURSOR_SEPARATOR}{trace_id}"


def parse_cursor(text: str) -> tuple[datetime | None, str]:
    """`cursor()`'s value read back; `FilterError` when it is not one."""
    started, separator, trace_id = text.rpartition(_CURSOR_SEPARATOR)
    if not separator or not trace_id or not trace_id.isalnum():
        raise FilterError(f"after must be a cursor from a Next link, not {text!r}")
    try:
        return (to_utc(started) if started else None), trace_id
    except StoreError:
        raise FilterError(f"after must be a cursor from a Next link, not {text!r}") from None


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FilterError(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise FilterError(f"{name} must be a number, not {text!r}")
    return value


_NAMES: tuple[str, ...] = (
    "q",
    "name",
    "outcome",
    "rating",
    "tag",
    "model",
    "since",
    "until",
    "tools",
    "limit",
    "after",
)
_NAMES += ("status", "held_out")
_NAMES += ("route",)
