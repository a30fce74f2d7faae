"""One model call seen on the wire: request bytes in, response bytes out, one span, one payload.

Both capture paths drive a `CallRecorder`: the httpx transport wrapper (`capture.py`) in the agent's
process, and the proxy in front of the model API. It decodes the request with the wire format's
codec, opens a CLIENT span, parses the response as the agent reads it (server-sent events go through
the codec's stream accumulator chunk by chunk, so time to first token is real), and on `finish`
ends the span exactly once and hands a payload to the writer.

Nothing here may raise into the agent: the `*_safely` methods count and log what goes wrong.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent_tracer import semconv
from agent_tracer.canonical import Codec, CanonicalRequest, CanonicalResponse
from agent_tracer.records import LLMCallPayload, SpanIds
from agent_tracer.redact import safe_endpoint, scrub_text
from integrations.sse import SSEDecoder

if TYPE_CHECKING:
    from agent_tracer.runtime import Runtime

logger = logging.getLogger("agent_tracer")

Decoder = Callable[[bytes], bytes]
"""A content decoder (gzip, deflate): compressed chunk in, plain bytes out."""

# What finish() is told about how the response body ended.
COMPLETE, FAILED, INCOMPLETE = "complete", "failed", "incomplete"


class CallRecorder:
    __slots__ = (
        "_runtime", "codec", "request", "raw_request", "endpoint", "source", "route", "span",
        "_ids", "_started_ns", "_t0", "_first", "http_status", "_decoder", "_sse", "_acc", "_chunks",
        "_finished", "_parse_failed",
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
    ) -> None:
        """Raises what the codec raises on a body that is not of its format: the caller then lets
        the call through unrecorded."""
        self.request: CanonicalRequest = codec.decode_request(json.loads(body))
        self._runtime = runtime
        self.codec = codec
        self.raw_request = body
        self.endpoint = safe_endpoint(url)
        self.source = source
        self.route = route
        self.http_status: int | None = None
        self._decoder: Decoder | None = None
        self._sse: SSEDecoder | None = None
        self._acc = None
        self._chunks: list[bytes] = []
        self._first: float | None = None
        self._finished = False
        self._parse_failed = False
        self._started_ns = time.time_ns()
        self._t0 = time.perf_counter()
        self.span = runtime.tracer.start_span(
            f"{codec.operation} {self.request.model}" if self.request.model else codec.operation,
            kind=SpanKind.CLIENT,
            attributes=self._request_attributes(url),
        )
        ctx = self.span.get_span_context()
        parent = getattr(self.span, "parent", None)
        self._ids = SpanIds(
            trace_id=format(ctx.trace_id, "032x"),
            span_id=format(ctx.span_id, "016x"),
            parent_span_id=format(parent.span_id, "016x") if parent else None,
        )

    # -- response side

    def response_started(self, status: int, content_type: str, decoder: Decoder | None = None) -> None:
        self.http_status = status
        self._decoder = decoder
        if status < 400 and content_type.startswith("text/event-stream"):
            self._sse = SSEDecoder()
            self._acc = self.codec.stream_accumulator()

    def feed_safely(self, chunk: bytes) -> None:
        """Take one chunk of the response body, as the agent reads it."""
        try:
            if self._decoder is not None:
                chunk = self._decoder(chunk)
            self._chunks.append(chunk)
            if self._sse is not None and not self._parse_failed:
                for event, data in self._sse.feed(chunk):
                    if self._acc.add(event, data) and self._first is None:
                        self._first = time.perf_counter()
        except Exception as exc:  # a stream we cannot parse: keep the bytes, stop parsing
            self._parse_failed = True
            self._runtime.capture_failed("parsing a response stream", exc)

    def finish_safely(self, ending: str, error: BaseException | str | None = None) -> None:
        """End the span and submit the call, once: the first ending wins (exhausted, closed, broken, collected)."""
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
        body = b"".join(self._chunks)
        response, error_text = self._decode_body(body)
        if ending == INCOMPLETE and getattr(self._acc, "done", False):
            ending, error = COMPLETE, None  # the SDK closes a stream after its end marker, not at EOF
        status = "ok"
        if self.http_status is not None and self.http_status >= 400:
            status = "error"
            error_text = error_text or f"HTTP {self.http_status}"
        elif ending == FAILED or error_text:
            status = "error"
        elif ending == INCOMPLETE:
            status = "incomplete"
        if error is not None:
            error_text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        self._end_span(response, status, error, error_text)
        self._runtime.submit(
            LLMCallPayload(
                ids=self._ids,
                api=self.codec.api,
                provider=self.codec.provider,
                operation=self.codec.operation,
                endpoint=self.endpoint,
                request=self.request,
                response=response,
                raw_request=self.raw_request,
                raw_response=body,
                started_ns=self._started_ns,
                ended_ns=ended_ns,
                latency_ms=latency_ms,
                ttft_ms=(self._first - self._t0) * 1000 if self._first is not None else None,
                streamed=self._sse is not None,
                status=status,
                http_status=self.http_status,
                error=error_text,
                source=self.source,
                route=self.route,
            )
        )

    def _decode_body(self, body: bytes) -> tuple[CanonicalResponse | None, str | None]:
        if self._acc is not None:
            if not self._parse_failed:
                try:
                    for event, data in self._sse.flush():
                        self._acc.add(event, data)
                except ValueError:  # a stream cut inside its last event: what came before stands
                    pass
            return self._acc.response(), getattr(self._acc, "error", None)
        if not body:
            return None, None
        if self.http_status is not None and self.http_status >= 400:
            return None, _error_message(body)
        try:
            return self.codec.decode_response(json.loads(body)), None
        except Exception as exc:  # not the JSON we expected: raw body is kept, the call is marked
            return None, f"undecodable response: {type(exc).__name__}: {exc}"

    # -- span attributes

    def _request_attributes(self, url: str) -> dict[str, Any]:
        request = self.request
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
        if self._runtime.config.capture_content:
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = _dumps(_semconv_messages(request.messages))
            if request.tools:
                attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = _dumps(request.tools)
        return attrs

    def _end_span(
        self, response: CanonicalResponse | None, status: str, error: BaseException | str | None, error_text: str | None
    ) -> None:
        span = self.span
        if self.http_status is not None:
            span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, self.http_status)
        span.set_attribute(semconv.AGENT_TRACER_CALL_STATUS, status)
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
            span.set_status(Status(StatusCode.ERROR, scrub_text(error_text or error_type)[:500]))
        span.end()


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
                {"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                 "arguments": function.get("arguments")}
            )
        out.append({"role": message.get("role"), "parts": parts})
    return out


def _error_message(body: bytes) -> str:
    """The one-line message of an API error body (OpenAI and Anthropic shapes), else its start."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else None
        if message:
            return str(message)[:1000]
    except ValueError:
        pass
    return body[:1000].decode("utf-8", "replace")


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, or None outside any recording span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
