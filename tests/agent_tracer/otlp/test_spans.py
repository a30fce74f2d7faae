"""Attribute values of every `AnyValue` kind, decoded from protobuf as the mappers read them, and
the same request in OTLP/JSON decoded to the same values."""

from __future__ import annotations

import base64
import json

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agent_tracer.otlp.spans import from_json, from_protobuf


def every_kind() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add()
    scope_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="agent"))
    span = scope_spans.scope_spans.add().spans.add()
    span.name, span.trace_id, span.span_id = "chat", bytes(range(1, 17)), bytes(range(1, 9))
    nested = AnyValue()
    nested.kvlist_value.values.extend(
        [
            KeyValue(key="list", value=AnyValue(array_value={"values": [AnyValue(int_value=1), AnyValue()]})),
            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
        ]
    )
    span.attributes.extend(
        [
            KeyValue(key="text", value=AnyValue(string_value="Paris")),
            KeyValue(key="empty text", value=AnyValue(string_value="")),
            KeyValue(key="flag", value=AnyValue(bool_value=True)),
            KeyValue(key="false", value=AnyValue(bool_value=False)),
            KeyValue(key="count", value=AnyValue(int_value=182)),
            KeyValue(key="zero", value=AnyValue(int_value=0)),
            KeyValue(key="ratio", value=AnyValue(double_value=0.5)),
            KeyValue(key="words", value=AnyValue(array_value={"values": [AnyValue(string_value="a")]})),
            KeyValue(key="tree", value=nested),
            KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x01\x02")),
            KeyValue(key="unset", value=AnyValue()),
        ]
    )
    event = span.events.add(name="gen_ai.choice", time_unix_nano=5)
    event.attributes.add(key="index", value=AnyValue(int_value=0))
    return request


def test_every_kind_of_attribute_value_and_the_defaults_a_oneof_still_carries():
    (decoded,) = from_protobuf(every_kind().SerializeToString()).spans

    assert decoded.attributes == {
        "text": "Paris",
        "empty text": "",
        "flag": True,
        "false": False,
        "count": 182,
        "zero": 0,
        "ratio": 0.5,
        "words": ["a"],
        "tree": {"list": [1, None], "raw": "00ff"},
        "bytes": "0102",
        "unset": None,
    }
    assert decoded.resource == {"service.name": "agent"}
    assert decoded.events[0].attributes == {"index": 0}
    assert (decoded.trace_id, decoded.span_id) == (bytes(range(1, 17)).hex(), bytes(range(1, 9)).hex())


def test_the_same_request_in_otlp_json_decodes_to_the_same_values():
    # OTLP/JSON is protobuf's JSON mapping (bytes as base64, 64-bit integers as strings) but for
    # the trace and span ids, which are hex
    body = MessageToDict(every_kind())
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    for key in ("traceId", "spanId"):
        span[key] = base64.b64decode(span[key]).hex()
    assert span["attributes"][-2]["value"] == {"bytesValue": "AQI="}

    (from_pb,) = from_protobuf(every_kind().SerializeToString()).spans
    (decoded,) = from_json(json.dumps(body).encode()).spans

    assert decoded.attributes == from_pb.attributes
    assert decoded.attributes["bytes"] == "0102" and decoded.attributes["tree"]["raw"] == "00ff"
    assert (decoded.resource, decoded.events[0].attributes) == (from_pb.resource, from_pb.events[0].attributes)
    assert (decoded.trace_id, decoded.span_id) == (from_pb.trace_id, from_pb.span_id)
