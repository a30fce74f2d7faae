"""The canonical model call: one shape for every wire format.

Chat Completions, Responses and Anthropic Messages traffic all become a `CanonicalRequest` and a
`CanonicalResponse` in OpenAI chat format (messages with `role`, `content`, `tool_calls`,
`tool_call_id`; tools as JSON-schema function specs), because that is what chat templates and TRL
consume. Tool-call arguments stay JSON *strings*, as the logs hold them; the trainer converts them.

A codec (one per wire format, in `integrations/`) turns request and response bodies, or a stream of
server-sent events, into these objects. Codecs are pure: no I/O, no clock, no OpenTelemetry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_tracer.messages import Message


@dataclass
class CanonicalRequest:
    """What the agent asked for."""

    model: str | None
    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    """Sampling and control parameters under OpenAI chat names: temperature, top_p, max_tokens,
    stop, seed, tool_choice, parallel_tool_calls, frequency_penalty, presence_penalty, n (and
    top_k where the API has it)."""
    stream: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict (the lists inside are shared, not copied): what the store serialises."""
        return {
            "model": self.model,
            "messages": self.messages,
            "tools": self.tools,
            "params": self.params,
            "stream": self.stream,
        }


@dataclass
class CanonicalResponse:
    """What the model answered: one assistant message, possibly with tool calls."""

    id: str | None = None
    model: str | None = None
    message: Message = field(default_factory=lambda: {"role": "assistant", "content": None})
    finish_reasons: list[str] = field(default_factory=list)
    """In OpenAI chat terms: stop, length, tool_calls, content_filter."""
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return self.message.get("tool_calls") or []

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict (the message is shared, not copied): what the store serialises."""
        return {
            "id": self.id,
            "model": self.model,
            "message": self.message,
            "finish_reasons": self.finish_reasons,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


class StreamAccumulator(Protocol):
    """Rebuilds a response from server-sent events as the agent reads them."""

    def add(self, event: str | None, data: str) -> bool:
        """Take one SSE event (its `event:` name, if any, and its `data:`); return True when it
        carried output (text or a tool call), so the caller can time the first token."""

    def response(self) -> CanonicalResponse:
        """Everything assembled so far: complete after the last event, partial before it."""

    # Accumulators also carry `done: bool`, true once the stream's own end marker arrived
    # ([DONE], response.completed, message_stop), and `error: str | None`, the message of an
    # in-stream error event.


class Codec(Protocol):
    """One wire format (Chat Completions, Responses, Anthropic Messages)."""

    api: str
    """Stable name stored with each call: "openai.chat", "openai.responses", "anthropic.messages"."""
    provider: str
    """`gen_ai.provider.name` for traffic in this format: "openai" or "anthropic"."""
    operation: str
    """`gen_ai.operation.name`: "chat"."""

    def matches(self, path: str) -> bool:
        """True when a POST to this URL path speaks this format (e.g. ends with /chat/completions)."""

    def decode_request(self, body: dict[str, Any]) -> CanonicalRequest:
        """Raise `CodecError` on a body that is not of this format."""

    def decode_response(self, body: dict[str, Any]) -> CanonicalResponse: ...

    def stream_accumulator(self) -> StreamAccumulator: ...
