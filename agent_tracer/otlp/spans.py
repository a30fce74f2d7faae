"""OTLP trace requests, protobuf or OTLP/JSON, as plain `Span` objects the mappers read.

Both encodings become the same `Span`: ids as lower-case hex (32 characters for a trace, 16 for a
span), attribute values as Python values (an `AnyValue` array a list, a kvlist a dict, bytes as
hex), times in epoch nanoseconds. OTLP/JSON differs from protobuf's own JSON mapping in two ways
that matter here (the OTLP specification, "JSON Protobuf Encoding"): ids are hex strings, not
base64, and enums are integers; field names may be lowerCamelCase or snake_case, and 64-bit integers
may be strings or numbers. A span without a valid trace or span id cannot be placed in any trace:
it is counted as rejected (`Decoded.rejected`), and the rest of the request is kept.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agent_tracer.errors import OTLPError

SPAN_KINDS = {0: None, 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_ERROR = 2
"""`Status.code` of a span that failed (0: unset, 1: ok)."""


@dataclass(slots=True)
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None


@dataclass(slots=True)
class Decoded:
    spans: list[Span]
    rejected: int = 0
    """Spans that could not be kept (no valid trace or span id)."""
    reasons: list[str] = field(default_factory=list)
    """Why, one line each (the first few), for the response's error message."""
    unmade: list[tuple[Any, dict[str, Any], str | None]] | None = None
    """`from_protobuf(..., lazy=True)`: the request's spans not made into `Span`s yet (each with
    its resource's attributes and its scope's name), made as `chunks` takes them; `spans` stays
    empty, so each chunk's spans are freed once its caller is done with them."""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < 3:
            self.reasons.append(reason)

    def chunks(self, first: int, size: int) -> Iterator[tuple[list[Span], bool]]:
        """The spans, `first` and then `size` at a time, each chunk with whether more follow.
        Lazy, the spans of each chunk are made when it is taken: a receiver that writes one chunk
        while it maps the next starts writing after one chunk is decoded, not the whole request
        (about a tenth of a request's time, BENCHMARKS.md "OTLP ingest")."""
        items: list[Any] = self.spans if self.unmade is None else self.unmade
        start, step = 0, first
        while start < len(items):
            chunk = items[start : start + step]
            start, step = start + step, size
            yield (chunk if self.unmade is None else self._made(chunk)), start < len(items)

    def _made(self, unmade: list[tuple[Any, dict[str, Any], str | None]]) -> list[Span]:
        return [span for item in unmade if (span := _pb_span(self, *item)) is not None]


# ------------------------------------------------------------------------------------------------
# protobuf


def from_protobuf(body: bytes, *, lazy: bool = False) -> Decoded:
    """An `ExportTraceServiceRequest` in protobuf's binary encoding; `OTLPError` when it is not one.
    `lazy`: the body is parsed (and refused) whole, but its spans are made as `Decoded.chunks`
    takes them."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OTLPError(f"not an OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
    unmade: list[tuple[Any, dict[str, Any], str | None]] = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            unmade.extend((span, resource, scope) for span in scope_spans.spans)
    out = Decoded([], unmade=unmade if lazy else None)
    if not lazy:
        out.spans = out._made(unmade)
    return out


def _pb_span(out: Decoded, span: Any, resource: dict[str, Any], scope: str | None) -> Span | None:
    """A protobuf span as a `Span`; None, counted in `out` as rejected, without valid ids."""
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    if not _valid(trace_id, 32) or not _valid(span_id, 16):
        out.reject(f"span {span.name!r} has no valid trace_id/span_id")
        return None
    parent = span.parent_span_id.hex()
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent if _valid(parent, 16) else None,
        name=span.name,
        kind=SPAN_KINDS.get(span.kind),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
        attributes=_pb_attributes(span.attributes),
        events=[Event(event.name, event.time_unix_nano, _pb_attributes(event.attributes)) for event in span.events],
        status_code=span.status.code,
        status_message=span.status.message,
        resource=resource,
        scope=scope,
    )


_ARRAY, _KVLIST = 5, 6
"""`AnyValue`'s field numbers of an array and a key-value list; below them the values read as they
are (string 1, bool 2, int 3, double 4), above them bytes (7)."""


def _pb_attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value) for pair in pairs}


def _pb_value(value: Any) -> Any:
    # `ListFields` names the value's one set field in one call: half the cost of `WhichOneof` and
    # a `getattr` (an attribute's decoding was most of a span's). A oneof member set to its
    # default (0, "", False) is listed all the same.
    fields = value.ListFields()
    if not fields:
        return None
    field, item = fields[0]
    return item if field.number < _ARRAY else _pb_nested(field.number, item)


def _pb_nested(number: int, item: Any) -> Any:
    """An array, a key-value list or bytes (as hex)."""
    if number == _ARRAY:
        return [_pb_value(value) for value in item.values]
    if number == _KVLIST:
        return _pb_attributes(item.values)
    return item.hex()


# ------------------------------------------------------------------------------------------------
# OTLP/JSON


def json_export(body: bytes, key: str, signal: str) -> list[dict[str, Any]]:
    """The resource items (`resourceSpans`, `resourceLogs`: `key`, or its snake_case) of an OTLP/JSON
    export of `signal` ("trace", "log"); `OTLPError` when the body is not JSON, not an object, has
    no such list, or an item is not an object."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise OTLPError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OTLPError(f"not an OTLP {signal} export: the JSON body is not an object")
    items = _get(document, key, re.sub("([A-Z])", r"_\1", key).lower())
    if not isinstance(items, list):
        raise OTLPError(f"not an OTLP {signal} export: no {key} list")
    if not all(isinstance(item, dict) for item in items):
        raise OTLPError(f"not an OTLP {signal} export: a {key} item is not an object")
    return items


def from_json(body: bytes) -> Decoded:
    """An `ExportTraceServiceRequest` in OTLP/JSON; `OTLPError` when the body is not JSON, or not
    an object with a `resourceSpans` list."""
    out = Decoded([])
    for item in json_export(body, "resourceSpans", "trace"):
        resource = _json_attributes((_get(item, "resource") or {}).get("attributes"))
        for scope_spans in _list(_get(item, "scopeSpans", "scope_spans")):
            scope_name = (
                ((_get(scope_spans, "scope") or {}).get("name") or None) if isinstance(scope_spans, dict) else None
            )
            for span in _list(_get(scope_spans, "spans") if isinstance(scope_spans, dict) else None):
                try:
                    parsed = _json_span(span, resource, scope_name)
                except (TypeError, ValueError, AttributeError) as exc:
                    name = span.get("name") if isinstance(span, dict) else None
                    out.reject(f"span {name!r}: {exc}")
                    continue
                out.spans.append(parsed)
    return out


def _json_span(span: Any, resource: dict[str, Any], scope: str | None) -> Span:
    if not isinstance(span, dict):
        raise TypeError("not an object")
    trace_id = str(_get(span, "traceId", "trace_id") or "").lower()
    span_id = str(_get(span, "spanId", "span_id") or "").lower()
    if not _valid(trace_id, 32) or not _valid(span_id, 16):
        raise ValueError("no valid traceId/spanId (hex)")
    parent = str(_get(span, "parentSpanId", "parent_span_id") or "").lower()
    status = _get(span, "status") or {}
    start = int(_get(span, "startTimeUnixNano", "start_time_unix_nano") or 0)
    end = int(_get(span, "endTimeUnixNano", "end_time_unix_nano") or 0) or start
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent if _valid(parent, 16) else None,
        name=str(span.get("name") or ""),
        kind=SPAN_KINDS.get(int(span.get("kind") or 0)),
        start_ns=start,
        end_ns=end,
        attributes=_json_attributes(span.get("attributes")),
        events=[
            Event(
                str(event.get("name") or ""),
                int(_get(event, "timeUnixNano", "time_unix_nano") or 0),
                _json_attributes(event.get("attributes")),
            )
            for event in _list(span.get("events"))
            if isinstance(event, dict)
        ],
        status_code=int(status.get("code") or 0),
        status_message=str(status.get("message") or ""),
        resource=resource,
        scope=scope,
    )


def _json_attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in _list(pairs):
        if isinstance(pair, dict) and isinstance(pair.get("key"), str):
            out[pair["key"]] = _json_value(pair.get("value"))
    return out


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            return int(value[key])
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [_json_value(item) for item in _list((value[key] or {}).get("values"))]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return _json_attributes((value[key] or {}).get("values"))
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return _json_bytes(value[key])
    return None


def _json_bytes(text: Any) -> Any:
    """OTLP/JSON carries bytes as base64 (protobuf's JSON mapping; only ids are hex): as hex, like
    protobuf's bytes. Text that is not base64 is kept as it came."""
    if not isinstance(text, str):
        return text
    try:
        return base64.b64decode(
            text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None, validate=True
        ).hex()
    except ValueError:
        return text


def _get(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _valid(hex_id: str, length: int) -> bool:
    """A hex id of the right length that is not all zeros (OTLP's "invalid" id)."""
    if len(hex_id) != length or hex_id == "0" * length:
        return False
    try:
        int(hex_id, 16)
    except ValueError:
        return False
    return True
