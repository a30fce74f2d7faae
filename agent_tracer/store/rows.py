"""The rows `TraceStore.write` takes, checked and completed per kind (`SPECS`), and how trace rows
merge: a run's trace row arrives in pieces (the agent's root span, its calls, feedback from
another process), each filling what it knows.
"""

from __future__ import annotations

import json
import operator
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agent_tracer.errors import ConfigError, StoreError
from agent_tracer.store.models import AgentRun, Feedback, LLMCall, ToolExecution, Trace, UnmappedSpan, utcnow
from agent_tracer.store.queries import to_utc
from agent_tracer.store.search import call_search_text, content_key


class _Spec:
    """How a record kind becomes a row: the table's columns, defaults, datetimes, required keys."""

    def __init__(self, model: Any, defaults: dict[str, Any], required: tuple[str, ...]) -> None:
        self.table: sa.Table = model.__table__
        self.columns = tuple(column.name for column in self.table.columns)
        self.defaults = defaults
        self.datetimes = tuple(column.name for column in self.table.columns if isinstance(column.type, sa.DateTime))
        self.required = required

    def normalize(self, row: dict[str, Any]) -> dict[str, Any]:
        get = row.get
        out: dict[str, Any] = {column: get(column) for column in self.columns}
        for column, default in self.defaults.items():
            if out[column] is None:
                out[column] = default() if callable(default) else default
        for column in self.datetimes:
            if out[column] is not None:
                out[column] = to_utc(out[column])
        for column in self.required:
            if not out[column]:
                raise StoreError(f"a {self.table.name} record needs {column!r}: {_preview(row)}")
        return out


class _TraceSpec(_Spec):
    def normalize(self, row: dict[str, Any]) -> dict[str, Any]:
        out = super().normalize(row)
        out["outcome"] = out["rating"] = out["comment"] = None  # feedback's business
        out["authoritative"] = bool(row.get("authoritative"))
        return out


class _CallSpec(_Spec):
    def normalize(self, row: dict[str, Any]) -> dict[str, Any]:
        out = super().normalize(row)
        response = out["response"]
        if isinstance(response, dict):  # derive what the writer left out
            tool_calls = (response.get("message") or {}).get("tool_calls") or []
            if row.get("has_tool_calls") is None:
                out["has_tool_calls"] = bool(tool_calls)
            if row.get("tool_names") is None:
                out["tool_names"] = [(call.get("function") or {}).get("name") for call in tool_calls]
            if row.get("finish_reasons") is None:
                out["finish_reasons"] = list(response.get("finish_reasons") or [])
            for column, key in (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
                ("response_model", "model"),
                ("response_id", "id"),
            ):
                if out[column] is None:
                    out[column] = response.get(key)
        if out["search_text"] is None:
            out["search_text"] = call_search_text(out["request"], response)
        if out["content_key"] is None:
            out["content_key"] = content_key(out["search_text"])
        return out


_SPAN_REQUIRED = ("id", "trace_id")
SPECS: dict[str, _Spec] = {
    "trace": _TraceSpec(Trace, {"tags": list, "meta": dict, "updated_at": utcnow}, ("id",)),
    "agent_run": _Spec(AgentRun, {}, _SPAN_REQUIRED),
    "llm_call": _CallSpec(
        LLMCall,
        {"streamed": False, "status": "ok", "finish_reasons": list, "has_tool_calls": False, "tool_names": list},
        _SPAN_REQUIRED,
    ),
    "tool_execution": _Spec(ToolExecution, {}, _SPAN_REQUIRED),
    "unmapped_span": _Spec(UnmappedSpan, {"attributes": dict, "events": list, "resource": dict}, _SPAN_REQUIRED),
    "feedback": _Spec(Feedback, {"id": lambda: uuid.uuid4().hex, "created_at": utcnow}, ("trace_id",)),
}
CALL_UPDATE = "llm_call_update"
"""A record that replaces the stored `llm_call` of its id (inserted when there is none): a call
whose messages came after its span (OTLP log events, `agent_tracer.otlp.logs`). Normalized as
an `llm_call`."""
_MERGED_SCALARS = ("name", "task", "status", "error", "source")


_TRACE_COLUMNS = tuple(column.name for column in Trace.__table__.columns)  # type: ignore[attr-defined]  # SQLModel types omit __table__
"""Named once: walking the table's columns costs more than the rest of a new trace's row."""


def empty_trace(trace_id: str, source: str | None, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_TRACE_COLUMNS)
    row.update(id=trace_id, tags=[], meta={}, source=source, updated_at=now)
    return row


def apply_rows(
    targets: dict[str, dict[str, Any]], trace_rows: list[dict[str, Any]], feedback_rows: list[dict[str, Any]]
) -> None:
    """Merge trace records and new feedback into the rows of `targets` that they name, in place."""
    for row in trace_rows:
        if row["id"] in targets:
            merge_trace(targets[row["id"]], row)
    for row in feedback_rows:
        target = targets.get(row["trace_id"])
        if target is not None:
            for column in ("outcome", "rating", "comment"):
                if row[column] is not None:
                    target[column] = row[column]


def merge_trace(current: dict[str, Any], row: dict[str, Any]) -> None:
    """Merge one trace record into the stored row, in place (see `TraceStore.write`)."""
    authoritative = row["authoritative"]
    for column in _MERGED_SCALARS:
        value = row[column]
        if value is None:
            continue
        existing = current[column]
        if authoritative or existing is None or (column == "source" and existing == "feedback"):
            current[column] = value
    if row["started_at"] is not None and (current["started_at"] is None or row["started_at"] < current["started_at"]):
        current["started_at"] = row["started_at"]
    if row["ended_at"] is not None and (current["ended_at"] is None or row["ended_at"] > current["ended_at"]):
        current["ended_at"] = row["ended_at"]
    tags = list(current["tags"] or [])
    tags.extend(tag for tag in row["tags"] or [] if tag not in tags)
    current["tags"] = tags
    meta = row["meta"] or {}
    current["meta"] = {**(current["meta"] or {}), **meta} if authoritative else {**meta, **(current["meta"] or {})}


def insert_ignore(dialect: str, table: sa.Table) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    raise ConfigError(f"unsupported database dialect {dialect!r}")


class SQLiteInsert:
    """`INSERT … ON CONFLICT (id) DO NOTHING` into one table through SQLite's driver, the rows
    passed as plain tuples (`TraceStore.write`'s path on SQLite).

    Why: SQLAlchemy's per-row parameter processing (a dict per row, then one processor call per
    value) was a third of the write. Here each value goes through the processor SQLAlchemy would
    use, except datetimes and JSON, which are converted here the same way at less cost, so the
    stored text is byte for byte the Core insert's (tests/agent_tracer/store/test_store.py checks).
    """

    def __init__(self, table: sa.Table, dialect: sa.Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        names = [column.name for column in table.columns]
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
            f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT ({quote('id')}) DO NOTHING"
        )
        self._values = operator.itemgetter(*names)
        binds = [_bind(column.type, dialect) for column in table.columns]
        self._binds = [(i, bind) for i, bind in enumerate(binds) if bind is not None]

    def params(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows (normalized: every column a key) as tuples in the statement's column order."""
        values, binds = self._values, self._binds
        out = []
        for row in rows:
            items = list(values(row))
            for i, bind in binds:
                items[i] = bind(items[i])
            out.append(tuple(items))
        return out


def _bind(column_type: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Any:
    """The function that turns a value into what SQLite is given for a column of this type
    (SQLAlchemy's own, or a cheaper one with the same result); None: the value as it is."""
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    if isinstance(column_type, sa.DateTime):
        # SQLAlchemy's SQLite format is "%04d-%02d-%02d %02d:%02d:%02d.%06d": isoformat's, with
        # microseconds always written, for the naive datetimes `to_utc` leaves.
        def datetime_text(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is None:
                return value.isoformat(" ", "microseconds")
            return processor(value)

        return datetime_text
    if isinstance(column_type, sa.JSON):
        none_as_null = column_type.none_as_null
        serialize = getattr(dialect, "_json_serializer", None) or json.dumps  # what the engine was given

        def json_text(value: Any) -> Any:
            kind = type(value)
            if kind is dict or kind is list or kind is str or (value is None and not none_as_null):
                return serialize(value)
            return processor(value)

        return json_text
    return processor


def _preview(row: dict[str, Any]) -> str:
    text = repr({key: row[key] for key in list(row)[:4]})
    return text if len(text) <= 120 else text[:117] + "..."
