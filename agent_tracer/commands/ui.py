"""`agent-tracer ui`: serve the web UI (uvicorn) over a trace store.

    agent-tracer ui                                   # http://127.0.0.1:8788, the default store
    agent-tracer ui --db postgresql+psycopg://… --read-only
    agent-tracer ui --datasets-dir ./datasets         # where the datasets page builds datasets
    agent-tracer ui --reports reports/                # the evaluations `agent-tracer eval --report` wrote
    agent-tracer ui --routes routes.yaml --endpoint tuned=http://127.0.0.1:8001/v1   # replay calls on these
    agent-tracer ui --prices prices.yaml              # what tokens cost, over the default list prices
    AGENT_TRACER_PROXY_KEYS=… agent-tracer ui --host 0.0.0.0 --require-key

The UI also takes OpenTelemetry exports at /v1/traces and /v1/logs, as `agent-tracer collect` does.
Loopback needs no key. Any other address serves trace contents beyond this machine, so the command
refuses it unless --require-key makes every page ask for one of the proxy's client keys.
"""

from __future__ import annotations

import click

from agent_tracer.console import check_key_options, db_option, prices_option


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8788, show_default=True, help="Port to listen on.")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing: reviews are refused.")
@click.option(
    "--require-key",
    is_flag=True,
    help="Every page needs one of the proxy's client keys (AGENT_TRACER_PROXY_KEYS or --key-file), "
    "as a bearer token or through the login form. Required to listen beyond loopback.",
)
@click.option(
    "--key-file", type=click.Path(dir_okay=False), help="With --require-key: client keys, one a line (# comments)."
)
@click.option(
    "--datasets-dir",
    type=click.Path(file_okay=False),
    default="agent-tracer-datasets",
    show_default=True,
    help="Where the datasets page builds datasets, a folder per build (made when first used).",
)
@click.option(
    "--reports",
    "reports",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A folder of evaluation reports (`agent-tracer eval --report DIR`): one holding results.jsonl, "
    "or one whose sub-folders do. Repeatable.",
)
@prices_option
@click.option(
    "--routes",
    "routes_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A routes file (`agent-tracer routes --help`): a run's model calls may be replayed on its endpoints.",
)
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="NAME=URL[,OPTION=VALUE…]",
    help="An OpenAI-compatible endpoint to replay a run's model calls on, as `agent-tracer eval` takes it "
    "(model=M, key_env=ENV). Repeatable.",
)
@click.option(
    "--replay-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a replayed call's whole answer may take (default: a route's own timeout_s; 30 for --endpoint).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="uvicorn's log level.",
)
def ui(
    db: str | None,
    host: str,
    port: int,
    read_only: bool,
    require_key: bool,
    key_file: str | None,
    datasets_dir: str,
    reports: tuple[str, ...],
    routes_file: str | None,
    endpoints: tuple[str, ...],
    replay_timeout: float | None,
    prices: str | None,
    log_level: str,
) -> None:
    """Browse, read and review the recorded runs in a web browser."""
    check_key_options(require_key, key_file, host=host, beyond="serves trace contents beyond this machine")

    from agent_tracer.config import TracerConfig
    from agent_tracer.errors import AgentTracerError
    from agent_tracer.http_protocol import serve
    from agent_tracer.proxy.auth import load_client_keys
    from agent_tracer.store.database import redact
    from agent_tracer.ui import create_app
    from agent_tracer.ui.replay import ReplayTargets

    try:
        keys = load_client_keys(key_file) if require_key else None
        url = TracerConfig(db=db or "").db
        replay = ReplayTargets.from_options(routes_file, endpoints, replay_timeout)
        app = create_app(
            url,
            read_only=read_only,
            keys=keys,
            datasets_dir=datasets_dir,
            reports=reports,
            replay=replay,
            prices=prices,
        )
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    shown = f"[{host}]" if ":" in host else host
    mode = ", ".join(part for part in ("read-only" if read_only else "", "key required" if require_key else "") if part)
    click.echo(
        f"agent-tracer ui on http://{shown}:{port}/ over {redact(url)}" + (f" ({mode})" if mode else ""), err=True
    )
    serve(app, host=host, port=port, log_level=log_level)
