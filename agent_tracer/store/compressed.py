"""Raw HTTP bodies stored compressed in SQLite (zstd), read back as the text they were.

A model call keeps its request and response bytes as they crossed the wire (for replay, and for
what the canonical form leaves out); in an agent's loop each request repeats the conversation, so
the raw bodies were a third of a SQLite store (BENCHMARKS.md, "Storage size"). SQLite compresses
nothing itself: a body of `MIN_CHARS` or more is written as a zstd frame (a BLOB in the same
column; SQLite's columns take either), and read back to the same `str`. A row written before
stays text and reads as it is, so no migration rewrites old stores. PostgreSQL compresses large
values itself (TOAST), so its column keeps the text. zstd frames are a kept format: Python's own
`compression.zstd` (3.14) reads them too.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

MIN_CHARS = 256
"""Shorter bodies are kept as text: a frame's header and the call to the codec cost more than they save."""
LEVEL = 1
"""zstd's fastest positive level: on a conversation's JSON as small as level 3's (the default) at
two thirds of its time, about 4 µs a KB here (BENCHMARKS.md, "Storage size")."""

_codecs = threading.local()


def compress(text: str) -> bytes:
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        import zstandard

        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor.compress(text.encode("utf-8", "surrogatepass"))


def decompress(data: bytes) -> str:
    decompressor = getattr(_codecs, "decompressor", None)
    if decompressor is None:
        import zstandard

        decompressor = _codecs.decompressor = zstandard.ZstdDecompressor()
    return decompressor.decompress(data).decode("utf-8", "surrogatepass")


class CompressedText(TypeDecorator[str]):
    """A text column whose long values SQLite stores as zstd frames; reads give `str` either way."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" and isinstance(value, str) and len(value) >= MIN_CHARS:
            return compress(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, bytes | memoryview):
            return decompress(bytes(value))
        return value
