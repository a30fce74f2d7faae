"""The app `agent-tracer collect` serves: `POST /v1/traces` and `/v1/logs`, `/metrics` and `/healthz`, nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agent_tracer.config import TracerConfig
from agent_tracer.otlp.receiver import DEFAULT_MAX_BODY_BYTES, Receiver
from agent_tracer.proxy.auth import KeyCheck


def create_collect_app(
    db_url: str | None = None,
    *,
    spill_path: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    keys: Iterable[str] | None = None,
    writer: str = "process",
    mask: tuple[str, ...] = (),
) -> Starlette:
    """The receiver over the store at `db_url` (default: `$AGENT_TRACER_DB` or the SQLite file),
    spilling to `spill_path` (default: beside the SQLite file) when the store cannot take a batch.
    `keys`: the client keys an exporter must send (`Authorization: Bearer KEY`, e.g. through
    `OTEL_EXPORTER_OTLP_HEADERS`) on `/v1/traces`, `/v1/logs` and `/metrics`; None: no key asked.
    `writer`: "process" (a writer process, started with the app) or "thread" (writes in this
    process); see `Receiver`. `mask`: rules applied to what is stored (`TracerConfig.mask`)."""
    config = TracerConfig(db=db_url or "", spill_path=spill_path or "", mask=mask)
    receiver = Receiver(config, max_body_bytes=max_body_bytes, writer=writer)
    check = KeyCheck(keys, {}) if keys is not None else None

    def keyed(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if check is not None and not check.allows(request.headers):
                return PlainTextResponse("a client key is required", 401, {"www-authenticate": "Bearer"})
            return await handler(request)

        return guarded

    async def metrics(request: Request) -> Response:
        from agent_tracer.http_protocol import refused, refused_lines  # `collect`'s server, uvicorn's protocol

        text = receiver.metrics() + "\n".join(refused_lines(refused())) + "\n"
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        receiver.start()
        try:
            yield
        finally:
            receiver.close()

    app = Starlette(
        routes=[
            Route("/v1/traces", keyed(receiver.endpoint), methods=["POST"]),
            Route("/v1/logs", keyed(receiver.logs_endpoint), methods=["POST"]),
            Route("/metrics", keyed(metrics)),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app
