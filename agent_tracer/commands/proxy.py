"""`agent-tracer proxy`: serve the recording proxy (uvicorn; settings in `proxy/config.py`).

    agent-tracer proxy                                   # 127.0.0.1:8787, the public APIs upstream
    agent-tracer proxy --upstream openai=http://127.0.0.1:8000 --port 9000 --workers 4
    agent-tracer proxy --routes routes.yaml              # tuned primary, frontier fallback
    OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_agent.py

The proxy records without wrapping its own httpx client: the runtime starts with `instrument=False`
and the app drives a `CallRecorder` per model call. SIGINT / SIGTERM stop uvicorn gracefully, and
the app's shutdown writes what is queued to the store.
"""

from __future__ import annotations

import click

from agent_tracer.console import check_key_options, config_options, db_option
from agent_tracer.proxy.config import ProxyConfig


@click.command()
@config_options(ProxyConfig, "host", "port", "upstreams")
@db_option
@config_options(
    ProxyConfig,
    "timeout_s",
    "max_request_mb",
    "require_key",
    "key_file",
    "routes_file",
    "ui",
    "datasets_dir",
    "prices_file",
    "workers",
    "log_level",
    "mask",
    "retention",
    "retention_keep_rated",
    "retention_keep_tags",
)
def proxy(
    upstreams: tuple[tuple[str, str], ...], db: str | None, key_file: str | None, require_key: bool, **settings: object
) -> None:
    """Record every model call that passes through: point an agent's base_url here.

    Group calls into runs with the headers X-Agent-Trace-Id (or W3C traceparent), X-Agent-Name and
    X-Agent-Tags; report outcomes with POST /agent-tracer/v1/traces/ID/feedback. GET /healthz and
    GET /metrics (Prometheus) are the proxy's own, and so is the web UI at /agent-tracer/ui/
    (on loopback or with --require-key; see --ui). With --routes, the model names a routes file
    lists are answered by their primary with a fallback (see `agent-tracer routes --help`).
    """
    from agent_tracer.config import TracerConfig
    from agent_tracer.errors import AgentTracerError
    from agent_tracer.proxy.server import describe, serve

    check_key_options(require_key, key_file)  # beyond loopback without keys: only warned, below
    try:
        config = ProxyConfig(upstreams=dict(upstreams), require_key=require_key, key_file=key_file, **settings)  # type: ignore[arg-type]
        db = TracerConfig(db=db or "").db
        click.echo(describe(config, db), err=True)
        if not config.loopback and not config.require_key:
            click.echo("  warning: listening beyond this machine without --require-key", err=True)
        serve(config, db)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down, nothing to report
        pass
