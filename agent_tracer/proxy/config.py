"""The proxy's settings, one dataclass: the CLI's options are built from its fields' help and
defaults, and with several workers it travels to each worker process as JSON in the environment."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import click

from agent_tracer.errors import ConfigError
from agent_tracer.prices import PRICES_HELP

DEFAULT_UPSTREAMS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}
"""API name → base URL the request path is appended to."""

SETTINGS_ENV = "AGENT_TRACER_PROXY_SETTINGS"
"""Where the CLI leaves the settings for `--workers` processes (JSON of `ProxyConfig` + db)."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UI_PATH = "/agent-tracer/ui"
"""Where the proxy serves the web UI (`agent_tracer.ui`)."""


class UpstreamParam(click.ParamType):
    """NAME=URL, NAME one of openai, anthropic; URL http(s)://host[:port][/path]."""

    name = "NAME=URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
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


@dataclass
class ProxyConfig:
    """The proxy's settings; `agent-tracer proxy` makes an option of each (`console.config_options`)."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; 0.0.0.0 exposes the proxy."})
    port: int = field(default=8787, metadata={"help": "Port to listen on.", "type": click.IntRange(0, 65535)})
    upstreams: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Where an API's calls go, e.g. openai=http://127.0.0.1:8000 (repeatable) "
            "[defaults: openai=https://api.openai.com, anthropic=https://api.anthropic.com]",
            "flag": "--upstream",
            "type": UpstreamParam(),
            "multiple": True,
        },
    )
    timeout_s: float = field(
        default=600.0,
        metadata={
            "help": "Seconds the upstream may take to answer, and between two chunks of a body (→ 504).",
            "flag": "--timeout",
            "type": click.FloatRange(min=0, min_open=True),
        },
    )
    max_request_mb: float = field(
        default=32.0,
        metadata={
            "help": "Largest model-call request body in MiB (→ 413); other paths stream through unlimited.",
            "type": click.FloatRange(min=0, min_open=True),
        },
    )
    require_key: bool = field(
        default=False,
        metadata={
            "help": "Clients must present a proxy key (AGENT_TRACER_PROXY_KEYS or --key-file); the "
            "proxy sends its own OPENAI_API_KEY / ANTHROPIC_API_KEY upstream.",
            "flag": "--require-key",
        },
    )
    key_file: str | None = field(
        default=None,
        metadata={"help": "File of client keys, one a line (--require-key).", "type": click.Path(dir_okay=False)},
    )
    routes_file: str | None = field(
        default=None,
        metadata={
            "help": "A routes YAML file: model names answered by a tuned primary with a frontier fallback "
            "(see `agent-tracer routes --help`); edits apply without a restart.",
            "flag": "--routes",
            "type": click.Path(dir_okay=False),
        },
    )
    ui: bool | None = field(
        default=None,
        metadata={
            "help": f"Serve the web UI at {UI_PATH}/ [default: on when bound to loopback or with "
            "--require-key; off otherwise, as it would show every recorded run to anyone who can reach it]."
        },
    )
    datasets_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where the web UI's datasets page builds datasets, a folder per build (made when "
            "first used) [default: none; the page shows the command to run instead].",
            "type": click.Path(file_okay=False),
        },
    )
    prices_file: str | None = field(
        default=None,
        metadata={
            "help": PRICES_HELP + " For the web UI's costs.",
            "flag": "--prices",
            "type": click.Path(exists=True, dir_okay=False),
        },
    )
    workers: int = field(
        default=1, metadata={"help": "Server processes sharing the port.", "type": click.IntRange(min=1)}
    )
    mask: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Mask what is stored before it is written (bodies, raw bytes, spill file; the call "
            "itself is forwarded unchanged): default (API keys, emails, cards, phones, public IPs), one of "
            "secret, email, card, phone, ip, or NAME=REGEX; repeatable.",
            "multiple": True,
        },
    )
    retention: str | None = field(
        default=None,
        metadata={
            "help": "Delete recorded runs older than this age (30d, 12w), with their calls, tools and "
            "feedback, at start and every hour, as `agent-tracer traces prune` does.",
        },
    )
    retention_keep_rated: bool = field(
        default=False,
        metadata={
            "help": "With --retention: keep runs with a rating, an outcome or any feedback.",
            "flag": "--retention-keep-rated",
        },
    )
    retention_keep_tags: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "With --retention: keep runs with this tag (repeatable).",
            "flag": "--retention-keep-tag",
            "multiple": True,
        },
    )
    log_level: str = field(default="warning", metadata={"help": "uvicorn's log level.", "choices": LOG_LEVELS})
    metrics_dir: str | None = field(
        default=None, metadata={"help": "Folder where workers share their counts for /metrics (set by the CLI)."}
    )

    def __post_init__(self) -> None:
        unknown = set(self.upstreams) - set(DEFAULT_UPSTREAMS)
        if unknown:
            raise ConfigError(f"unknown upstream(s): {', '.join(sorted(unknown))} (known: openai, anthropic)")
        for name, url in self.upstreams.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"upstream {name}={url!r} is not an http:// or https:// URL")
        self.upstreams = {**DEFAULT_UPSTREAMS, **{k: v.rstrip("/") for k, v in self.upstreams.items()}}
        if self.timeout_s <= 0 or self.max_request_mb <= 0 or self.workers < 1:
            raise ConfigError("timeout_s and max_request_mb must be positive, workers at least 1")
        if self.retention is not None:
            age_of(self.retention)  # an age, checked now
        self.retention_keep_tags = tuple(self.retention_keep_tags)
        self.mask = tuple(self.mask)
        if self.mask:
            from agent_tracer.masking import redactors_for

            redactors_for(self.mask)  # a rule that does not compile is refused before anything starts

    def retention_cutoff(self) -> datetime | None:
        """Runs that started before this (naive UTC, now) are deleted; None without --retention."""
        from agent_tracer.store.models import utcnow

        return utcnow() - age_of(self.retention) if self.retention else None

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    def ui_off_reason(self) -> str | None:
        """Why the web UI is not served (None: it is). `ConfigError` when --ui asks for it where
        it would show every run to anyone who can reach the proxy."""
        if self.ui is False:
            return "turned off with --no-ui"
        if self.loopback or self.require_key:
            return None
        if self.ui:
            raise ConfigError(
                f"--ui on {self.host} would show every recorded run to anyone who can reach it: add --require-key"
            )
        return f"the proxy listens on {self.host} without --require-key (add it, or bind to 127.0.0.1)"


def age_of(text: str) -> timedelta:
    """An age such as 30d, 12w, 6h as a duration; `ConfigError` for anything else (a date too:
    a cut-off must move with time)."""
    from agent_tracer.store.queries import parse_age  # the store's words for ages

    age = parse_age(text)
    if age is None or age <= timedelta(0):
        raise ConfigError(f"--retention takes an age such as 30d, 12w or 6h, not {text!r}")
    return age


def export_settings(config: ProxyConfig, db: str) -> None:
    """Leave the settings where `settings_from_environment` in a worker process finds them."""
    os.environ[SETTINGS_ENV] = json.dumps({"proxy": asdict(config), "db": db})


def settings_from_environment() -> tuple[ProxyConfig, str]:
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"{SETTINGS_ENV} is not set: start workers with `agent-tracer proxy --workers N`")
    data = json.loads(raw)
    return ProxyConfig(**data["proxy"]), data["db"]
