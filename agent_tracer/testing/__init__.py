"""Test helpers: a fake OpenAI / Anthropic API server on loopback (`FakeUpstream`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_tracer.testing.upstream import FakeUpstream

__all__ = ["FakeUpstream"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `python -m agent_tracer.testing.upstream` runs the module only once.
    if name == "FakeUpstream":
        from agent_tracer.testing.upstream import FakeUpstream

        return FakeUpstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
