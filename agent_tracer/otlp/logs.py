"""`POST /v1/logs`: the GenAI message events that instrumentations send as OTLP log records, made
the messages of the model call of their span.

Instrumentations on the event-based GenAI conventions (the OpenTelemetry contrib `openai-v2`,
with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) put a call's messages not on its
span but in log records: one per input message (`gen_ai.{system,user,assistant,tool}.message`)
and one per choice (`gen_ai.choice`), each carrying the chat span's trace and span ids, the
message in its body. They are read as the same events on the span would be (`layouts.py`), so
the call stores what our own capture stores. Spans and logs come in separate requests, in
either order, and `LogJoin` puts them together:

- logs after their span: a model-call span without messages of its own is kept a while; the
  events join it, it is mapped again and its call row replaced (`llm_call_update`);
- logs before their span: the events are held until the span comes and is mapped with them.

Both waits are bounded (`max_records` held events and as many kept spans, `max_age_s` each):
events still held past them are dropped and counted (`/metrics`). Log records of other names,
and message events without a span id, are acknowledged and counted, not stored.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_tracer import fastjson
from agent_tracer.errors import OTLPError
from agent_tracer.otlp.mapping import MESSAGE_EVENTS, span_records
from agent_tracer.otlp.spans import (
    Event,
    Span,
    _get,
    _json_attributes,
    _json_value,
    _list,
    _pb_attributes,
    _pb_value,
    _valid,
    json_export,
)
from agent_tracer.records import MadeRecords, Record
from agent_tracer.store.rows import CALL_UPDATE

MAX_RECORDS = 10_000
MAX_AGE_S = 300.0
EVENT_NAME = "event.name"
"""Where SDKs before `LogRecord.event_name` put an event's name: an attribute."""
RESULTS = ("joined", "held", "dropped", "other", "unplaced", "rejected")
"""What became of log records: joined to their span's call (at once or after being held), held
for a span not seen yet, dropped (held past the bounds), other names and message events without
a span (acknowledged, not stored), rejected (not readable: partial success)."""

Key = tuple[str, str]
"""(trace id, span id) in hex."""


@dataclass(slots=True)
class DecodedLogs:
    messages: list[tuple[Key, Event]] = field(default_factory=list)
    """The GenAI message events, each with its span."""
    other: int = 0
    unplaced: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 3:
            self.reasons.append(reason)

    def add(self, name: str, trace_id: str, span_id: str, time_ns: int, attributes: dict[str, Any], body: Any) -> None:
        name = name or str(attributes.get(EVENT_NAME) or "")
        if name not in MESSAGE_EVENTS:
            self.other += 1
        elif not _valid(trace_id, 32) or not _valid(span_id, 16):
            self.unplaced += 1
        else:
            fields = {k: v for k, v in attributes.items() if k != EVENT_NAME}
            if body is not None:
                fields["body"] = body  # layouts' `_event_fields` reads the message from it
            self.messages.append(((trace_id, span_id), Event(name, time_ns, fields)))


def from_protobuf(body: bytes) -> DecodedLogs:
    """An `ExportLogsServiceRequest` in protobuf's binary encoding; `OTLPError` when it is not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    try:
        request = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OTLPError(f"not an OTLP ExportLogsServiceRequest (protobuf): {exc}") from None
    out = DecodedLogs()
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                out.add(
                    record.event_name,
                    record.trace_id.hex(),
                    record.span_id.hex(),
                    record.time_unix_nano or record.observed_time_unix_nano,
                    _pb_attributes(record.attributes),
                    _pb_value(record.body) if record.HasField("body") else None,
                )
    return out


def from_json(body: bytes) -> DecodedLogs:
    """An `ExportLogsServiceRequest` in OTLP/JSON; `OTLPError` when the body is not JSON, or not an
    object with a `resourceLogs` list. A log record that cannot be read is rejected, the rest kept."""
    out = DecodedLogs()
    for item in json_export(body, "resourceLogs", "log"):
        for scope_logs in _list(_get(item, "scopeLogs", "scope_logs")):
            records = _get(scope_logs, "logRecords", "log_records") if isinstance(scope_logs, dict) else None
            for record in _list(records):
                try:
                    if not isinstance(record, dict):
                        raise TypeError("not an object")
                    out.add(
                        str(_get(record, "eventName", "event_name") or ""),
                        str(_get(record, "traceId", "trace_id") or "").lower(),
                        str(_get(record, "spanId", "span_id") or "").lower(),
                        int(
                            _get(record, "timeUnixNano", "time_unix_nano")
                            or _get(record, "observedTimeUnixNano", "observed_time_unix_nano")
                            or 0
                        ),
                        _json_attributes(record.get("attributes")),
                        _json_value(record["body"]) if record.get("body") is not None else None,
                    )
                except (TypeError, ValueError, AttributeError) as exc:
                    out.reject(f"log record: {exc}")
    return out


class LogJoin:
    """Message events waiting for their span, and model-call spans that may still get events.

    `span_records` stands in for `mapping.span_records` on the trace path, `arrive` takes the
    events of a log export. Both are safe from several threads. The caller writes what `arrive`
    returns in the order it was called (the receiver holds its write lock around `arrive` and the
    write), so two updates of one call land in order; a span's own row, written later, is an
    insert that a stored call ignores, and every update holds all the events seen so far."""

    def __init__(
        self,
        *,
        max_records: int = MAX_RECORDS,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_records = max_records
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held: OrderedDict[Key, tuple[float, list[Event]]] = OrderedDict()
        self._held_count = 0
        self._calls: OrderedDict[Key, tuple[float, Span]] = OrderedDict()
        self.counts: dict[str, int] = defaultdict(int)
        """Log records by result (`RESULTS`)."""

    def span_records(self, span: Span) -> tuple[str, list[Record]]:
        """The span's kind and records, with the message events held for it; a model call that
        has no messages of its own, or took held ones, is kept for events still to come."""
        key = (span.trace_id, span.span_id)
        held = self._take(key) if self._held else []
        if held:
            _join(span, held)
        kind, records = span_records(span)
        if kind != "llm_call" or not (held or _lacks_messages(records)):
            return kind, records
        with self._lock:
            late = self._pop_held(key)  # held while the span was mapped
            self._calls[key] = (self._clock(), span)
            self._calls.move_to_end(key)
            self._expire()
        if late:
            _join(span, late)
            kind, records = span_records(span)
        return kind, records

    def arrive(self, decoded: DecodedLogs) -> list[MadeRecords]:
        """The calls to replace with the events of a log export whose span was seen; the others held."""
        by_span: dict[Key, list[Event]] = defaultdict(list)
        for key, event in decoded.messages:
            by_span[key].append(event)
        spans: list[Span] = []
        with self._lock:
            self.counts["other"] += decoded.other
            self.counts["unplaced"] += decoded.unplaced
            self.counts["rejected"] += decoded.rejected
            now = self._clock()
            for key, events in by_span.items():
                seen = self._calls.get(key)
                if seen is None:
                    first, waiting = self._held.pop(key, (now, []))
                    self._held[key] = (first, waiting + events)
                    self._held_count += len(events)
                    self.counts["held"] += len(events)
                else:
                    self.counts["joined"] += len(events)
                    _join(seen[1], events)
                    spans.append(seen[1])
            self._expire()
        payloads = []
        for span in spans:
            _, records = span_records(span)
            payloads.append(
                MadeRecords([(CALL_UPDATE, row) if kind == "llm_call" else (kind, row) for kind, row in records])
            )
        return payloads

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {**self.counts, "waiting": self._held_count}

    def metrics(self) -> list[str]:
        """Prometheus lines: log records by result, and those held now."""
        snapshot = self.snapshot()
        lines = [
            "# HELP agent_tracer_otlp_log_records_total OTLP log records received at /v1/logs, by what became of them.",
            "# TYPE agent_tracer_otlp_log_records_total counter",
        ]
        lines += [f'agent_tracer_otlp_log_records_total{{result="{name}"}} {snapshot.get(name, 0)}' for name in RESULTS]
        lines += [
            "# HELP agent_tracer_otlp_log_records_waiting GenAI message events held for a span not received yet.",
            "# TYPE agent_tracer_otlp_log_records_waiting gauge",
            f"agent_tracer_otlp_log_records_waiting {snapshot['waiting']}",
        ]
        return lines

    # -- under the lock --------------------------------------------------------------------------

    def _take(self, key: Key) -> list[Event]:
        with self._lock:
            self._expire()
            return self._pop_held(key)

    def _pop_held(self, key: Key) -> list[Event]:
        _, events = self._held.pop(key, (0.0, []))
        self._held_count -= len(events)
        self.counts["joined"] += len(events)
        return events

    def _expire(self) -> None:
        """Drop what waited past the bounds: held events (counted), kept spans (no loss)."""
        oldest = self._clock() - self.max_age_s
        while self._held:
            key, (first, events) = next(iter(self._held.items()))
            if first >= oldest and self._held_count <= self.max_records:
                break
            del self._held[key]
            self._held_count -= len(events)
            self.counts["dropped"] += len(events)
        while self._calls:
            key, (seen, _) = next(iter(self._calls.items()))
            if seen >= oldest and len(self._calls) <= self.max_records:
                break
            del self._calls[key]


def _join(span: Span, events: list[Event]) -> None:
    """Add `events` to the span's, in time order, each once (an exporter's retry sends a batch
    again). A new list, so that a thread mapping the span meanwhile reads a whole one."""
    seen = {_identity(event) for event in span.events}
    added = [event for event in events if _identity(event) not in seen]
    span.events = sorted([*span.events, *added], key=lambda event: event.time_ns)


def _identity(event: Event) -> tuple[str, int, str]:
    return event.name, event.time_ns, fastjson.dumps(event.attributes)


def _lacks_messages(records: list[Record]) -> bool:
    """Whether the model call's row misses its input messages or its answer: a span whose
    messages come as log events."""
    row = next(row for kind, row in records if kind == "llm_call")
    return not (row["request"] or {}).get("messages") or row["response"] is None
