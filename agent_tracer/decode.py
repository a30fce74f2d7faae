"""From the bytes of one model call to its canonical request, response and status.

Kept apart from the recorder because it runs in one of two places: on the writer thread for most
calls (the agent's thread only keeps bytes and clock readings), or on the agent's thread when
spans must carry the response's attributes (usage, finish reasons) as they end.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalRequest, CanonicalResponse, Codec
from integrations.sse import SSEDecoder

# How the response body ended, as the transport saw it.
COMPLETE, FAILED, INCOMPLETE = "complete", "failed", "incomplete"


@dataclass(slots=True)
class DecodedCall:
    request: CanonicalRequest
    response: CanonicalResponse | None
    status: str
    """"ok", "error" (HTTP error, broken body, in-stream error) or "incomplete" (closed early)."""
    error: str | None


def decode_request(codec: Codec, raw_request: bytes) -> CanonicalRequest:
    """Raises ValueError (CodecError included) on a body that is not JSON of the codec's format."""
    return codec.decode_request(fastjson.loads(raw_request))


def decode_call(
    codec: Codec,
    raw_request: bytes,
    raw_response: bytes,
    *,
    sse: bool,
    ending: str,
    http_status: int | None,
    error: str | None,
    request: CanonicalRequest | None = None,
) -> DecodedCall:
    """Decode a whole call; `request` may come already decoded."""
    request = request or decode_request(codec, raw_request)
    response: CanonicalResponse | None = None
    body_error: str | None = None
    if http_status is not None and http_status >= 400:
        body_error = _error_message(raw_response) if raw_response else None
    elif sse:
        accumulator = codec.stream_accumulator()
        decoder = SSEDecoder()
        try:
            for event, data in [*decoder.feed(raw_response), *decoder.flush()]:
                accumulator.add(event, data)
        except ValueError:  # a stream cut inside an event: what came before stands
            pass
        response = accumulator.response()
        body_error = getattr(accumulator, "error", None)
        if ending == INCOMPLETE and getattr(accumulator, "done", False):
            ending, error = COMPLETE, None  # SDKs close a stream after its end marker, not at EOF
    elif raw_response:
        try:
            response = codec.decode_response(fastjson.loads(raw_response))
        except ValueError as exc:  # not the JSON we expected: the raw body is kept, the call marked
            body_error = f"undecodable response: {exc}"

    message: str | None
    if http_status is not None and http_status >= 400:
        status, message = "error", body_error or f"HTTP {http_status}"
    elif ending == FAILED or body_error:
        status, message = "error", body_error
    elif ending == INCOMPLETE:
        status, message = "incomplete", None
    else:
        status, message = "ok", None
    return DecodedCall(request, response, status, error or message)


def _error_message(body: bytes) -> str:
    """The one-line message of an API error body (OpenAI and Anthropic shapes), else its start."""
    try:
        data = fastjson.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else None
        if message:
            return str(message)[:1000]
    except ValueError:
        pass
    return body[:1000].decode("utf-8", "replace")
