"""Server-sent events decoding, on bytes, for the capture hot path.

`SSEDecoder.feed` takes response bytes as they arrive, in chunks cut anywhere (inside a UTF-8
character, between `\\r` and `\\n`), and returns the events completed so far as `(event, data)`:
the `event:` name or None, and the `data:` lines joined with "\\n". It follows the WHATWG
event-stream rules: `\\n`, `\\r\\n` and `\\r` end lines, a blank line ends an event, lines starting
with `:` are comments, `id:` and `retry:` are ignored, an event without data is not dispatched.

The work is done with bytes methods (`replace`, `split`, `partition`) on whole chunks, never a
Python loop per byte: a chunk without an event boundary costs two substring searches.

`encode` writes one event, for the servers that stream (`trainer.serve`, the test fake upstream).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SSEDecoder", "Event", "encode"]

Event = tuple[str | None, str]
"""One event: its `event:` name (None when absent) and its data."""

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Incremental event-stream decoder: `feed` chunks, `flush` at the end of the stream."""

    __slots__ = ("_pending", "_ends_with_lf", "_held_cr", "_started")

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        """Bytes of the event being received, line endings already turned into b"\\n"."""
        self._ends_with_lf = False
        """Whether the pending bytes end with b"\\n" (a b"\\n" at the start of the next chunk ends
        the event)."""
        self._held_cr = False
        """A b"\\r" that ended the last chunk: a line end either way, but a b"\\n" opening the next
        chunk belongs to it."""
        self._started = False
        """Whether the first bytes (and a possible byte-order mark) have been seen."""

    def feed(self, chunk: bytes) -> list[Event]:
        """Take the next bytes of the stream; return the events they complete, in order."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                chunk = chunk[:-1]
                self._held_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            return []
        if not self._started:
            self._pending.append(chunk)
            head = b"".join(self._pending)
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._pending = [head]
                return []
            self._started = True
            self._pending = []
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
            if not chunk:
                return []
        if b"\n\n" not in chunk and not (self._ends_with_lf and chunk[0] == 0x0A):
            self._pending.append(chunk)
            self._ends_with_lf = chunk[-1] == 0x0A
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()
        self._pending = [rest] if rest else []
        self._ends_with_lf = rest[-1:] == b"\n"
        events = []
        for block in blocks:
            event = _parse(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """End of stream: return the last event when it lacked its closing blank line."""
        held = b"\n" if self._held_cr else b""
        rest = b"".join(self._pending) + held
        self._pending = []
        self._held_cr = False
        self._ends_with_lf = False
        if not self._started:
            self._started = True
            if rest.startswith(_BOM):
                rest = rest[len(_BOM) :]
        events = []
        for block in rest.split(b"\n\n"):
            event = _parse(block)
            if event is not None:
                events.append(event)
        return events


def _parse(block: bytes) -> Event | None:
    """One event's lines (no blank line inside, except leading ones) → (event, data) or None."""
    if block[:6] == b"data: " and b"\n" not in block:  # the usual single-line OpenAI event
        return None, block[6:].decode("utf-8", "replace")
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # blank (before the first field) or ":" comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or None
    if not data:
        return None
    return event, b"\n".join(data).decode("utf-8", "replace")


def encode(data: Any, event: str | None = None) -> bytes:
    """One event carrying `data` as compact JSON, named `event` when given."""
    line = b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    return b"event: " + event.encode() + b"\n" + line if event else line
