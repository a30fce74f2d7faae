"""Stored runs as conversation files, for `agent-tracer traces export`.

A row is one conversation (`agent_tracer.conversations`): by default each run's *final*
conversations (usually one a run: the last call's request and answer, which contain the earlier
calls), with `per_call` one per stored call that has an answer. Formats:

- **openai-jsonl**: `{"messages": [...], "tools": [...]}` a line, OpenAI's fine-tuning format;
  tool-call arguments are JSON strings, as that API takes them and the store keeps them (see
  `agent_tracer.canonical`). `traces import --format openai-jsonl` reads it back unchanged.
- **parquet**: the same conversations with their trace's columns (trace_id, name, outcome, rating,
  tags, started_at, model, call_ids), messages and tools as JSON strings; needs pyarrow.

Traces tagged `held-out` (evaluation data, such as BFCL's live_* categories) are left out unless
asked for: an export is how data leaves for fine-tuning. The file is written beside its place and
renamed into it when complete, so a failed export leaves no half file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_tracer.conversations import Conversation, call_conversation, final_conversations
from agent_tracer.errors import ConfigError
from agent_tracer.formats.examples import HELD_OUT_TAG

if TYPE_CHECKING:
    from agent_tracer.store import TraceStore
    from agent_tracer.store.store import RunRows

PARQUET_BATCH = 1000
"""Rows per parquet row group as they are written: memory stays flat however many are exported."""


@dataclass
class ExportRow:
    """One conversation to write, with the trace it came from and the model that answered it."""

    conversation: Conversation
    trace: dict[str, Any]
    model: str | None


@dataclass
class ExportCounts:
    """What an export met: traces read, and held-out traces left out."""

    traces: int = 0
    held_out: int = 0


def runs_up_to(store: TraceStore, limit: int | None, *, include_held_out: bool, **query: Any) -> Iterator[RunRows]:
    """`store.iter_runs(limit=limit, **query)` for a reader that leaves held-out traces out (an
    export, a dataset build): the limit then counts only the others, so `--limit 100` gives 100
    traces however many held-out ones rank among them. The held-out traces met on the way are
    still yielded, for the reader to count what it left out."""
    if limit is None or include_held_out:
        yield from store.iter_runs(limit=limit, **query)
        return
    usable = 0
    for run in store.iter_runs(**query):
        if usable >= limit:
            return
        yield run
        usable += HELD_OUT_TAG not in (run.trace.get("tags") or ())


def export_rows(
    runs: Iterable[RunRows], counts: ExportCounts, *, per_call: bool = False, include_held_out: bool = False
) -> Iterator[ExportRow]:
    """The conversations of the runs, in their order, counting in `counts` as they go."""
    for run in runs:
        if HELD_OUT_TAG in (run.trace.get("tags") or ()) and not include_held_out:
            counts.held_out += 1
            continue
        counts.traces += 1
        calls = {call["id"]: call for call in run.calls}
        conversations = [
            conversation
            for call in run.calls
            if (conversation := call_conversation(call["id"], run.trace["id"], call["request"], call["response"]))
        ]
        for conversation in conversations if per_call else final_conversations(conversations):
            last = calls[conversation.call_ids[-1]]
            yield ExportRow(conversation, run.trace, last["request_model"] or last["response_model"])


def write_openai_jsonl(rows: Iterable[ExportRow], path: Path) -> int:
    """One `{"messages", "tools"}` line per row; returns how many."""
    written = 0
    with _replaced(path, "w") as handle:
        for row in rows:
            line: dict[str, Any] = {"messages": row.conversation.messages}
            if row.conversation.tools:
                line["tools"] = row.conversation.tools
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    return written


def write_parquet(rows: Iterable[ExportRow], path: Path) -> int:
    """The rows with their trace's columns, in row groups of `PARQUET_BATCH`; returns how many."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("--format parquet needs pyarrow: pip install pyarrow") from None
    schema = pa.schema(
        [
            ("trace_id", pa.string()),
            ("name", pa.string()),
            ("outcome", pa.string()),
            ("rating", pa.float64()),
            ("tags", pa.list_(pa.string())),
            ("started_at", pa.timestamp("us")),
            ("model", pa.string()),
            ("call_ids", pa.list_(pa.string())),
            ("messages", pa.string()),
            ("tools", pa.string()),
        ]
    )
    written = 0
    with _replaced(path, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            trace = row.trace
            batch.append(
                {
                    "trace_id": trace["id"],
                    "name": trace["name"],
                    "outcome": trace["outcome"],
                    "rating": trace["rating"],
                    "tags": list(trace["tags"] or []),
                    "started_at": trace["started_at"],
                    "model": row.model,
                    "call_ids": row.conversation.call_ids,
                    "messages": json.dumps(row.conversation.messages, ensure_ascii=False),
                    "tools": json.dumps(row.conversation.tools, ensure_ascii=False),
                }
            )
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written, batch = written + len(batch), []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written


@contextmanager
def _replaced(path: Path, mode: str) -> Iterator[Any]:
    """A file handle to `path`'s temporary twin, renamed into `path` when the block completes
    (and removed if it fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
