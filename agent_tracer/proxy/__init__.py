"""The transparent proxy: point an agent's `base_url` here and every model call is recorded.

`agent-tracer proxy` (`agent_tracer/commands/proxy.py`) serves `create_app` with uvicorn.
"""

from agent_tracer.proxy.app import DEFAULT_UPSTREAMS, create_app

__all__ = ["DEFAULT_UPSTREAMS", "create_app"]
