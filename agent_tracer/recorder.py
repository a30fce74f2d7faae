"""One model call seen on the wire: request bytes in, response bytes out, one payload (and a span).

Both capture paths drive a `CallRecorder`: the httpx transport wrapper (`capture.py`) in the agent's
process, and the proxy in front of the model API. The agent's thread does as little as it can: it
keeps the bytes, reads the clock, and parses a server-sent event stream only until its first token
(so time to first token is real); decoding into the canonical call happens on the writer thread
(`decode.py`). Only when spans go somewhere (the app's own TracerProvider, or an OTLP exporter) is
the call decoded here, so that the span carries the GenAI attributes when it ends.

Nothing here may raise into the agent: the `*_safely` methods count and log what goes wrong.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agent_tracer import semconv
from agent_tracer.canonical import CanonicalRequest, Codec, StreamAccumulator
from agent_tracer.decode import DecodedCall, decode_call, decode_request
from agent_tracer.records import LLMCallPayload, RunLabels, SpanIds
from agent_tracer.redact import safe_endpoint, scrub_text
from integrations.sse import SSEDecoder

if TYPE_CHECKING:
    from agent_tracer.runtime import Runtime

Decoder = Callable[[bytes], bytes]
"""A content decoder (gzip, deflate): compressed chunk in, plain bytes out."""


class CallRecorder:
    __slots__ = (
        "_runtime",
        "codec",
        "request",
        "raw_request",
        "endpoint",
        "source",
        "route",
        "span",
        "_ids",
        "_started_ns",
        "_t0",
        "_first",
        "http_status",
        "_decoder",
        "_sse",
        "_acc",
        "_chunks",
        "_finished",
        "_streamed",
        "_labels",
        "fallback_reason",
    )

    def __init__(
        self,
        runtime: Runtime,
        codec: Codec,
        url: str,
        body: bytes,
        *,
        source: str,
        route: str | None = None,
        context: Context | None = None,
        labels: RunLabels | None = None,
    ) -> None:
        """`context` holds the parent span when it is not the current one (the proxy's client
        named its run in headers); `labels` name and tag the trace.

        With spans on, raises what the codec raises on a body not of its format (the caller
        then lets the call through unrecorded); without, such a body is found on the writer."""
        self._runtime = runtime
        self.codec = codec
        self.raw_request = body
        self.endpoint = safe_endpoint(url)
        self.source = source
        self.route = route
        self.fallback_reason: str | None = None
        """Why the router asked the fallback (see `proxy/router.py`), set before the call ends."""
        self._labels = labels
        self.http_status: int | None = None
        self._decoder: Decoder | None = None
        self._sse: SSEDecoder | None = None
        self._acc: StreamAccumulator | None = None
        self._streamed = False
        self._chunks: list[bytes] = []
        self._first: float | None = None
        self._finished = False
        self._started_ns = time.time_ns()
        self._t0 = time.perf_counter()
        self.request: CanonicalRequest | None = None
        self.span: Span | None = None
        if runtime.spans_wanted:
            self.request = decode_request(codec, body)
            self.span = runtime.tracer.start_span(
                f"{codec.operation} {self.request.model}" if self.request.model else codec.operation,
                context=context,
                kind=SpanKind.CLIENT,
                attributes=self._request_attributes(self.request),
            )
            ctx = self.span.get_span_context()
            parent = getattr(self.span, "parent", None)
            trace_id, span_id = ctx.trace_id, ctx.span_id
            parent_id = parent.span_id if parent else None
        else:  # nobody receives spans: the ids a span would have had, without the span
            current = trace.get_current_span(context).get_span_context()
            parent_id = current.span_id if current.is_valid else None
            trace_id = current.trace_id if current.is_valid else random.getrandbits(128)
            span_id = random.getrandbits(64)
        self._ids = SpanIds(
            trace_id=f"{trace_id:032x}",
            span_id=f"{span_id:016x}",
            parent_span_id=f"{parent_id:016x}" if parent_id else None,
        )
        runtime.wire_calls.add(trace.get_current_span(context))  # last: only a call that is recorded

    @property
    def trace_id(self) -> str:
        """The call's trace id, 32 hex characters."""
        return self._ids.trace_id

    # -- response side

    def response_started(self, status: int, content_type: str, decoder: Decoder | None = None) -> None:
        self.http_status = status
        self._decoder = decoder
        if status < 400 and content_type.startswith("text/event-stream"):
            self._streamed = True
            self._sse = SSEDecoder()
            self._acc = self.codec.stream_accumulator()

    def feed_safely(self, chunk: bytes) -> None:
        """Take one chunk of the response body, as the agent reads it; parse events until the
        first token (the writer decodes the whole body later)."""
        try:
            if self._decoder is not None:
                chunk = self._decoder(chunk)
            self._chunks.append(chunk)
            if self._sse is not None and self._acc is not None:
                for event, data in self._sse.feed(chunk):
                    if self._acc.add(event, data):
                        self._first = time.perf_counter()
                        self._sse = self._acc = None
                        break
        except Exception as exc:  # a stream we cannot parse: keep the bytes, stop parsing
            self._sse = self._acc = None
            self._runtime.capture_failed("parsing a response stream", exc)

    def finish_safely(self, ending: str, error: BaseException | str | None = None) -> None:
        """Submit the call (and end its span), once: the first ending wins (exhausted, closed,
        broken, collected)."""
        if self._finished:
            return
        self._finished = True
        try:
            self._finish(ending, error)
        except Exception as exc:
            self._runtime.capture_failed("recording a model call", exc)

    def _finish(self, ending: str, error: BaseException | str | None) -> None:
        ended_ns = time.time_ns()
        latency_ms = (time.perf_counter() - self._t0) * 1000
        error_text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        payload = LLMCallPayload(
            ids=self._ids,
            codec=self.codec,
            endpoint=self.endpoint,
            raw_request=self.raw_request,
            raw_response=b"".join(self._chunks),
            streamed=self._streamed,
            ending=ending,
            http_status=self.http_status,
            error=error_text,
            started_ns=self._started_ns,
            ended_ns=ended_ns,
            latency_ms=latency_ms,
            ttft_ms=(self._first - self._t0) * 1000 if self._first is not None else None,
            source=self.source,
            route=self.route,
            fallback_reason=self.fallback_reason,
            labels=self._labels,
        )
        if self.span is not None:
            payload.decoded = decode_call(
                self.codec,
                payload.raw_request,
                payload.raw_response,
                sse=self._streamed,
                ending=ending,
                http_status=self.http_status,
                error=error_text,
                request=self.request,
            )
            self._end_span(self.span, payload.decoded, error)
        self._runtime.submit(payload)

    # -- span attributes

    def _request_attributes(self, request: CanonicalRequest) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: self.codec.operation,
            semconv.GEN_AI_PROVIDER_NAME: self.codec.provider,
            semconv.AGENT_TRACER_API: self.codec.api,
            semconv.AGENT_TRACER_STREAMED: request.stream,
        }
        if request.model:
            attrs[semconv.GEN_AI_REQUEST_MODEL] = request.model
        for name, attribute in semconv.REQUEST_PARAM_ATTRIBUTES.items():
            value = request.params.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[attribute] = value
        stop = request.params.get("stop")
        if stop:
            attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop] if isinstance(stop, str) else list(stop)
        host, _, port = self.endpoint.split("://", 1)[-1].split("/", 1)[0].partition(":")
        attrs[semconv.SERVER_ADDRESS] = host
        if port:
            attrs[semconv.SERVER_PORT] = int(port)
        if self.route:
            attrs[semconv.AGENT_TRACER_ROUTE] = self.route
        if self._labels is not None:
            if self._labels.name:
                attrs[semconv.GEN_AI_AGENT_NAME] = self._labels.name
            if self._labels.tags:
                attrs[semconv.AGENT_TRACER_TAGS] = self._labels.tags
        if self._runtime.config.capture_content:
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = _dumps(_semconv_messages(request.messages))
            if request.tools:
                attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = _dumps(request.tools)
        return attrs

    def _end_span(self, span: Span, decoded: DecodedCall, error: BaseException | str | None) -> None:
        response, status = decoded.response, decoded.status
        if self.http_status is not None:
            span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, self.http_status)
        span.set_attribute(semconv.AGENT_TRACER_CALL_STATUS, status)
        if self.fallback_reason:
            span.set_attribute(semconv.AGENT_TRACER_FALLBACK_REASON, self.fallback_reason)
        if response is not None:
            attrs: dict[str, Any] = {}
            if response.id:
                attrs[semconv.GEN_AI_RESPONSE_ID] = response.id
            if response.model:
                attrs[semconv.GEN_AI_RESPONSE_MODEL] = response.model
            if response.finish_reasons:
                attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
            if response.input_tokens is not None:
                attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = response.input_tokens
            if response.output_tokens is not None:
                attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = response.output_tokens
            if self._first is not None:
                attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first - self._t0
            if self._runtime.config.capture_content:
                attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = _dumps(_semconv_messages([response.message]))
            span.set_attributes(attrs)
        if status == "error":
            if isinstance(error, BaseException):
                error_type = type(error).__qualname__
            else:
                error_type = str(self.http_status) if self.http_status else "error"
            span.set_attribute(semconv.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, scrub_text(decoded.error or error_type)[:500]))
        span.end()


class WireCalls:
    """The spans model calls were recorded in on the wire (the span current when the request
    went out, and that span's parent), for the in-process span processors
    (`frameworks/otel_spans.py`): a framework's chat span found here was recorded by the
    transport too, with its whole bodies, so the processor does not store it a second time.

    A span is added when its call's request starts, so always before the span ends, whatever
    the order of the response's end and the span's. Bounded: past `limit` the oldest go (the
    spans of calls no framework reported, say a `@trace_agent`'s)."""

    def __init__(self, limit: int = 16_384) -> None:
        self._limit = limit
        # An OrderedDict, not a dict: dropping the oldest of a plain dict (`next(iter(d))`) walks
        # the deleted slots at its front, 10 µs and more a call once the limit is reached.
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, span: Any) -> None:
        ids = [span.get_span_context().span_id]
        parent = getattr(span, "parent", None)  # an SDK span's parent: a client span may sit in between
        if parent is not None:
            ids.append(parent.span_id)
        with self._lock:
            for span_id in ids:
                if span_id:
                    self._ids[span_id] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def take(self, span_id: int) -> bool:
        """Whether a call was recorded in the span `span_id`; forgets it."""
        with self._lock:
            if span_id not in self._ids:
                return False
            del self._ids[span_id]
            return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _semconv_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as the GenAI conventions want them: role plus a list of typed parts."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        content = message.get("content")
        if message.get("role") == "tool":
            parts.append({"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content})
        elif isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            parts.extend(
                {"type": "text", "content": p.get("text")} if p.get("type") == "text" else p
                for p in content
                if isinstance(p, dict)
            )
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        out.append({"role": message.get("role"), "parts": parts})
    return out


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, or None outside any recording span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
