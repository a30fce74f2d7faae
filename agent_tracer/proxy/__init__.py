"""The transparent proxy: point an agent's `base_url` here and every model call is recorded.

`agent-tracer proxy` (`agent_tracer/commands/proxy.py`) serves `create_app` with uvicorn.
"""

from agent_tracer.proxy.app import create_app
from agent_tracer.proxy.config import DEFAULT_UPSTREAMS, ProxyConfig

__all__ = ["DEFAULT_UPSTREAMS", "ProxyConfig", "create_app"]
