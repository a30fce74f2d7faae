"""`agent-tracer proxy`: serve the recording proxy (Starlette on uvicorn).

    agent-tracer proxy                                   # 127.0.0.1:8787, the public APIs upstream
    agent-tracer proxy --upstream openai=http://127.0.0.1:8000 --port 9000
    OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python my_agent.py

The proxy records without wrapping its own httpx client: the runtime starts with `instrument=False`
and the app drives a `CallRecorder` per model call. SIGINT / SIGTERM stop uvicorn gracefully, and
the app's shutdown writes what is queued to the store.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import click

UPSTREAM_NAMES = ("openai", "anthropic")


class UpstreamParam(click.ParamType):
    """NAME=URL, NAME one of openai, anthropic; URL http(s)://host[:port][/path]."""

    name = "NAME=URL"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, tuple):
            return value
        name, sep, url = str(value).partition("=")
        name, url = name.strip().lower(), url.strip()
        if not sep or name not in UPSTREAM_NAMES:
            self.fail(f"{value!r} is not NAME=URL with NAME one of {', '.join(UPSTREAM_NAMES)}", param, ctx)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(f"{url!r} is not an http:// or https:// URL", param, ctx)
        return name, url.rstrip("/")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the proxy.")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--upstream", "upstreams", multiple=True, type=UpstreamParam(),
    help="Where an API's calls go, e.g. openai=http://127.0.0.1:8000 (repeatable) "
    "[defaults: openai=https://api.openai.com, anthropic=https://api.anthropic.com]",
)
@click.option(
    "--db", metavar="URL", envvar="AGENT_TRACER_DB",
    help="Trace store: sqlite:///path.db or postgresql://… [env AGENT_TRACER_DB; default sqlite:///agent_tracer.db]",
)
@click.option(
    "--timeout", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
    help="Seconds the upstream may take to answer, and between two chunks of a body (→ 504).",
)
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def proxy(host: str, port: int, upstreams: tuple[tuple[str, str], ...], db: str | None, timeout: float,
          log_level: str) -> None:
    """Record every model call that passes through: point an agent's base_url here."""
    import uvicorn

    from agent_tracer import runtime
    from agent_tracer.config import TracerConfig
    from agent_tracer.errors import AgentTracerError
    from agent_tracer.proxy import create_app

    try:
        rt = runtime.start(TracerConfig(db=db or ""), instrument=False)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    app = create_app(dict(upstreams), rt, timeout=timeout)
    click.echo(f"agent-tracer proxy on http://{host}:{port} → "
               + ", ".join(f"{k}={v}" for k, v in app.state.proxy.upstreams.items()), err=True)
    try:  # uvicorn shuts down gracefully, then raises the signal again for the process's exit status
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                    server_header=False, date_header=False, lifespan="on")
    except KeyboardInterrupt:  # Ctrl-C: the shutdown is done, nothing to report
        pass
