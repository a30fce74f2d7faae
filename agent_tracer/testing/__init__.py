"""Test helpers: a fake OpenAI / Anthropic API server on loopback (`FakeUpstream`), answering
by scenario or by a script of `Reply`s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_tracer.testing.upstream import FakeUpstream, Reply

__all__ = ["FakeUpstream", "Reply"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `python -m agent_tracer.testing.upstream` runs the module only once.
    if name in __all__:
        from agent_tracer.testing import upstream

        return getattr(upstream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
