"""`POST /v1/traces` as the OTLP/HTTP specification says: encodings, partial success, bad input
(400), size limits (413), other content types (415), a dead store (spilled, nothing lost), keys,
and counts in `/metrics`."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

pytest.importorskip("opentelemetry.proto")

from google.rpc.status_pb2 import Status  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse  # noqa: E402
from otlp_bodies import new_trace_id, otlp_json, protobuf, span  # noqa: E402
from otlp_loop import CollectProcess  # noqa: E402

from agent_tracer.config import TracerConfig  # noqa: E402
from agent_tracer.errors import TraceNotFound  # noqa: E402
from agent_tracer.otlp.app import create_collect_app  # noqa: E402
from agent_tracer.otlp.receiver import Receiver  # noqa: E402
from agent_tracer.spill import read_spill  # noqa: E402
from agent_tracer.store import TraceStore  # noqa: E402

PB = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
KEY = "otlp-test-key-0123456789abcdef"


def chat_span(trace_id: str, **extra) -> dict:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "stop"}]
        ),
        "gen_ai.usage.input_tokens": 1,
        "gen_ai.usage.output_tokens": 1,
    }
    return span("chat gpt-test", attributes, trace_id=trace_id, **extra)


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


def test_protobuf_json_and_gzip_bodies_are_stored(http, db_url):
    ids = [new_trace_id() for _ in range(3)]
    answers = [
        http.post("/v1/traces", content=protobuf(chat_span(ids[0])), headers=PB),
        http.post("/v1/traces", content=otlp_json(chat_span(ids[1])), headers=JSON),
        http.post(
            "/v1/traces", content=gzip.compress(protobuf(chat_span(ids[2]))), headers={**PB, "content-encoding": "gzip"}
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert not ExportTraceServiceResponse.FromString(answers[0].content).HasField("partial_success")
    assert answers[0].headers["content-type"] == "application/x-protobuf"
    assert answers[1].json() == {}
    with TraceStore(db_url) as store:
        for trace_id in ids:
            detail = store.get_trace(trace_id)
            assert detail.trace.source == "otlp"
            (call,) = detail.calls
            assert call.request["messages"] == [{"role": "user", "content": "Hi"}]
            assert call.response["message"] == {"role": "assistant", "content": "Hello"}
            assert (call.input_tokens, call.output_tokens, call.finish_reasons) == (1, 1, ["stop"])
    assert metrics(http)['agent_tracer_otlp_spans_total{result="llm_call"}'] == 3


def test_spans_without_ids_are_rejected_and_the_rest_kept(http, db_url):
    good = new_trace_id()
    body = protobuf(
        chat_span(good),
        chat_span(""),  # no trace id
        chat_span(new_trace_id(), span_id="0" * 16),  # the invalid all-zero span id
    )
    answer = http.post("/v1/traces", content=body, headers=PB)
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 2 and "trace_id/span_id" in partial.error_message
    json_answer = http.post("/v1/traces", content=otlp_json(chat_span(new_trace_id(), span_id="xyz")), headers=JSON)
    assert json_answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    with TraceStore(db_url) as store:
        assert len(store.get_trace(good).calls) == 1
    counts = metrics(http)
    assert counts['agent_tracer_otlp_spans_total{result="rejected"}'] == 3
    assert counts['agent_tracer_otlp_spans_total{result="llm_call"}'] == 1


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f garbage", PB, "not an OTLP ExportTraceServiceRequest"),
        (b'{"hello": "world"}', JSON, "no resourceSpans"),
        (b"[1, 2, 3]", JSON, "not an object"),
        (b"{not json", JSON, "not JSON"),
        (b"not gzip at all", {**PB, "content-encoding": "gzip"}, "cannot be decompressed"),
    ],
)
def test_a_body_that_is_not_an_otlp_export_is_a_400(http, body, headers, says):
    answer = http.post("/v1/traces", content=body, headers=headers)
    assert answer.status_code == 400
    if headers["content-type"] == "application/json":
        assert says in answer.json()["message"]
    else:
        assert says in Status.FromString(answer.content).message
    assert metrics(http)['agent_tracer_otlp_requests_total{code="400"}'] == 1


def test_other_content_types_and_encodings_are_a_415(http):
    assert http.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    answer = http.post("/v1/traces", content=b"x", headers={**JSON, "content-encoding": "br"})
    assert answer.status_code == 415 and "br" in answer.json()["message"]
    assert metrics(http)['agent_tracer_otlp_requests_total{code="415"}'] == 2


def test_a_body_past_the_limit_is_a_413_even_when_streamed_or_gzipped(http):
    big = b"\0" * (1024 * 1024 + 1)
    assert http.post("/v1/traces", content=big, headers=PB).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off once past the limit
        for _ in range(40):
            yield b"\0" * 65536

    assert http.post("/v1/traces", content=chunks(), headers=PB).status_code == 413
    bomb = gzip.compress(b"\0" * (5 * 1024 * 1024))  # 5 MB of zeros in a few KB
    assert len(bomb) < 64 * 1024
    answer = http.post("/v1/traces", content=bomb, headers={**PB, "content-encoding": "gzip"})
    assert answer.status_code == 413
    assert metrics(http)['agent_tracer_otlp_requests_total{code="413"}'] == 3


def test_a_50_mb_body_is_refused_before_it_is_sent(collector):
    """`agent-tracer collect` answers 413 on the Content-Length alone: the 50 MB never travel."""
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 52428800\r\n\r\n" + b"\0" * 1024
        )
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413")
    assert collector.metrics()['agent_tracer_otlp_requests_total{code="413"}'] >= 1


def test_headers_over_64_kib_are_a_431_from_collect(collector):
    refused = collector.metrics().get('agent_tracer_http_refused_total{code="431"}', 0)
    response = httpx.post(collector.url + "/v1/traces", content=b"", headers={"x-padding": "a" * 100_000})
    assert response.status_code == 431 and "64 KiB" in response.text
    assert httpx.get(collector.url + "/healthz").status_code == 200
    assert collector.metrics()['agent_tracer_http_refused_total{code="431"}'] == refused + 1


def test_spans_of_one_trace_in_several_requests_and_out_of_order_make_one_trace(http, db_url):
    trace_id = new_trace_id()
    root, tool_id = "a" * 16, "b" * 16
    agent = span(
        "invoke_agent planner",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "agent_tracer.tags": ["x", "y"]},
        trace_id=trace_id,
        span_id=root,
        end=9_000_000,
    )
    tool = span(
        "execute_tool search",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"q": "otlp"}',
            "gen_ai.tool.call.result": '{"hits": 3}',
        },
        trace_id=trace_id,
        span_id=tool_id,
        parent=root,
        start=2_000_000,
        end=3_000_000,
    )
    failed_tool = span(
        "execute_tool fetch",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch", "error.type": "TimeoutError"},
        trace_id=trace_id,
        parent=root,
        start=4_000_000,
        error="timed out",
    )
    call = chat_span(trace_id, parent=root, start=1_000_000, end=1_500_000)
    for body in (otlp_json(tool), protobuf(call, failed_tool), protobuf(agent)):  # children first
        assert http.post("/v1/traces", content=body, headers=JSON if body[:1] == b"{" else PB).status_code == 200
    with TraceStore(db_url) as store:
        detail = store.get_trace(trace_id)
    assert (detail.trace.name, detail.trace.status, detail.trace.tags) == ("planner", "ok", ["x", "y"])
    assert [run.name for run in detail.agent_runs] == ["planner"]
    assert [c.parent_span_id for c in detail.calls] == [root]
    assert [(t.name, t.arguments, t.result, t.error) for t in detail.tools] == [
        ("search", {"q": "otlp"}, {"hits": 3}, None),
        ("fetch", None, None, "TimeoutError: timed out"),
    ]
    assert detail.trace.started_at < detail.calls[0].started_at


def test_a_span_in_no_known_layout_is_kept_unmapped_and_counted(http, db_url):
    trace_id = new_trace_id()
    other = span("GET /health", {"http.request.method": "GET", "http.route": "/health"}, trace_id=trace_id)
    assert http.post("/v1/traces", content=protobuf(other), headers=PB).status_code == 200
    with TraceStore(db_url) as store, store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, trace_id, attributes, scope FROM unmapped_spans").all()
        traces = conn.exec_driver_sql("SELECT count(*) FROM traces").scalar()
    assert [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows] == [
        ("GET /health", trace_id, {"http.request.method": "GET", "http.route": "/health"}, "hand-written")
    ]
    assert traces == 0  # an app's other spans do not show up as agent runs
    assert metrics(http)['agent_tracer_otlp_spans_total{result="unmapped_span"}'] == 1


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_dead_store_spills_what_it_accepted(tmp_path, writer):
    """The store is unreachable: the spans are answered 200 and land in the spill file, which
    `traces import --format spill` (here `TraceStore.write`) loads later."""
    spill = tmp_path / "spill.jsonl"
    config = TracerConfig(
        db="postgresql+psycopg://nobody:nothing@127.0.0.1:9/none", spill_path=str(spill), retry_backoff_s=0.01
    )
    receiver = Receiver(config, writer=writer)
    app = Starlette(routes=[Route("/v1/traces", receiver.endpoint, methods=["POST"])])
    trace_id = new_trace_id()
    with TestClient(app) as client:
        assert client.post("/v1/traces", content=protobuf(chat_span(trace_id)), headers=PB).status_code == 200
    assert receiver.writer_stats.snapshot()["spilled"] == 1
    receiver.close()
    with TraceStore(f"sqlite:///{tmp_path / 'later.db'}") as store:
        store.write(read_spill(spill))
        assert store.get_trace(trace_id).calls[0].request_model == "gpt-test"


def test_a_key_is_asked_when_keys_are_given(db_url):
    with TestClient(create_collect_app(db_url, keys=[KEY])) as client:
        body = protobuf(chat_span(new_trace_id()))
        assert client.post("/v1/traces", content=body, headers=PB).status_code == 401
        assert client.get("/metrics").status_code == 401
        answer = client.post("/v1/traces", content=body, headers={**PB, "authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200


def newest_writer_process() -> int:
    """The pid of this process's newest child that runs the writer process (other tests' receivers
    may not have stopped theirs yet)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
            except OSError:
                continue
            if b"agent_tracer.writer_process" in command:
                found.append((started, int(pid)))
    return max(found)[1]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the writer process through /proc")
def test_a_request_is_answered_once_all_its_spans_are_stored_even_when_the_writer_process_dies(db_url, tmp_path):
    """The writer runs in a child process and takes a request's spans a chunk at a time; the 200
    still means every span of the request is in the store. A writer process that dies takes
    nothing with it: the receiver writes in its own process from then on."""
    app = create_collect_app(db_url, spill_path=str(tmp_path / "spill.jsonl"), writer="process")
    first = [new_trace_id() for _ in range(150)]  # more than one chunk
    second = [new_trace_id() for _ in range(70)]
    with TestClient(app) as http:
        answer = http.post("/v1/traces", content=protobuf(*(chat_span(t) for t in first)), headers=PB)
        assert answer.status_code == 200
        with TraceStore(db_url) as store:
            assert store.count_traces() == 150
        os.kill(newest_writer_process(), signal.SIGKILL)
        answer = http.post("/v1/traces", content=protobuf(*(chat_span(t) for t in second)), headers=PB)
        assert answer.status_code == 200
        with TraceStore(db_url) as store:
            assert store.count_traces() == 220
            assert store.get_trace(second[-1]).calls[0].response["message"]["content"] == "Hello"
        assert metrics(http)['agent_tracer_otlp_store_spans_total{stage="written"}'] == 220


def test_collect_masks_what_it_stores(tmp_path):
    """`agent-tracer collect --mask …`: the spans' personal data never reaches the store, its
    search index or the answer's counts' way; the span is stored, masked."""
    url = f"sqlite:///{tmp_path / 'masked.db'}"
    server = CollectProcess(url, "--mask", "default", "--mask", r"ticket=T-\d{6}", "--writer", "thread")
    try:
        trace_id = new_trace_id()
        asked = "Mail jane.doe@example.com about ticket T-204981"
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": asked}]}])
        sent = chat_span(trace_id)
        sent["attributes"]["gen_ai.input.messages"] = messages
        body = protobuf(sent)
        assert httpx.post(server.traces_url, content=body, headers=PB, timeout=30).status_code == 200
    finally:
        server.stop()  # written before it exits
    with TraceStore(url) as store:
        [call] = store.get_trace(trace_id).calls
        assert store.traces(text="jane") == []
    stored = repr((call.request, call.response, call.search_text))
    assert "jane.doe" not in stored and "T-204981" not in stored
    assert "Mail [EMAIL] about ticket [TICKET]" in stored


def test_a_requests_chunks_are_committed_together_by_the_writer_process(db_url, tmp_path):
    """The writer process writes a request's chunks as they come, in one transaction, and commits
    once, with the last: every span is stored when the answer comes, in one write."""
    app = create_collect_app(db_url, spill_path=str(tmp_path / "spill.jsonl"), writer="process")
    traces = [new_trace_id() for _ in range(150)]  # three chunks
    with TestClient(app) as http:
        writes = app.state.receiver.writer_stats.health()["writes"]
        answer = http.post("/v1/traces", content=protobuf(*(chat_span(t) for t in traces)), headers=PB)
        assert answer.status_code == 200
        with TraceStore(db_url) as store:
            assert store.count_traces() == 150
        assert app.state.receiver.writer_stats.health()["writes"] - writes == 1
        assert metrics(http)['agent_tracer_otlp_store_spans_total{stage="written"}'] == 150


def test_a_part_that_fails_takes_the_parts_of_its_transaction_to_the_spill_file_not_away(tmp_path):
    """Parts of one request (`more`) share a transaction; when a part cannot be written, the
    transaction is rolled back and the parts it held are written again with it, by the usual path
    (retries, then the spill file): nothing that was handed over is lost, nothing is half-stored."""
    from agent_tracer.exporter import BatchWriter, CaptureStats
    from agent_tracer.otlp.mapping import span_records
    from agent_tracer.otlp.spans import from_protobuf
    from agent_tracer.records import MadeRecords

    url, spill = f"sqlite:///{tmp_path / 'parts.db'}", tmp_path / "spill.jsonl"
    config = TracerConfig(db=url, spill_path=str(spill), retry_backoff_s=0.01, write_retries=2)
    stats = CaptureStats()
    writer = BatchWriter(config, stats, TraceStore, threading.Event())
    traces = [new_trace_id() for _ in range(30)]
    spans = from_protobuf(protobuf(*(chat_span(t) for t in traces))).spans
    parts = [[MadeRecords(span_records(s)[1]) for s in spans[k : k + 10]] for k in (0, 10, 20)]
    try:
        writer.export(parts[0], more=True)
        with TraceStore(url) as reader:
            assert reader.count_traces() == 0  # not committed yet
        writer.export(parts[1], more=True)
        writer.export(parts[2])
        with TraceStore(url) as reader:
            assert reader.count_traces() == 30
        assert stats.snapshot()["written"] == 30 and stats.health()["writes"] == 1

        more = [new_trace_id() for _ in range(3)]
        good = [MadeRecords(span_records(s)[1]) for s in from_protobuf(protobuf(*(chat_span(t) for t in more))).spans]
        bad = MadeRecords([("llm_call", {"id": "ab" * 8, "trace_id": "cd" * 16, "started_at": "not a time"})])
        writer.export(good[:2], more=True)
        writer.export([bad], more=True)  # the store refuses it: the open transaction is rolled back
        writer.export(good[2:])
    finally:
        writer.close()
    spilled = {row["trace_id"] for kind, row in read_spill(spill) if kind == "llm_call"}
    assert set(more[:2]) <= spilled  # the good parts held with the bad one: spilled, not lost
    with TraceStore(url) as reader:
        assert reader.count_traces() == 31  # the last part, after the failure, written as usual
        reader.get_trace(more[2])
        for trace_id in more[:2]:  # rolled back with the bad part: not half-stored
            with pytest.raises(TraceNotFound):
                reader.get_trace(trace_id)
    assert stats.snapshot()["spilled"] == 3 and stats.snapshot()["dropped"] == 0


def test_a_request_whose_last_chunk_is_all_rejected_is_still_committed_whole(http, db_url):
    """Spans are decoded a chunk at a time as they are mapped: when the request's last chunk holds
    only spans without valid ids, the transaction of its earlier chunks is ended all the same."""
    good = [new_trace_id() for _ in range(20)]
    body = protobuf(*(chat_span(t) for t in good), *(chat_span("") for _ in range(70)))
    answer = http.post("/v1/traces", content=body, headers=PB)
    assert answer.status_code == 200
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 70
    with TraceStore(db_url) as store:
        assert store.count_traces() == 20
    assert metrics(http)['agent_tracer_otlp_store_spans_total{stage="written"}'] == 20


def test_mapped_spans_cross_to_the_writer_process_as_json_and_are_stored_as_they_were_made(tmp_path, stored_rows):
    """The receiver hands mapped spans to its writer process as JSON (`encode_batch`), not pickled:
    what the store keeps from them must be what it keeps from the records themselves (datetimes
    with and without microseconds, floats, every kind of row); values JSON cannot carry as they
    are go pickled."""
    from agent_tracer.otlp.mapping import span_records
    from agent_tracer.otlp.spans import from_protobuf
    from agent_tracer.records import MadeRecords
    from agent_tracer.writer_process import decode_frame, encode_batch

    trace_id, root = new_trace_id(), "a" * 16
    body = protobuf(
        span(
            "invoke_agent helper",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"},
            trace_id=trace_id,
            span_id=root,
            end=2_000_000_000,
        ),
        chat_span(trace_id, parent=root, start=123_456_789),
        span(
            "execute_tool weather",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "weather",
                "gen_ai.tool.call.arguments": '{"city": "Paris", "days": 1.5}',
                "gen_ai.tool.call.result": "sunny",
            },
            trace_id=trace_id,
            parent=root,
            start=1_000_000_000,
            end=1_000_000_000,
        ),
        span("GET /health", {"http.status_code": 200, "ratio": 0.25, "tags": ["a", "b"]}, trace_id=trace_id),
    )
    made = [MadeRecords(span_records(s)[1]) for s in from_protobuf(body).spans]
    frame = encode_batch(7, made, True)
    assert frame[4:5] == b"["  # JSON, not a pickle
    name, seq, crossed, more = decode_frame(frame[4:])
    assert (name, seq, more) == ("batch", 7, True)

    urls = {side: f"sqlite:///{tmp_path / side}.db" for side in ("made", "crossed")}
    for side, payloads in (("made", made), ("crossed", crossed)):
        with TraceStore(urls[side]) as store:
            store.write([record for payload in payloads for record in payload.records()])
    made_rows, crossed_rows = stored_rows(tmp_path / "made.db"), stored_rows(tmp_path / "crossed.db")
    for table, rows in made_rows.items():
        assert rows and rows == crossed_rows[table], table

    odd = MadeRecords([("unmapped_span", {"id": "b" * 16, "trace_id": trace_id, "attributes": {"n": 2**70}})])
    frame = encode_batch(8, [odd], False)
    assert frame[4:5] != b"["  # an integer JSON cannot carry exactly: pickled
    assert decode_frame(frame[4:])[2][0].records() == odd.records()


def test_a_part_whose_rest_never_comes_is_committed_after_a_short_wait(tmp_path):
    """A sender that stalls or dies mid-request leaves its parts in an open transaction, holding
    SQLite's write lock: the writer process commits them once no part came for `HELD_WAIT_S`."""
    from agent_tracer.exporter import CaptureStats
    from agent_tracer.otlp.mapping import span_records
    from agent_tracer.otlp.spans import from_protobuf
    from agent_tracer.records import MadeRecords
    from agent_tracer.writer_process import ProcessExporter

    url = f"sqlite:///{tmp_path / 'stalled.db'}"
    exporter = ProcessExporter(
        TracerConfig(db=url, spill_path=str(tmp_path / "spill.jsonl")), CaptureStats(), TraceStore
    )
    try:
        traces = [new_trace_id() for _ in range(5)]
        part = [MadeRecords(span_records(s)[1]) for s in from_protobuf(protobuf(*(chat_span(t) for t in traces))).spans]
        exporter.wait([exporter.send(part, more=True)])  # acknowledged: committed without the rest
        with TraceStore(url) as store:
            assert store.count_traces() == 5
        writer = TraceStore(url)  # and the write lock is free again
        try:
            writer.write([("trace", {"id": new_trace_id(), "name": "after"})])
        finally:
            writer.close()
    finally:
        exporter.shutdown()
