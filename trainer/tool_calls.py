"""Tool calls in a model's text: the `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks
the built-in chat template teaches (`trainer/chat_template.py`), read back into OpenAI-style calls.

Training rewards them (GRPO's tool-match reward), evaluation scores them, and serving turns them
into `tool_calls` in its responses: one parser, so the three agree on what a well-formed call is.
A block that is not a JSON object with a string `name` and object `arguments` is malformed; it is
kept (as text) so a caller can fall back or count it, never guessed at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    """`{"name": str, "arguments": dict}` each, in the order written."""
    malformed: list[str] = field(default_factory=list)
    """The blocks that were not well-formed calls, as written."""

    @property
    def well_formed(self) -> bool:
        return not self.malformed


def parse_reply(text: str) -> ParsedReply:
    """Split `text` into plain content and `<tool_call>` blocks (an unclosed last block counts: a
    reply cut at the token limit has a malformed call, not none)."""
    calls: list[dict[str, Any]] = []
    malformed: list[str] = []
    for block in _BLOCK.findall(text):
        call = _call(block)
        if call is None:
            malformed.append(block)
        else:
            calls.append(call)
    content = _BLOCK.sub("", text).strip()
    return ParsedReply(content, calls, malformed)


def _call(block: str) -> dict[str, Any] | None:
    try:
        value = json.loads(block)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string, as the API does
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"name": value["name"], "arguments": arguments}
