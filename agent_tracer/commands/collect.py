"""`agent-tracer collect`: receive OTLP/HTTP trace exports (and the GenAI message events sent as
logs) into the trace store, nothing else.

    agent-tracer collect                                  # http://127.0.0.1:4318/v1/traces and /v1/logs
    agent-tracer collect --db postgresql+psycopg://… --port 4318
    AGENT_TRACER_PROXY_KEYS=… agent-tracer collect --host 0.0.0.0 --require-key

Point an OpenTelemetry exporter at it: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces`
(protobuf or JSON, gzip or not), and its log exporter at /v1/logs where the messages come as log
events (the contrib openai-v2 instrumentation). Model calls, agent runs and tool runs become the rows
our own capture writes (see `agent_tracer/otlp/`); counts are at /metrics. Loopback needs no key; any other
address takes writes from beyond this machine, so it needs --require-key.
"""

from __future__ import annotations

from dataclasses import fields

import click

from agent_tracer.config import TracerConfig
from agent_tracer.console import check_key_options, db_option


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=4318, show_default=True, help="Port to listen on.")
@click.option(
    "--spill",
    "spill_path",
    metavar="FILE",
    envvar="AGENT_TRACER_SPILL",
    help="Where spans go when the store cannot take them (`traces import FILE --format spill` loads them) "
    "[env AGENT_TRACER_SPILL; default: beside the SQLite file].",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=16.0,
    show_default=True,
    help="Largest request body (after gzip) taken; a larger one is answered 413.",
)
@click.option(
    "--writer",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Where spans are written: in a writer process that writes a request's spans while this one "
    "maps the next (two cores at work), or in this process (less CPU in all: faster when other work "
    "keeps the cores busy).",
)
@click.option(
    "--require-key",
    is_flag=True,
    help="Exporters must send one of the proxy's client keys (AGENT_TRACER_PROXY_KEYS or --key-file) as "
    "`Authorization: Bearer KEY`. Required to listen beyond loopback.",
)
@click.option(
    "--key-file", type=click.Path(dir_okay=False), help="With --require-key: client keys, one a line (# comments)."
)
@click.option(
    "--mask",
    "mask",
    multiple=True,
    metavar="RULE",
    help=next(f for f in fields(TracerConfig) if f.name == "mask").metadata["help"],
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="uvicorn's log level.",
)
def collect(
    db: str | None,
    host: str,
    port: int,
    spill_path: str | None,
    max_body_mb: float,
    writer: str,
    require_key: bool,
    key_file: str | None,
    mask: tuple[str, ...],
    log_level: str,
) -> None:
    """Receive OpenTelemetry (OTLP/HTTP) trace exports into the trace store.

    POST /v1/traces takes spans; POST /v1/logs the GenAI message events some instrumentations
    send as log records (openai-v2), joined to their model calls. GET /metrics counts, GET /healthz.
    """
    check_key_options(require_key, key_file, host=host, beyond="takes traces from beyond this machine")

    from agent_tracer.errors import AgentTracerError
    from agent_tracer.http_protocol import serve
    from agent_tracer.otlp.app import create_collect_app
    from agent_tracer.proxy.auth import load_client_keys
    from agent_tracer.store.database import redact
    from agent_tracer.writer_process import hold_collector_back

    try:
        keys = load_client_keys(key_file) if require_key else None
        app = create_collect_app(
            db,
            spill_path=spill_path,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            keys=keys,
            writer=writer,
            mask=mask,
        )
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    receiver = app.state.receiver
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"agent-tracer collect on http://{shown}:{port}/v1/traces and /v1/logs into {redact(receiver.db_url)}", err=True
    )
    hold_collector_back()  # this process maps whole requests of spans
    serve(app, host=host, port=port, log_level=log_level)
