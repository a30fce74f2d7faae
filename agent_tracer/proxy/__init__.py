"""The transparent proxy: point an agent's `base_url` here and every model call is recorded.

`agent-tracer proxy` (`agent_tracer/commands/proxy.py`) serves `create_app` with uvicorn. The
app (and aiohttp under it) is imported on first use, so `agent-tracer proxy --help`, which reads
only the config, starts as fast as the other commands.
"""

from __future__ import annotations

from typing import Any

from agent_tracer.proxy.config import DEFAULT_UPSTREAMS, ProxyConfig

__all__ = ["DEFAULT_UPSTREAMS", "ProxyConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from agent_tracer.proxy.app import create_app

        globals()[name] = create_app
        return create_app
    raise AttributeError(f"module 'agent_tracer.proxy' has no attribute {name!r}")
