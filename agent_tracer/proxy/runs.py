"""Which run (trace) a proxied call belongs to, read from the request's headers.

An agent behind the proxy has no decorator to open a trace around its run, so it says which run a
call belongs to with headers; the proxy reads them and forwards none of the `X-Agent-*` ones:

    X-Agent-Trace-Id: run-42        any id of the agent's own for the run (up to 200 characters)
    traceparent: 00-<32 hex>-<16 hex>-01
                                    W3C Trace Context, as OpenTelemetry-instrumented clients send
                                    it: the call joins that trace, as a child of the client's span
    X-Agent-Name: support-agent     names the trace
    X-Agent-Tags: prod, eu          tags it (comma-separated)
    X-Agent-User: u-123             the end user the run is for (`user.id` in its metadata)
    X-Agent-Session: s-9            their session (`session.id`): `traces erase` finds runs by either

`X-Agent-Trace-Id` wins over `traceparent` (it is the explicit one); with neither, each call is a
trace of its own. A run id that is already a trace id (32 hex characters, or a UUID) is used as it
is; any other is hashed into one and kept in the trace's metadata as `run_id`. The feedback
endpoint maps ids the same way, so an agent reports outcomes with the id it sent.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent_tracer.records import RunLabels
from agent_tracer.run_ids import trace_id_for

TRACE_ID_HEADER = "x-agent-trace-id"
NAME_HEADER = "x-agent-name"
TAGS_HEADER = "x-agent-tags"
PEOPLE_HEADERS = {"x-agent-user": "user.id", "x-agent-session": "session.id"}
"""Header → the key of the trace's metadata that holds it (OpenTelemetry's attribute names)."""
TRACEPARENT_HEADER = "traceparent"
RUN_HEADERS = frozenset({TRACE_ID_HEADER, NAME_HEADER, TAGS_HEADER, *PEOPLE_HEADERS})
"""Headers for the proxy only: never forwarded upstream."""

MAX_NAME_CHARS = 200
MAX_TAGS = 32
MAX_TAG_CHARS = 64

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(slots=True)
class Run:
    """The trace a call joins (None: a trace of its own) and the labels for that trace."""

    context: Context | None
    labels: RunLabels | None
    trace_id: str | None
    """The trace id in hex when the headers chose one (echoed back to the client)."""


def run_from_headers(headers: Any) -> Run:
    """The run named by a request's headers (a Starlette/httpx headers mapping, lower-case names).
    Malformed values are ignored, as W3C Trace Context asks of a bad traceparent: the call is
    still forwarded and recorded, as a trace of its own."""
    labels = RunLabels()
    context: Context | None = None
    trace_id: str | None = None
    run_id = headers.get(TRACE_ID_HEADER)
    if run_id:
        try:
            trace_id = trace_id_for(run_id)
        except ValueError:
            trace_id = None
        if trace_id is not None:
            if trace_id != run_id.strip().lower().replace("-", ""):
                labels.meta["run_id"] = run_id.strip()
            # The run's calls are siblings under one id standing for the agent's run span.
            root = int(hashlib.sha256(bytes.fromhex(trace_id)).hexdigest()[:16], 16) or 1
            context = _remote_parent(int(trace_id, 16), root)
    if context is None:
        parent = _parse_traceparent(headers.get(TRACEPARENT_HEADER))
        if parent is not None:
            context = _remote_parent(*parent)
            trace_id = f"{parent[0]:032x}"
    name = (headers.get(NAME_HEADER) or "").strip()
    if name:
        labels.name = name[:MAX_NAME_CHARS]
    tags = headers.get(TAGS_HEADER)
    if tags:
        labels.tags = list(dict.fromkeys(t.strip()[:MAX_TAG_CHARS] for t in tags.split(",") if t.strip()))[:MAX_TAGS]
    for header, key in PEOPLE_HEADERS.items():
        value = (headers.get(header) or "").strip()
        if value:
            labels.meta[key] = value[:MAX_NAME_CHARS]
    has_labels = labels.name is not None or labels.tags or labels.meta
    return Run(context, labels if has_labels else None, trace_id)


def _parse_traceparent(value: str | None) -> tuple[int, int] | None:
    """(trace id, parent span id) of a valid version-00 traceparent (or a later version's first
    four fields, as the spec allows), else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_hex, span_hex, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id


def _remote_parent(trace_id: int, span_id: int) -> Context:
    span_context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def new_run_context() -> Context:
    """A trace of its own for calls that belong together without a run named by the client (a
    primary's call and its fallback's): siblings under one id standing for the request."""
    return _remote_parent(random.getrandbits(128) or 1, random.getrandbits(64) or 1)
