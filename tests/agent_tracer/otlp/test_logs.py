"""`POST /v1/logs`: GenAI message events sent as log records become the messages of their span's
model call, whether they come after the span (the stored call is replaced, and found by search),
before it (held, bounded and counted), or both; other log records are acknowledged and counted;
bad bodies get the answers `/v1/traces` gives."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

pytest.importorskip("opentelemetry.proto")

from google.rpc.status_pb2 import Status  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse  # noqa: E402
from otlp_bodies import log, logs_json, logs_protobuf, new_span_id, new_trace_id, protobuf, span  # noqa: E402

from agent_tracer.config import TracerConfig  # noqa: E402
from agent_tracer.otlp.app import create_collect_app  # noqa: E402
from agent_tracer.otlp.logs import LogJoin  # noqa: E402
from agent_tracer.otlp.receiver import Receiver  # noqa: E402
from agent_tracer.spill import read_spill  # noqa: E402
from agent_tracer.store import TraceStore  # noqa: E402

PB = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'otlp.db'}"


@pytest.fixture
def http(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    app = create_collect_app(db_url, spill_path=str(tmp_path / "spill.jsonl"), max_body_bytes=1024 * 1024)
    with TestClient(app) as client:
        yield client


def metrics(http: TestClient) -> dict[str, float]:
    lines = http.get("/metrics").text.splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and line[0] != "#"}


def logged(http: TestClient, result: str) -> float:
    return metrics(http)[f'agent_tracer_otlp_log_records_total{{result="{result}"}}']


def bare_chat_span(trace_id: str, span_id: str) -> dict:
    """A model-call span as openai-v2 makes it: model, tokens, finish reasons, no messages."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.response.model": "gpt-test",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ["tool_calls"],
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
    }
    return span("chat gpt-test", attributes, trace_id=trace_id, span_id=span_id)


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def conversation(trace_id: str, span_id: str) -> list[dict]:
    """The log events of one call: system, user, an earlier tool round, and the choice."""
    ids = {"trace_id": trace_id, "span_id": span_id}
    return [
        log("gen_ai.system.message", {"content": "You answer about weather."}, at=1, **ids),
        log("gen_ai.user.message", {"content": "Weather in Paris?"}, at=2, **ids),
        log("gen_ai.assistant.message", {"tool_calls": [CALL]}, at=3, **ids),
        log("gen_ai.tool.message", {"content": "sunny", "id": "call_1"}, at=4, **ids),
        log(
            "gen_ai.choice",
            {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [CALL]}},
            at=5,
            **ids,
        ),
    ]


MESSAGES = [
    {"role": "system", "content": "You answer about weather."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
]


def stored_call(db_url: str, trace_id: str):
    with TraceStore(db_url) as store:
        (call,) = store.get_trace(trace_id).calls
    return call


def searched(db_url: str, text: str) -> list[str]:
    with TraceStore(db_url) as store:
        return [trace.id for trace in store.traces(text=text)]


def test_logs_after_their_span_become_the_stored_calls_messages(http, db_url):
    trace_id, span_id = new_trace_id(), new_span_id()
    assert http.post("/v1/traces", content=protobuf(bare_chat_span(trace_id, span_id)), headers=PB).status_code == 200
    assert stored_call(db_url, trace_id).request["messages"] == []
    assert searched(db_url, "Paris") == []  # the call is in the full-text index now, without words
    events = conversation(trace_id, span_id)
    answer = http.post("/v1/logs", content=logs_protobuf(*events), headers=PB)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(answer.content).HasField("partial_success")
    assert http.post("/v1/logs", content=logs_protobuf(*events), headers=PB).status_code == 200  # a retry
    call = stored_call(db_url, trace_id)
    assert call.request["messages"] == MESSAGES
    assert call.response["message"] == {"role": "assistant", "content": None, "tool_calls": [CALL]}
    assert (call.finish_reasons, call.tool_names, call.response_id) == (["tool_calls"], ["get_weather"], "chatcmpl-1")
    assert (call.input_tokens, call.output_tokens) == (12, 3)
    assert searched(db_url, "Paris") == [trace_id]
    assert logged(http, "joined") == 10 and logged(http, "held") == 0


def test_logs_before_their_span_are_held_until_it_comes(http, db_url):
    trace_id, span_id = new_trace_id(), new_span_id()
    assert http.post("/v1/logs", content=logs_json(*conversation(trace_id, span_id)), headers=JSON).json() == {}
    assert metrics(http)["agent_tracer_otlp_log_records_waiting"] == 5
    with TraceStore(db_url) as store:
        assert store.count_traces() == 0  # nothing stored without the span
    assert http.post("/v1/traces", content=protobuf(bare_chat_span(trace_id, span_id)), headers=PB).status_code == 200
    call = stored_call(db_url, trace_id)
    assert call.request["messages"] == MESSAGES
    assert call.response["message"]["tool_calls"] == [CALL]
    counts = metrics(http)
    assert counts["agent_tracer_otlp_log_records_waiting"] == 0
    assert (logged(http, "held"), logged(http, "joined"), logged(http, "dropped")) == (5, 5, 0)


def test_logs_on_both_sides_of_their_span_all_join_it(http, db_url):
    """A batching exporter may send a call's input messages before its span and the choice after."""
    trace_id, span_id = new_trace_id(), new_span_id()
    *inputs, choice = conversation(trace_id, span_id)
    assert http.post("/v1/logs", content=logs_protobuf(*inputs[:2]), headers=PB).status_code == 200
    assert http.post("/v1/traces", content=protobuf(bare_chat_span(trace_id, span_id)), headers=PB).status_code == 200
    assert http.post("/v1/logs", content=logs_json(choice, *inputs[2:]), headers=JSON).status_code == 200
    call = stored_call(db_url, trace_id)
    assert call.request["messages"] == MESSAGES  # in the events' time order
    assert call.response["message"]["tool_calls"] == [CALL]


def test_other_log_records_are_acknowledged_and_counted_not_stored(http, db_url):
    trace_id, span_id = new_trace_id(), new_span_id()
    records = [
        log("app.started", "hello", trace_id=trace_id, span_id=span_id),
        log("", "a plain log line", trace_id=trace_id, span_id=span_id),
        log("gen_ai.user.message", {"content": "no span"}, trace_id="", span_id=""),
    ]
    assert http.post("/v1/logs", content=logs_protobuf(*records), headers=PB).status_code == 200
    broken = b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [42, {"timeUnixNano": "soon"}]}]}]}'
    answer = http.post("/v1/logs", content=broken, headers=JSON)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedLogRecords"] == "2"
    assert (logged(http, "other"), logged(http, "unplaced"), logged(http, "rejected")) == (2, 1, 2)
    assert metrics(http)["agent_tracer_otlp_log_records_waiting"] == 0
    with TraceStore(db_url) as store:
        assert store.count_traces() == 0


def test_held_logs_past_the_bounds_are_dropped_and_counted(http, db_url):
    now = [0.0]
    http.app.state.receiver.logs = LogJoin(max_records=4, max_age_s=60, clock=lambda: now[0])
    first, second = (new_trace_id(), new_span_id()), (new_trace_id(), new_span_id())
    assert http.post("/v1/logs", content=logs_protobuf(*conversation(*first)[:3]), headers=PB).status_code == 200
    assert http.post("/v1/logs", content=logs_protobuf(*conversation(*second)[:3]), headers=PB).status_code == 200
    assert logged(http, "dropped") == 3  # past 4 held: the oldest span's events go
    now[0] = 61.0
    assert http.post("/v1/traces", content=protobuf(bare_chat_span(*second)), headers=PB).status_code == 200
    assert logged(http, "dropped") == 6  # past the age: the rest go too
    assert metrics(http)["agent_tracer_otlp_log_records_waiting"] == 0
    assert stored_call(db_url, second[0]).request["messages"] == []


def test_a_dead_store_spills_the_replaced_call_too(tmp_path):
    """The store is unreachable: the span and then its logs are answered 200, and loading the spill
    file later gives the call with its messages."""
    spill = tmp_path / "spill.jsonl"
    config = TracerConfig(
        db="postgresql+psycopg://nobody:nothing@127.0.0.1:9/none", spill_path=str(spill), retry_backoff_s=0.01
    )
    receiver = Receiver(config)
    app = Starlette(
        routes=[
            Route("/v1/traces", receiver.endpoint, methods=["POST"]),
            Route("/v1/logs", receiver.logs_endpoint, methods=["POST"]),
        ]
    )
    trace_id, span_id = new_trace_id(), new_span_id()
    with TestClient(app) as client:
        assert (
            client.post("/v1/traces", content=protobuf(bare_chat_span(trace_id, span_id)), headers=PB).status_code
            == 200
        )
        assert (
            client.post("/v1/logs", content=logs_protobuf(*conversation(trace_id, span_id)), headers=PB).status_code
            == 200
        )
    url = f"sqlite:///{tmp_path / 'later.db'}"
    with TraceStore(url) as store:
        store.write(read_spill(spill))
    assert stored_call(url, trace_id).request["messages"] == MESSAGES


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f garbage", PB, "not an OTLP ExportLogsServiceRequest"),
        (b'{"resourceSpans": []}', JSON, "no resourceLogs"),
        (b"[1, 2, 3]", JSON, "not an object"),
        (b"{not json", JSON, "not JSON"),
        (b"not gzip at all", {**PB, "content-encoding": "gzip"}, "cannot be decompressed"),
    ],
)
def test_a_body_that_is_not_an_otlp_log_export_is_a_400(http, body, headers, says):
    answer = http.post("/v1/logs", content=body, headers=headers)
    assert answer.status_code == 400
    if headers["content-type"] == "application/json":
        assert says in answer.json()["message"]
    else:
        assert says in Status.FromString(answer.content).message


def test_other_content_types_and_bodies_past_the_limit_on_v1_logs(http):
    assert http.post("/v1/logs", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert http.post("/v1/logs", content=b"x", headers={**JSON, "content-encoding": "br"}).status_code == 415
    assert http.post("/v1/logs", content=b"\0" * (1024 * 1024 + 1), headers=PB).status_code == 413
    bomb = gzip.compress(b"\0" * (5 * 1024 * 1024))
    assert http.post("/v1/logs", content=bomb, headers={**PB, "content-encoding": "gzip"}).status_code == 413
    counts = metrics(http)
    assert counts['agent_tracer_otlp_requests_total{code="415"}'] == 2
    assert counts['agent_tracer_otlp_requests_total{code="413"}'] == 2
