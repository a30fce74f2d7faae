"""Framework adapters: a framework's runs, tools and handoffs stored as our own decorators store them.

    agent_tracer.init(frameworks="auto")    # every installed framework below; or frameworks=["langchain"]

Each adapter also has its own call (`agent_tracer.frameworks.openai_agents.instrument()`,
`agent_tracer.frameworks.langchain.instrument()` or `.callback_handler()`,
`agent_tracer.frameworks.pydantic_ai.instrument()` and `agent_tracer.frameworks.google_adk.instrument()`:
PydanticAI's and Google ADK's own GenAI spans through the in-process span processor of
`otel_spans.py`). A framework that is
not installed is skipped silently; an adapter that fails to start logs one line and the agent
runs on untraced by it. The framework packages are imported only here, on demand, so
`import agent_tracer` never loads them.

A model call is stored once. The transport capture records the calls it decodes (OpenAI,
Anthropic over httpx) in the trace the adapter makes current (`scope.py`), and the adapters leave
those to it; a framework's own span of a call the transport did not record (Gemini under ADK) is
stored from the span (`otel_spans.py`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterable
from typing import Any

from agent_tracer.errors import ConfigError

logger = logging.getLogger("agent_tracer")

ADAPTERS = {
    "openai_agents": "agents",
    "langchain": "langchain_core",
    "pydantic_ai": "pydantic_ai",
    "google_adk": "google.adk",
}
"""Adapter (module under `agent_tracer.frameworks`) → the package it needs."""
ALIASES = {
    "openai-agents": "openai_agents",
    "agents": "openai_agents",
    "langgraph": "langchain",
    "pydantic-ai": "pydantic_ai",
    "pydanticai": "pydantic_ai",
    "google-adk": "google_adk",
    "adk": "google_adk",
}


def __getattr__(name: str) -> Any:
    """The adapter modules, imported on first use (`agent_tracer.frameworks.langchain`)."""
    if name in ADAPTERS:
        return importlib.import_module(f"agent_tracer.frameworks.{name}")
    raise AttributeError(f"module 'agent_tracer.frameworks' has no attribute {name!r}")


def names(frameworks: str | Iterable[str]) -> list[str]:
    """The adapters asked for: "auto" (or "all") is every one, else names or aliases."""
    if isinstance(frameworks, str):
        frameworks = list(ADAPTERS) if frameworks in ("auto", "all") else [frameworks]
    wanted = []
    for name in frameworks:
        adapter = ALIASES.get(name, name)
        if adapter not in ADAPTERS:
            raise ConfigError(f"unknown framework {name!r}: one of {', '.join(sorted(ADAPTERS))} or 'auto'")
        wanted.append(adapter)
    return wanted


def instrument(frameworks: str | Iterable[str] = "auto") -> list[str]:
    """Turn on the adapters asked for whose framework is installed; returns those turned on."""
    on = []
    for adapter in names(frameworks):
        if not _installed(ADAPTERS[adapter]):
            continue
        try:
            importlib.import_module(f"agent_tracer.frameworks.{adapter}").instrument()
        except Exception as exc:  # a broken or unexpected framework version: the agent runs on untraced by it
            logger.warning("agent-tracer: the %s adapter did not start (%s: %s)", adapter, type(exc).__name__, exc)
            continue
        on.append(adapter)
    return on


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing ("google.adk" without google)
        return False


def uninstrument() -> None:
    """Turn every adapter that was turned on off again."""
    import sys

    for adapter in ADAPTERS:
        module = sys.modules.get(f"agent_tracer.frameworks.{adapter}")
        if module is not None:
            module.uninstrument()


def stats() -> dict[str, dict[str, int]]:
    """Counts per adapter turned on in this process (runs, tool executions, model spans left to
    the transport, errors, context mismatches)."""
    import sys

    out = {}
    for adapter in ADAPTERS:
        module = sys.modules.get(f"agent_tracer.frameworks.{adapter}")
        if module is not None and module.current() is not None:
            out[adapter] = module.current().stats.snapshot()
    return out
