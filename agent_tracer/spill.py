"""The spill file: store records the writer could not write, kept as JSON lines until loaded back.

One record a line, `{"kind": "llm_call", "row": {...}}`, datetimes as ISO-8601 strings. The writer
loads it back by itself once the store takes writes again, after an outage or a start: at its next
write, or at an idle moment (`reload_spill`, which empties it); `agent-tracer traces import FILE --format spill` (or
`TraceStore.write(read_spill(path))`) loads one by hand, and loading twice is harmless because the
store skips ids it has. Appends are flushed and
fsynced before `append_spill` returns. A crash in the middle of an append leaves at most one
partial line, at the end: `read_spill` skips it and counts it in `SpillReader.truncated`, and the
next append cuts it off first (logging a warning), so it never ends up in the middle. A malformed
line anywhere else is damage, not a crash, and raises `StoreError` with its line number.
This module imports nothing from the store, so the writer can spill when the database is down.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from agent_tracer.errors import StoreError
from agent_tracer.store.database import dumps_json

try:
    import fcntl
except ImportError:  # Windows: appends are not locked against other processes
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("agent_tracer")


def append_spill(path: str | os.PathLike[str], records: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Append records to the spill file (creating it and its folders), flush and fsync; return how
    many. Raises `OSError` when the file cannot be written, `TypeError` for a value JSON cannot hold."""
    lines = [dumps_json({"kind": kind, "row": row}) + "\n" for kind, row in records]
    if not lines:
        return 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode("utf-8")
    with open(target, "a+b") as handle:
        _lock(handle)
        _drop_torn_tail(handle, target)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def _lock(handle: BinaryIO) -> None:
    """Hold an exclusive lock until the file is closed, so that two processes spilling into the
    same file never see each other's half-written lines."""
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _drop_torn_tail(handle: BinaryIO, path: Path) -> None:
    """Cut a partial last line (a crash during an earlier append) before appending after it, so
    that only the last line of a spill file can ever be torn."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return
    handle.seek(end - 1)
    if handle.read(1) == b"\n":
        return
    keep = 0
    position = end
    while position > 0:
        start = max(position - 65536, 0)
        handle.seek(start)
        chunk = handle.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        position = start
    handle.truncate(keep)
    handle.seek(0, os.SEEK_END)
    logger.warning(
        "agent-tracer: %s ended with a partial record (%d bytes, from a crash); it is dropped", path, end - keep
    )


def reload_spill(
    path: str | os.PathLike[str], write: Callable[[list[tuple[str, dict[str, Any]]]], Any], chunk: int = 1000
) -> int:
    """Write a spill file's records through `write` (the store's, which skips ids it has) in
    chunks, then empty the file; returns how many were written. The file's lock is held
    throughout, so no append lands between the reading and the emptying. When a write raises, the
    file is left as it was (loading it again later is harmless)."""
    target = Path(path)
    if not target.exists():
        return 0
    with open(target, "r+b") as handle:
        _lock(handle)
        if handle.seek(0, os.SEEK_END) == 0:
            return 0
        loaded = 0
        pending: list[tuple[str, dict[str, Any]]] = []
        for record in read_spill(target):
            pending.append(record)
            if len(pending) >= chunk:
                write(pending)
                loaded, pending = loaded + len(pending), []
        if pending:
            write(pending)
            loaded += len(pending)
        handle.truncate(0)
        handle.flush()
        os.fsync(handle.fileno())
    return loaded


def read_spill(path: str | os.PathLike[str]) -> SpillReader:
    """The records of a spill file, as `(kind, row)` pairs; see `SpillReader`."""
    return SpillReader(path)


class SpillReader:
    """Iterates a spill file's `(kind, row)` records, once. After the iteration, `records` says how
    many were read and `truncated` is 1 when the last line was cut short by a crash (and skipped)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records = 0
        self.truncated = 0

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                complete = raw.endswith(b"\n")  # only the file's last line can lack its newline
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except ValueError as exc:
                    if not complete:
                        self.truncated += 1
                        return
                    raise StoreError(f"{self.path}:{number}: not a spill record ({exc})") from None
                if not (
                    isinstance(item, dict) and isinstance(item.get("kind"), str) and isinstance(item.get("row"), dict)
                ):
                    expected = '{"kind": …, "row": {…}}'
                    raise StoreError(f"{self.path}:{number}: not a spill record (expected {expected})")
                self.records += 1
                yield item["kind"], item["row"]
