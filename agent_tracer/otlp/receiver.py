"""`POST /v1/traces` and `POST /v1/logs`: the OTLP/HTTP receiver, as Starlette endpoints over one store.

Logs are taken for the GenAI message events some instrumentations send as log records, which
become the messages of their span's model call (`logs.py`). What both answer (the OTLP/HTTP
specification):
- 200 with an `ExportTraceServiceResponse` (`ExportLogsServiceResponse`) in the request's
  encoding (protobuf or JSON), whose `partial_success` gives the spans (log records) it could
  not keep (no valid ids, say) and why;
- 400 for a body that is not an OTLP export of its kind (bad protobuf, JSON without
  `resourceSpans` / `resourceLogs`, broken gzip), with a `google.rpc.Status`-shaped body saying why;
- 413 past `max_body_bytes` (a `Content-Length` that says so is refused before any byte is read;
  a chunked or gzip body is cut off as soon as it passes the limit, so memory stays bounded);
- 415 for a content type other than `application/x-protobuf` or `application/json`, or a content
  encoding other than gzip / identity;
- 503 when the store cannot take the spans and the spill file cannot either (the exporter retries).

Writes go through the capture writer's `BatchWriter` (retries, then the spill file), so a dead
database loses nothing that was answered 200: the answer waits until every span of the request is
written or spilled. With `writer="process"` that writer runs in a child process (`writer_process`,
started by `start` or at the first request) and the spans go to it `CHUNK_SPANS` at a time, so
the child writes one chunk while this process maps the next: two cores work on one request. The
child writes a request's chunks in one transaction and commits it with the last.
Everything is counted (`ReceiverStats`), served as Prometheus text by `agent-tracer collect`'s
`/metrics`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent_tracer.config import TracerConfig
from agent_tracer.errors import ConfigError, OTLPError
from agent_tracer.exporter import BatchWriter, CaptureStats, Store
from agent_tracer.otlp import logs
from agent_tracer.otlp.spans import Decoded, Span, from_json, from_protobuf
from agent_tracer.records import MadeRecords

if TYPE_CHECKING:
    from agent_tracer.writer_process import ProcessExporter

logger = logging.getLogger("agent_tracer.otlp")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
SPAN_KINDS = ("llm_call", "agent_run", "tool_execution", "workflow", "unmapped_span")
CHUNK_SPANS = 64
"""Spans decoded, mapped and handed to the writer process at a time: enough to keep its frames
few, few enough that the child starts writing early in a request of 512 (its transaction is
the request's, whatever the chunks)."""
FIRST_CHUNK_SPANS = 16
"""The first chunk's: the writer process waits for it, idle, so it is small."""


class TooLarge(Exception):
    """The body passed the size limit."""


@dataclass(frozen=True, slots=True)
class Signal:
    """What differs between `/v1/traces` and `/v1/logs`: how a body decodes, what takes it (True:
    neither stored nor spilled), the success answer (an empty protobuf response, imported when
    needed) and its rejected-count field, in protobuf and in JSON."""

    from_json: Callable[[bytes], Any]
    from_protobuf: Callable[[bytes], Any]
    ingest: Callable[[Any], bool]
    answer: Callable[[], Any]
    rejected: str
    rejected_json: str


class ReceiverStats:
    """Counts of requests by answer and of spans by what became of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[int, int] = defaultdict(int)
        self.spans: dict[str, int] = defaultdict(int)
        """llm_call, agent_run, tool_execution, unmapped_span (kept), rejected (not kept)."""

    def request(self, code: int) -> None:
        with self._lock:
            self.requests[code] += 1

    def add_spans(self, counts: dict[str, int]) -> None:
        with self._lock:
            for name, n in counts.items():
                self.spans[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "spans": dict(self.spans)}


class Receiver:
    """Decodes, maps and stores OTLP trace exports; `endpoint` is its Starlette handler."""

    def __init__(
        self,
        config: TracerConfig,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        open_store: Callable[[str], Store] | None = None,
        writer: str = "thread",
    ) -> None:
        """`writer`: "thread" writes in this process, in the request's thread (the UI's and the
        proxy's receivers); "process" in a writer process (`agent-tracer collect`'s default), which
        takes a request's spans a chunk at a time and writes one while this process maps the next:
        faster with a core to spare, more CPU in all (pickling, two processes), so slower when
        other work keeps the cores busy (BENCHMARKS.md, "OTLP ingest"). `open_store`: how the
        writer opens the store (default `TraceStore`); given, the writer is in this process (a
        writer process opens its own)."""
        if writer not in ("process", "thread"):
            raise ConfigError(f"writer must be 'process' or 'thread', got {writer!r}")
        self._in_child = open_store is None and writer == "process"
        if open_store is None:
            from agent_tracer.store import TraceStore

            open_store = TraceStore
        self.max_body_bytes = max_body_bytes
        self.db_url = config.db
        self.stats = ReceiverStats()
        self.writer_stats = CaptureStats()
        self._config = config
        self._open_store = open_store
        self._writer = BatchWriter(config, self.writer_stats, open_store, threading.Event())
        self._child: ProcessExporter | None = None
        self._lock = threading.Lock()
        self._warned_mapping = False
        self.logs = logs.LogJoin()
        self._traces = Signal(
            from_json,
            functools.partial(from_protobuf, lazy=True),  # spans made as `ingest` takes them
            self.ingest,
            _traces_answer,
            "rejected_spans",
            "rejectedSpans",
        )
        self._logs = Signal(
            logs.from_json,
            logs.from_protobuf,
            self.ingest_logs,
            _logs_answer,
            "rejected_log_records",
            "rejectedLogRecords",
        )

    def close(self) -> None:
        """Write or spill what was handed over, stop the writer process, close the store."""
        with self._lock:
            if self._child is not None:
                self._child.shutdown()
                self._child = None
            self._writer.close()

    # -- HTTP ------------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        """`POST /v1/traces`."""
        response = await self._answer(request, self._traces)
        self.stats.request(response.status_code)
        return response

    async def logs_endpoint(self, request: Request) -> Response:
        """`POST /v1/logs`."""
        response = await self._answer(request, self._logs)
        self.stats.request(response.status_code)
        return response

    async def _answer(self, request: Request, signal: Signal) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = media == JSON_TYPE
        if not as_json and media not in PROTOBUF_TYPES:
            return _status(
                415,
                f"unsupported content type {media or '(none)'!r}: send {PROTOBUF_TYPES[0]} or {JSON_TYPE}",
                as_json=True,
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            return _status(415, f"unsupported content encoding {encoding!r}: send gzip or none", as_json)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return _status(413, self._too_large(), as_json, close=True)
        try:
            body = await self._read(request)
            if encoding == "gzip":
                body = self._gunzip(body)
        except TooLarge:
            return _status(413, self._too_large(), as_json, close=True)
        except zlib.error as exc:
            return _status(400, f"the gzip body cannot be decompressed: {exc}", as_json)
        except ClientDisconnect:
            return _status(400, "the client went away before sending the whole body", as_json)
        try:
            decoded = signal.from_json(body) if as_json else signal.from_protobuf(body)
        except OTLPError as exc:
            return _status(400, str(exc), as_json)
        except ImportError:
            return _status(
                415, "protobuf bodies need opentelemetry-proto (pip install 'agent-tracer[otlp]'); send JSON", as_json
            )
        failed = await run_in_threadpool(signal.ingest, decoded)
        if failed:
            return _status(503, "the trace store and the spill file both failed; retry later", as_json)
        return _export_response(decoded, as_json, signal)

    async def _read(self, request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _gunzip(self, body: bytes) -> bytes:
        inflater = zlib.decompressobj(wbits=31)
        out = inflater.decompress(body, self.max_body_bytes + 1)
        if len(out) > self.max_body_bytes or inflater.unconsumed_tail:
            raise TooLarge
        return out + inflater.flush()

    def _too_large(self) -> str:
        return f"the body is larger than this receiver's limit of {self.max_body_bytes} bytes"

    # -- mapping and writing ---------------------------------------------------------------------

    def ingest(self, decoded: Decoded) -> bool:
        """Map and store the spans; return True when they could neither be written nor spilled."""
        counts: dict[str, int] = defaultdict(int)
        child = self._writer_process()
        if child is None:
            chunks = decoded.chunks(CHUNK_SPANS, CHUNK_SPANS)
            payloads = [payload for spans, _ in chunks for payload in self._map(spans, decoded, counts)]
            with self._lock:
                failed = self._write(payloads)
        else:
            with self._lock:  # one request at a time: its drops are the count's rise
                dropped = self.writer_stats.snapshot()["dropped"]
                sent: list[int] = []
                for spans, more in decoded.chunks(FIRST_CHUNK_SPANS, CHUNK_SPANS):
                    payloads = self._map(spans, decoded, counts)
                    if payloads:  # the parts of one request are committed together, once
                        sent.append(child.send(payloads, more=more))  # type: ignore[arg-type]  # MadeRecords is a Payload
                    elif not more and sent:  # the last parts were all rejected: the transaction ends here
                        sent.append(child.send([]))
                child.wait(sent)
                failed = self.writer_stats.snapshot()["dropped"] > dropped
        counts["rejected"] = decoded.rejected
        self.stats.add_spans(counts)
        return failed

    def _map(self, spans: list[Span], decoded: Decoded, counts: dict[str, int]) -> list[MadeRecords]:
        """The spans' records, one payload a span; a span the mapper trips on is rejected."""
        payloads: list[MadeRecords] = []
        for span in spans:
            try:
                kind, records = self.logs.span_records(span)  # with the message events held for it
            except Exception as exc:  # a span the mapper trips on: rejected and counted, the rest kept
                decoded.reject(f"span {span.name!r} could not be mapped ({type(exc).__name__})")
                if not self._warned_mapping:
                    self._warned_mapping = True
                    logger.exception("agent-tracer: an OTLP span could not be mapped; it is rejected")
                continue
            counts[kind] += 1
            payloads.append(MadeRecords(records))
        return payloads

    def start(self) -> None:
        """Start the writer process now (a server at its start), not at the first request, which
        would wait for it."""
        self._writer_process()

    def _writer_process(self) -> ProcessExporter | None:
        """The writer process, started at the first request or by `start`; None: the writer is in
        this process."""
        if not self._in_child or self._child is not None:
            return self._child
        with self._lock:
            if self._child is None and self._in_child:
                from agent_tracer.writer_process import ProcessExporter

                try:
                    self._child = ProcessExporter(self._config, self.writer_stats, self._open_store)
                except OSError as exc:  # no child process here (a sandbox, an embedded interpreter)
                    logger.warning("agent-tracer: cannot start the OTLP writer process (%s); writing here", exc)
                    self._in_child = False
        return self._child

    def ingest_logs(self, decoded: logs.DecodedLogs) -> bool:
        """Join the message events to their calls (replaced when stored), hold the others; return
        True when the replaced calls could neither be written nor spilled. Written in this process
        with either writer: after the 200 of their span's request, so after its call."""
        with self._lock:  # mapped and written in one step: two updates of one call land in order
            return self._write(self.logs.arrive(decoded))

    def _write(self, payloads: list[MadeRecords]) -> bool:
        """Under `_lock`: write through this process's batch writer; True when it dropped any."""
        if not payloads:
            return False
        dropped = self.writer_stats.snapshot()["dropped"]
        self._writer.export(payloads)  # type: ignore[arg-type]  # MadeRecords is a Payload
        return self.writer_stats.snapshot()["dropped"] > dropped

    # -- metrics ---------------------------------------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text: requests by status, spans by fate, the writer's counts."""
        snapshot = self.stats.snapshot()
        lines = [
            "# HELP agent_tracer_otlp_requests_total OTLP export requests answered, by HTTP status.",
            "# TYPE agent_tracer_otlp_requests_total counter",
        ]
        lines += [
            f'agent_tracer_otlp_requests_total{{code="{code}"}} {n}' for code, n in sorted(snapshot["requests"].items())
        ]
        lines += [
            "# HELP agent_tracer_otlp_spans_total Spans received, by what they became (rejected: not kept).",
            "# TYPE agent_tracer_otlp_spans_total counter",
        ]
        lines += [
            f'agent_tracer_otlp_spans_total{{result="{name}"}} {snapshot["spans"].get(name, 0)}'
            for name in (*SPAN_KINDS, "rejected")
        ]
        lines += [
            "# HELP agent_tracer_otlp_store_spans_total The OTLP writer's counts: written, retried, spilled, dropped,"
            " merged (model calls stored once with the transport's copy of the same call).",
            "# TYPE agent_tracer_otlp_store_spans_total counter",
        ]
        lines += [
            f'agent_tracer_otlp_store_spans_total{{stage="{stage}"}} {n}'
            for stage, n in self.writer_stats.snapshot().items()
        ]
        lines += self.logs.metrics()
        return "\n".join(lines) + "\n"


def _export_response(decoded: Decoded | logs.DecodedLogs, as_json: bool, signal: Signal) -> Response:
    message = "; ".join(decoded.reasons) if decoded.rejected else ""
    if as_json:
        body: dict[str, Any] = {}
        if decoded.rejected:
            body["partialSuccess"] = {signal.rejected_json: str(decoded.rejected), "errorMessage": message}
        return Response(json.dumps(body), media_type=JSON_TYPE)
    answer = signal.answer()
    if decoded.rejected:
        setattr(answer.partial_success, signal.rejected, decoded.rejected)
        answer.partial_success.error_message = message
    return Response(answer.SerializeToString(), media_type=PROTOBUF_TYPES[0])


def _traces_answer() -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    return ExportTraceServiceResponse()


def _logs_answer() -> Any:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    return ExportLogsServiceResponse()


_GRPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}
"""HTTP status → google.rpc.Code: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE."""


def _status(code: int, message: str, as_json: bool, close: bool = False) -> Response:
    """An error answer: a `google.rpc.Status` in the request's encoding (as the spec asks)."""
    headers = {"connection": "close"} if close else None
    status = {"code": _GRPC_CODES.get(code, 2), "message": message}
    if not as_json:
        try:
            from google.rpc.status_pb2 import Status
        except ImportError:
            pass
        else:
            return Response(Status(**status).SerializeToString(), code, headers, media_type=PROTOBUF_TYPES[0])
    return Response(json.dumps(status), code, headers, media_type=JSON_TYPE)
