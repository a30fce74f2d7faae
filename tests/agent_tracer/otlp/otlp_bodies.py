"""OTLP export bodies built by hand, for the layouts no installed package emits any more and for
bad input: `span(...)` makes one span as a dict, `protobuf(...)` / `otlp_json(...)` a request;
`log(...)` one log record, `logs_protobuf(...)` / `logs_json(...)` a log export."""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

T0 = 1_767_000_000_000_000_000


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def span(
    name: str,
    attributes: dict[str, Any],
    *,
    trace_id: str,
    span_id: str | None = None,
    parent: str | None = None,
    start: int = 0,
    end: int = 1_000_000,
    events: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "trace_id": trace_id,
        "span_id": span_id or new_span_id(),
        "parent": parent,
        "start": T0 + start,
        "end": T0 + end,
        "attributes": attributes,
        "events": list(events),
        "error": error,
    }


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(_any(item) for item in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(_pairs(value))
        return out
    return AnyValue(string_value=str(value))


def _pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any(value)) for key, value in attributes.items()]


def protobuf(*spans: dict[str, Any]) -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = "hand-written"
    for item in spans:
        out = scope_spans.spans.add()
        out.name = item["name"]
        out.trace_id = bytes.fromhex(item["trace_id"]) if item["trace_id"] else b""
        out.span_id = bytes.fromhex(item["span_id"]) if item["span_id"] else b""
        if item["parent"]:
            out.parent_span_id = bytes.fromhex(item["parent"])
        out.kind = Span.SPAN_KIND_CLIENT
        out.start_time_unix_nano, out.end_time_unix_nano = item["start"], item["end"]
        out.attributes.extend(_pairs(item["attributes"]))
        for event_name, event_attributes in item["events"]:
            event = out.events.add()
            event.name, event.time_unix_nano = event_name, item["start"]
            event.attributes.extend(_pairs(event_attributes))
        if item["error"]:
            out.status.code, out.status.message = Status.STATUS_CODE_ERROR, item["error"]
    return request.SerializeToString()


def _json_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_json_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": _json_value(v)} for k, v in value.items()]}}
    return {"stringValue": str(value)}


def otlp_json(*spans: dict[str, Any]) -> bytes:
    """The same request in OTLP/JSON: hex ids, lowerCamelCase names, 64-bit integers as strings."""
    out = []
    for item in spans:
        entry: dict[str, Any] = {
            "traceId": item["trace_id"],
            "spanId": item["span_id"],
            "name": item["name"],
            "kind": 3,
            "startTimeUnixNano": str(item["start"]),
            "endTimeUnixNano": str(item["end"]),
            "attributes": [{"key": k, "value": _json_value(v)} for k, v in item["attributes"].items()],
            "events": [
                {
                    "name": name,
                    "timeUnixNano": str(item["start"]),
                    "attributes": [{"key": k, "value": _json_value(v)} for k, v in attributes.items()],
                }
                for name, attributes in item["events"]
            ],
        }
        if item["parent"]:
            entry["parentSpanId"] = item["parent"]
        if item["error"]:
            entry["status"] = {"code": 2, "message": item["error"]}
        out.append(entry)
    body = {
        "resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "hand"}, "spans": out}]}]
    }
    return json.dumps(body).encode()


def log(
    name: str, body: Any, *, trace_id: str, span_id: str, at: int = 0, attributes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One log record as a dict: an event `name` (the GenAI ones: `gen_ai.user.message`, ...)."""
    return {
        "name": name,
        "body": body,
        "trace_id": trace_id,
        "span_id": span_id,
        "time": T0 + at,
        "attributes": {"gen_ai.system": "openai", **(attributes or {})},
    }


def logs_protobuf(*records: dict[str, Any]) -> bytes:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    scope_logs.scope.name = "hand-written"
    for item in records:
        out = scope_logs.log_records.add()
        out.event_name = item["name"]
        out.trace_id = bytes.fromhex(item["trace_id"]) if item["trace_id"] else b""
        out.span_id = bytes.fromhex(item["span_id"]) if item["span_id"] else b""
        out.time_unix_nano = out.observed_time_unix_nano = item["time"]
        out.attributes.extend(_pairs(item["attributes"]))
        if item["body"] is not None:
            out.body.CopyFrom(_any(item["body"]))
    return request.SerializeToString()


def logs_json(*records: dict[str, Any]) -> bytes:
    """The same export in OTLP/JSON; an older SDK's form: the event's name in the `event.name` attribute."""
    out = [
        {
            "traceId": item["trace_id"],
            "spanId": item["span_id"],
            "timeUnixNano": str(item["time"]),
            "attributes": [
                {"key": k, "value": _json_value(v)}
                for k, v in {**item["attributes"], "event.name": item["name"]}.items()
            ],
            **({"body": _json_value(item["body"])} if item["body"] is not None else {}),
        }
        for item in records
    ]
    body = {
        "resourceLogs": [
            {"resource": {"attributes": []}, "scopeLogs": [{"scope": {"name": "hand"}, "logRecords": out}]}
        ]
    }
    return json.dumps(body).encode()
