"""The model's text, as it arrives, turned into what an OpenAI client sees: content, and tool calls.

The chat template teaches calls as `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks
(`trainer/chat_template.py`); each block is read by `trainer.tool_calls.parse_reply`, the parser
training and evaluation use. A well-formed block becomes a call; a malformed one stays in the
content as it was written, for the proxy in front to judge (never guessed at). Text outside the
blocks is the content, trimmed as `parse_reply` trims it.

One `Assembler` serves both answers: a stream feeds it deltas as they come, a plain answer the
whole text at once, and what comes out is the same. While streaming, text that may be the start of
a block (`<`, `<tool`, …) or whitespace that may end the content is held back until the next delta
says what it was.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from trainer.tool_calls import parse_reply

OPEN, CLOSE = "<tool_call>", "</tool_call>"


@dataclass
class Parts:
    """What one piece of model text adds to the answer."""

    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """OpenAI tool calls: `{"id", "type": "function", "function": {"name", "arguments": JSON string}}`."""


class Assembler:
    """Splits model text into content and tool calls; `parse_tools=False` (no tools offered)
    passes the text through as written."""

    def __init__(self, parse_tools: bool) -> None:
        self.parse_tools = parse_tools
        self.pending = ""
        self.in_block = False
        self.started = False
        self.space = ""
        self.calls = 0

    def feed(self, text: str) -> Parts:
        if not self.parse_tools:
            return Parts(text)
        self.pending += text
        parts = Parts()
        while True:
            if self.in_block:
                end = self.pending.find(CLOSE)
                if end < 0:
                    return parts
                block, self.pending = self.pending[: end + len(CLOSE)], self.pending[end + len(CLOSE) :]
                self.in_block = False
                self._block(block, parts)
                continue
            start = self.pending.find(OPEN)
            if start >= 0:
                self._text(self.pending[:start], parts)
                self.pending, self.in_block = self.pending[start:], True
                continue
            keep = _partial_tag(self.pending)
            self._text(self.pending[: len(self.pending) - keep], parts)
            self.pending = self.pending[len(self.pending) - keep :]
            return parts

    def finish(self) -> Parts:
        """The end of the text: an unclosed block is read as `parse_reply` reads one (a call if
        its JSON is whole), held text goes out, trailing whitespace does not."""
        parts = Parts()
        if self.parse_tools and self.pending:
            if self.in_block:
                self._block(self.pending, parts)
            else:
                self._text(self.pending, parts)
        self.pending = ""
        return parts

    def _block(self, block: str, parts: Parts) -> None:
        parsed = parse_reply(block)
        if parsed.well_formed and len(parsed.calls) == 1:
            call = parsed.calls[0]
            parts.calls.append(
                {
                    "index": self.calls,
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
                }
            )
            self.calls += 1
        else:
            self._text(block, parts)

    def _text(self, text: str, parts: Parts) -> None:
        """Content with the blocks taken out, trimmed: no leading whitespace, and whitespace held
        until text follows it."""
        if not self.started:
            text = text.lstrip()
            if not text:
                return
            self.started = True
        body = text.rstrip()
        if body:
            parts.text += self.space + body
            self.space = ""
        self.space += text[len(body) :]


def _partial_tag(text: str) -> int:
    """How many characters at the end of `text` may be the start of `<tool_call>`."""
    return max((n for n in range(1, len(OPEN)) if text.endswith(OPEN[:n])), default=0)
