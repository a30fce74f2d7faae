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

from typing import Any
from urllib.parse import urlsplit

import click

from agent_tracer.proxy.config import DEFAULT_UPSTREAMS, ProxyConfig

help_for, default_for = ProxyConfig.help, ProxyConfig.default


class UpstreamParam(click.ParamType):
    """NAME=URL, NAME one of openai, anthropic; URL http(s)://host[:port][/path]."""

    name = "NAME=URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        name, sep, url = str(value).partition("=")
        name, url = name.strip().lower(), url.strip()
        if not sep or name not in DEFAULT_UPSTREAMS:
            self.fail(f"{value!r} is not NAME=URL with NAME one of {', '.join(DEFAULT_UPSTREAMS)}", param, ctx)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(f"{url!r} is not an http:// or https:// URL", param, ctx)
        return name, url.rstrip("/")


@click.command()
@click.option("--host", default=default_for("host"), show_default=True, help=help_for("host"))
@click.option(
    "--port", default=default_for("port"), show_default=True, type=click.IntRange(0, 65535), help=help_for("port")
)
@click.option("--upstream", "upstreams", multiple=True, type=UpstreamParam(), help=help_for("upstreams"))
@click.option(
    "--db",
    metavar="URL",
    envvar="AGENT_TRACER_DB",
    help="Trace store: sqlite:///path.db or postgresql://… [env AGENT_TRACER_DB; default sqlite:///agent_tracer.db]",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=default_for("timeout_s"),
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help=help_for("timeout_s"),
)
@click.option(
    "--max-request-mb",
    default=default_for("max_request_mb"),
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help=help_for("max_request_mb"),
)
@click.option("--require-key", is_flag=True, help=help_for("require_key"))
@click.option("--key-file", type=click.Path(dir_okay=False), help=help_for("key_file"))
@click.option("--routes", "routes_file", type=click.Path(dir_okay=False), help=help_for("routes_file"))
@click.option(
    "--workers", default=default_for("workers"), show_default=True, type=click.IntRange(min=1), help=help_for("workers")
)
@click.option(
    "--log-level",
    default=default_for("log_level"),
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help=help_for("log_level"),
)
def proxy(
    upstreams: tuple[tuple[str, str], ...], db: str | None, key_file: str | None, require_key: bool, **settings: object
) -> None:
    """Record every model call that passes through: point an agent's base_url here.

    Group calls into runs with the headers X-Agent-Trace-Id (or W3C traceparent), X-Agent-Name and
    X-Agent-Tags; report outcomes with POST /agent-tracer/v1/traces/ID/feedback. GET /healthz and
    GET /metrics (Prometheus) are the proxy's own. With --routes, the model names a routes file
    lists are answered by their primary with a fallback (see `agent-tracer routes --help`).
    """
    from agent_tracer.config import TracerConfig
    from agent_tracer.errors import AgentTracerError
    from agent_tracer.proxy.server import describe, serve

    if key_file and not require_key:
        raise click.UsageError("--key-file is only used with --require-key")
    try:
        config = ProxyConfig(upstreams=dict(upstreams), require_key=require_key, key_file=key_file, **settings)  # type: ignore[arg-type]
        db = TracerConfig(db=db or "").db
        click.echo(describe(config, db), err=True)
        if config.host not in ("127.0.0.1", "localhost", "::1") and not config.require_key:
            click.echo("  warning: listening beyond this machine without --require-key", err=True)
        serve(config, db)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down, nothing to report
        pass
