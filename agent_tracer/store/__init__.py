"""The trace store: SQLModel tables, migrations and the `TraceStore` query API.

    from agent_tracer.store import TraceStore
    store = TraceStore()                      # $AGENT_TRACER_DB or sqlite:///agent_tracer.db
    store.write([("llm_call", {...}), ("trace", {...})])
    store.traces(outcome="success", min_rating=4, since="7d")

The names below are imported on first use, so that importing `agent_tracer` (or only
`agent_tracer.store.database`) does not pay for SQLModel and SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_tracer.store.database import default_url
    from agent_tracer.store.models import AgentRun, Feedback, LLMCall, ToolExecution, Trace
    from agent_tracer.store.store import TraceDetail, TraceStore

_EXPORTS = {
    "AgentRun": "agent_tracer.store.models",
    "Feedback": "agent_tracer.store.models",
    "LLMCall": "agent_tracer.store.models",
    "ToolExecution": "agent_tracer.store.models",
    "Trace": "agent_tracer.store.models",
    "TraceDetail": "agent_tracer.store.store",
    "TraceStore": "agent_tracer.store.store",
    "default_url": "agent_tracer.store.database",
}
__all__ = [
    "AgentRun",
    "Feedback",
    "LLMCall",
    "ToolExecution",
    "Trace",
    "TraceDetail",
    "TraceStore",
    "default_url",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
