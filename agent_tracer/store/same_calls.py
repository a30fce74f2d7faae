"""One model call seen twice, stored once: the wire's copy and a framework span's, matched in the
store's write by response id, or by their text when the span has none.

Two copies of one call reach a store when a framework's spans arrive over OTLP (`/v1/traces`,
`agent-tracer collect`) while the transport capture of the agent's process, or the proxy, writes
to the same store; in process the span processor leaves them out before (`frameworks/otel_spans.py`),
and this is the net under it. Matched: the same `response_id` (the provider's id of its answer,
`chatcmpl-…`, `msg_…`, `resp_…`; `gen_ai.response.id` on a span), starts less than `WINDOW`
apart, times that overlap (within `SKEW`), and the same token counts where both copies have
them: some local servers draw response ids from a few hundred, and two of their calls must not
merge. A span's copy with no response id (OpenInference's, Google ADK's) is matched instead by
`content_key`, a digest of the call's text (every message's, the answer's, tool calls' names and
arguments; white space left out), under the same conditions of time and tokens: two calls of the
same text at the same moment are two copies of one exchange, whichever pairs with whichever. A
span's copy with neither (content capture off) is never merged. What the kept row holds:

- the wire copy (it has the raw HTTP bodies: `raw_request` and `api` set), its id included, so
  writing it again is still harmless: canonical request and response, raw bodies, tokens,
  timing, status;
- in the span copy's place (`trace_id`, `parent_span_id`): where the framework put the call in
  its agent's tree, while the wire copy hangs under the chat span itself, or in a trace of its
  own when the context did not reach the transport; a trace a moved call leaves empty is deleted.

Two copies of one kind (the proxy's and the in-process transport's, two spans) are both kept,
and never read by the lookup: it goes through a partial index of the other kind's copies
(`models.WIRE_COPY`, `models.SPAN_COPY`). Each merge is counted in `TraceStore.calls_merged`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent_tracer.store.models import SPAN_COPY, WIRE_COPY
from agent_tracer.store.search import update_calls

SKEW = timedelta(seconds=5)
"""How far apart the two copies' times may be (clocks of two processes or machines)."""
WINDOW = timedelta(seconds=120)
"""How far apart the two copies' starts may be: a span may start before its call's request, by
the SDK's retries and their backoff. Bounds the lookup, with the indexes on (response_id, started_at)."""

PLACE = ("trace_id", "parent_span_id")
_CHUNK = 500


class Merged:
    """What a batch's merges change: rows to update in place, and traces left by a moved call."""

    def __init__(self) -> None:
        self.count = 0
        self.content: dict[str, dict[str, Any]] = {}
        """Stored span copy's id → the wire copy's row, which it becomes (but for the place)."""
        self.place: dict[str, dict[str, Any]] = {}
        """Stored wire copy's id → the span copy's place it takes."""
        self.left: set[str] = set()
        """Trace ids a call moved out of."""


def merge_same_calls(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], Merged]:
    """The batch's call rows without the copies merged (within the batch, and with the rows
    stored already), and the merges; `apply` writes the stored rows' changes. Matched by response
    id first; then a span's copy without one, by `content_key`."""
    merged = Merged()
    kept = _merge_by(conn, table, rows, merged, "response_id", lambda row, wire: row["response_id"])
    return _merge_by(conn, table, kept, merged, "content_key", _content_key), merged


def _content_key(row: dict[str, Any], wire: bool) -> str | None:
    """The text's key of a wire copy, or of a span copy that has no response id (one that has is
    matched by it or not at all)."""
    return row["content_key"] if wire or row["response_id"] is None else None


def _merge_by(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    merged: Merged,
    column: str,
    key_of: Callable[[dict[str, Any], bool], str | None],
) -> list[dict[str, Any]]:
    keyed = [(row, _wire(row)) for row in rows]
    if not any(key_of(row, wire) for row, wire in keyed):
        return rows
    kept: list[dict[str, Any]] = []
    by_kind: tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]] = ({}, {})
    """[is a wire copy] → key → the batch's rows not merged yet."""
    for row, wire in keyed:
        key = key_of(row, wire)
        others = by_kind[not wire].get(key, []) if key else []
        match = next((other for other in others if _same(other, row)), None)
        if match is None:
            kept.append(row)
            if key:
                by_kind[wire].setdefault(key, []).append(row)
            continue
        others.remove(match)  # merged: not matched again
        _merge_rows(match, row, merged)
        merged.count += 1
    dropped: set[int] = set()
    timed = [row for group in by_kind for copies in group.values() for row in copies if _timed(row)]
    if not timed:
        return kept
    low = min(row["started_at"] for row in timed) - WINDOW
    high = max(row["ended_at"] for row in timed) + SKEW
    for other, group in ((SPAN_COPY, by_kind[True]), (WIRE_COPY, by_kind[False])):  # among the other kind's
        near = _near(table, column, other)
        for chunk in _chunks(sorted(group)):
            for stored in conn.execute(near, {"keys": chunk, "low": low, "high": high}).mappings():
                copies = [row for row in group[stored[column]] if id(row) not in dropped and _same(stored, row)]
                if not copies:
                    continue
                row = copies[0]
                if _wire(row):  # the span's copy is stored: it becomes the wire's, in its place
                    merged.content[stored["id"]] = row
                    if stored["trace_id"] != row["trace_id"]:
                        merged.left.add(row["trace_id"])
                else:  # the wire's copy is stored: it takes the span's place
                    merged.place[stored["id"]] = {name: row[name] for name in PLACE}
                    if stored["trace_id"] != row["trace_id"]:
                        merged.left.add(stored["trace_id"])
                dropped.add(id(row))
                merged.count += 1
    return [row for row in kept if id(row) not in dropped]


def written_again(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], merged: Merged) -> None:
    """Called when some of the batch's call rows were there already (a batch written again): a
    wire copy whose stored row a merge moved to a span's trace must not bring its own trace row
    back, empty."""
    rows = [row for row in rows if row["response_id"] and _wire(row)]
    for chunk in _chunks([row["id"] for row in rows]):
        query = sa.select(table.c.id, table.c.trace_id).where(table.c.id.in_(chunk))
        stored = {stored_id: trace_id for stored_id, trace_id in conn.execute(query)}
        merged.left.update(row["trace_id"] for row in rows if stored.get(row["id"], row["trace_id"]) != row["trace_id"])


def apply(conn: Connection, table: sa.Table, merged: Merged) -> None:
    """Update the stored rows the batch's copies merged into (before the trace rows are merged)."""
    if merged.content:  # the text may change: the search index follows
        content = [
            {**{key: value for key, value in row.items() if key not in PLACE}, "b_id": stored_id}
            for stored_id, row in merged.content.items()
        ]
        update_calls(conn, table, content)
    if merged.place:
        place = [{**row, "b_id": stored_id} for stored_id, row in merged.place.items()]
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id")), place)


def drop_left_traces(conn: Connection, traces: sa.Table, children: Iterable[sa.Table], left: set[str]) -> None:
    """Delete the traces a moved call left with nothing under them (run, call, tool, span, feedback)."""
    if not left:
        return
    empty = [~sa.exists().where(child.c.trace_id == traces.c.id) for child in children]
    for chunk in _chunks(sorted(left)):
        conn.execute(sa.delete(traces).where(traces.c.id.in_(chunk), *empty))


@functools.cache
def _near(table: sa.Table, column: str, other: str) -> sa.Select[Any]:
    """The stored copies of kind `other` (`SPAN_COPY` or `WIRE_COPY`) whose `column` is one of
    the `keys` and that started between `low` and `high`. Made once for each: building it at every
    write cost three times running it."""
    # Whether a stored copy has a raw body is what `_wire` reads, not the body: a case, not the
    # column, so no body is fetched (and, on SQLite, decompressed) to be compared with None.
    has_body = sa.case((table.c.raw_request.is_(None), sa.null()), else_=sa.literal("")).label("raw_request")
    columns = [table.c[name] for name in ("id", *PLACE, *_COMPARED)] + [has_body]
    started = table.c.started_at
    near = sa.select(*columns).where(
        table.c[column].in_(sa.bindparam("keys", expanding=True)),
        started.between(sa.bindparam("low", type_=started.type), sa.bindparam("high", type_=started.type)),
        sa.text(f"({other})"),
    )
    if column == "content_key" and other == SPAN_COPY:  # one with a response id was matched by it
        near = near.where(table.c.response_id.is_(None))
    return near


def _wire(row: Any) -> bool:
    """A copy made from the HTTP bodies (the transport, the proxy), not from a span: `WIRE_COPY`."""
    return row["raw_request"] is not None and row["api"] is not None


_COMPARED = ("response_id", "content_key", "api", "started_at", "ended_at", "input_tokens", "output_tokens")
"""The stored copies' columns a match reads (and whether they have a raw body)."""


def _timed(row: Any) -> bool:
    return row["started_at"] is not None and row["ended_at"] is not None


def _same(a: Any, b: Any) -> bool:
    """Two copies of one call: a wire copy and a span copy, not the same row, starting within
    `WINDOW` of each other and overlapping in time, with the same token counts where both have them."""
    if a["id"] == b["id"] or _wire(a) == _wire(b) or not (_timed(a) and _timed(b)):
        return False
    if abs(a["started_at"] - b["started_at"]) > WINDOW:
        return False
    if a["started_at"] > b["ended_at"] + SKEW or b["started_at"] > a["ended_at"] + SKEW:
        return False
    return all(a[name] is None or b[name] is None or a[name] == b[name] for name in ("input_tokens", "output_tokens"))


def _merge_rows(first: dict[str, Any], second: dict[str, Any], merged: Merged) -> None:
    """Merge two copies within one batch into `first`'s dict (the one in the batch's list): the
    wire copy in the span copy's place."""
    wire, span = (first, second) if _wire(first) else (second, first)
    if wire["trace_id"] != span["trace_id"]:
        merged.left.add(wire["trace_id"])
    first.update({**wire, **{name: span[name] for name in PLACE}})


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
