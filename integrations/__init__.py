"""Wire-format codecs (one module per format) and the registry that picks one by URL path.

Both capture paths, the httpx transport wrapper and the proxy, ask `codec_for(path)` which format
a POST speaks; None means the request is not a model call and passes through untouched.
"""

from __future__ import annotations

from agent_tracer.canonical import Codec
from integrations.anthropic_messages import AnthropicMessagesCodec
from integrations.openai_chat import OpenAIChatCodec
from integrations.openai_responses import OpenAIResponsesCodec

CODECS: tuple[Codec, ...] = (OpenAIChatCodec(), OpenAIResponsesCodec(), AnthropicMessagesCodec())


def codec_for(path: str) -> Codec | None:
    """The codec whose wire format a POST to this URL path speaks, or None."""
    for codec in CODECS:
        if codec.matches(path):
            return codec
    return None


__all__ = ["CODECS", "AnthropicMessagesCodec", "OpenAIChatCodec", "OpenAIResponsesCodec", "codec_for"]
