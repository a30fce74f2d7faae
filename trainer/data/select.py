"""Which traces a dataset is made from: filters on the store's query API, best-rated first.

An empty selection is an error that names the filter that emptied it, counting as it applies the
filters one after another: "412 traces in the store; 97 with outcome 'success'; 0 of those rated
at least 4". A user who sees only "no rows" cannot tell a typo in an agent name from a store that
was never rated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from agent_tracer.errors import ConfigError
from agent_tracer.formats.export import runs_up_to
from agent_tracer.store import TraceStore
from agent_tracer.store.store import RunRows

CALL_COLUMNS = ("id", "trace_id", "status", "request", "response")
"""What a dataset reads of each call: not the raw bodies, which are most of a row's bytes."""


class EmptySelection(ConfigError):
    """No trace matches the selection; the message says which filter left none."""


@dataclass
class Selection:
    outcome: str | None = field(default=None, metadata={"help": "Only traces with this outcome (e.g. success)."})
    min_rating: float | None = field(default=None, metadata={"help": "Only traces rated at least this (0-5)."})
    name: str | None = field(default=None, metadata={"help": "Agent name; * matches anything."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Only traces with all of these tags."})
    since: str | None = field(default=None, metadata={"help": "Started at or after: 2024-05-01, or an age: 7d."})
    until: str | None = field(default=None, metadata={"help": "Started before (same forms as since)."})
    model: str | None = field(default=None, metadata={"help": "Only traces with a call to this model."})
    has_tool_calls: bool | None = field(
        default=None, metadata={"help": "Only traces whose model called tools (True) / did not (False)."}
    )
    text: str | None = field(
        default=None, metadata={"help": "Only traces with a call holding every word of this (full-text search)."}
    )
    max_traces: int | None = field(default=None, metadata={"help": "At most this many traces, best-rated first."})
    order: str = field(default="best", metadata={"help": "best (rating high to low), newest or oldest."})

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `TraceStore.iter_runs` / `count_traces` (without the limit)."""
        return {
            "outcome": self.outcome,
            "min_rating": self.min_rating,
            "name": self.name,
            "tags": self.tags,
            "since": self.since,
            "until": self.until,
            "model": self.model,
            "has_tool_calls": self.has_tool_calls,
            "text": self.text,
            "order": self.order,
        }

    def runs(self, store: TraceStore, *, include_held_out: bool = False) -> Iterator[RunRows]:
        """The selected traces with the columns of their calls that datasets are made from; unless
        `include_held_out`, `max_traces` counts only the traces not tagged held-out."""
        return runs_up_to(
            store, self.max_traces, include_held_out=include_held_out, call_columns=CALL_COLUMNS, **self.filters()
        )

    def count(self, store: TraceStore) -> int:
        """How many traces the selection yields (the limit applied)."""
        return store.count_traces(limit=self.max_traces, **self.filters())

    def check(self, store: TraceStore) -> int:
        """The count, or `EmptySelection` naming the filter that left no trace."""
        total = self.count(store)
        if total:
            return total
        steps = [f"{store.count_traces():,} traces in the store"]
        applied: dict[str, Any] = {}
        for name, value, words in self._described():
            applied[name] = value
            count = store.count_traces(**applied)
            steps.append(f"{count:,} {'of those ' if len(steps) > 1 else ''}{words}")
            if not count:
                break
        raise EmptySelection("no trace matches the selection: " + "; ".join(steps))

    def _described(self) -> Iterator[tuple[str, Any, str]]:
        descriptions = {
            "outcome": lambda v: f"with outcome {v!r}",
            "min_rating": lambda v: f"rated at least {v:g}",
            "name": lambda v: f"named {v!r}",
            "tags": lambda v: f"tagged {', '.join(v)}",
            "since": lambda v: f"started since {v}",
            "until": lambda v: f"started before {v}",
            "model": lambda v: f"calling model {v!r}",
            "has_tool_calls": lambda v: "whose model called tools" if v else "whose model called no tool",
            "text": lambda v: f"with calls saying {v!r}",
        }
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in descriptions and value not in (None, [], ()):
                yield item.name, value, descriptions[item.name](value)
