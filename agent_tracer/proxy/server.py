"""Running the proxy: one uvicorn process, or several workers sharing the port.

With one worker, the app is built here and handed to uvicorn. With `--workers N`, uvicorn spawns N
fresh processes that each build their own app from the settings this process leaves in the
environment (`app_from_environment`): each worker records through its own writer into the same
store, and they share their metrics through files in a temporary folder.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import replace
from typing import Any

from agent_tracer import runtime
from agent_tracer.config import TracerConfig
from agent_tracer.errors import StoreError, first_line
from agent_tracer.prices import load_prices
from agent_tracer.proxy.app import ProxyApp, create_app
from agent_tracer.proxy.auth import KeyCheck, load_client_keys, load_upstream_keys
from agent_tracer.proxy.config import UI_PATH, ProxyConfig, export_settings, settings_from_environment
from agent_tracer.proxy.routes import RoutesFile, checked_routes, describe_routes, load_routes
from agent_tracer.store.database import redact

logger = logging.getLogger("agent_tracer.proxy")

GRACEFUL_SHUTDOWN_S = 20
"""How long a stop waits for answers in flight before cutting them (recorded as failed); the
store is written after that, within the tracer's own shutdown time-out."""


def build_app(config: ProxyConfig, db: str) -> ProxyApp:
    """The app for this process, recording through the process's runtime (started here), with
    the web UI over the same store and keys unless `config.ui_off_reason()` gives a reason."""
    client_keys = load_client_keys(config.key_file) if config.require_key else None
    keys = KeyCheck(client_keys, load_upstream_keys()) if client_keys is not None else None
    routes = RoutesFile(config.routes_file, load_routes(config.routes_file)) if config.routes_file else None
    ui_off = config.ui_off_reason()
    ui = None
    if ui_off is None:
        from agent_tracer.ui import create_app as create_ui  # Jinja2 and the templates: only when served
        from agent_tracer.ui.replay import ReplayTargets

        # Opened (and created, migrated) before the writer starts, so the two never migrate at once.
        # A store that cannot be opened turns the UI off, never the proxy: calls still go through
        # and are retried or spilled (fail open).
        try:
            replay = ReplayTargets(lambda: routes.current) if routes is not None else None  # the routes in force
            ui = create_ui(
                db,
                keys=client_keys,
                root_path=UI_PATH,
                create=True,
                datasets_dir=config.datasets_dir,
                prices=config.prices_file,
                replay=replay,
            )
        except StoreError as exc:
            ui_off = f"the trace store could not be opened when the proxy started ({first_line(exc)})"
            logger.warning("web UI off: %s; restart the proxy once the store is up", ui_off)
    return create_app(
        config,
        runtime.start(TracerConfig(db=db, mask=config.mask), instrument=False),
        keys,
        routes,
        ui=ui,
        ui_off=ui_off,
    )


def app_from_environment() -> ProxyApp:
    """uvicorn's app factory in each `--workers` process."""
    config, db = settings_from_environment()
    return build_app(config, db)


def describe(config: ProxyConfig, db: str) -> str:
    """The start-up line: where it listens, where calls go, where they are recorded; no secrets."""
    upstreams = ", ".join(f"{api}={url}" for api, url in config.upstreams.items())
    if config.require_key:
        held = sorted(load_upstream_keys())
        keys = f"proxy keys required; upstream keys held for {', '.join(held) if held else 'no API'}"
    else:
        keys = "clients' own API keys forwarded"
    workers = f", {config.workers} workers" if config.workers > 1 else ""
    ui_off = config.ui_off_reason()
    lines = [
        f"agent-tracer proxy on http://{config.host}:{config.port} → {upstreams}",
        f"  recording into {redact(db)}; {keys}{workers}",
        f"  web UI off: {ui_off}"
        if ui_off
        else f"  web UI at http://{config.host}:{config.port}{UI_PATH}/"
        + (" (proxy key required)" if config.require_key else ""),
    ]
    if config.mask:
        lines.append(f"  masked before storage: {', '.join(config.mask)} (calls are forwarded unchanged)")
    if config.retention:
        lines.append(f"  runs older than {config.retention} deleted at start and hourly")
    if config.routes_file:
        lines.append(f"  routes from {config.routes_file} (reloaded on change):")
        lines.extend(f"    {line}" for line in describe_routes(load_routes(config.routes_file)))
    return "\n".join(lines)


def serve(config: ProxyConfig, db: str) -> None:
    """Serve until SIGINT / SIGTERM, recording into the store at `db` (a URL); raises
    `ConfigError` for settings that cannot work, before anything listens."""
    import uvicorn

    from agent_tracer.http_protocol import HeaderLimitedProtocol

    ui_off = config.ui_off_reason()  # --ui where it cannot be served safely: refused before anything starts
    if ui_off is None and config.prices_file:
        load_prices(config.prices_file)  # and so is a price file the UI cannot use
    if config.require_key:
        load_client_keys(config.key_file)  # fail here, once, rather than in every worker
    if config.routes_file:
        asyncio.run(checked_routes(config.routes_file))  # an unreachable endpoint is refused at start-up
    options: dict[str, Any] = dict(
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=HeaderLimitedProtocol,
    )
    if config.workers == 1:
        uvicorn.run(build_app(config, db), **options)
        return
    with tempfile.TemporaryDirectory(prefix="agent-tracer-proxy-metrics-") as metrics_dir:
        export_settings(replace(config, metrics_dir=metrics_dir), db)
        uvicorn.run("agent_tracer.proxy.server:app_from_environment", factory=True, workers=config.workers, **options)
