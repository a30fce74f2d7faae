"""Settings of the capture side, one dataclass, defaults from the environment.

`agent_tracer.init(**kwargs)` builds a `TracerConfig` from its keyword arguments; anything not given
comes from the environment variables named in each field's help, then from the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from agent_tracer.errors import ConfigError
from agent_tracer.semconv import CAPTURE_CONTENT_ENV
from agent_tracer.store.database import DEFAULT_URL, default_url, parse_url


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class TracerConfig:
    db: str = field(
        default="",
        metadata={"help": f"SQLAlchemy URL of the trace store (env AGENT_TRACER_DB; default {DEFAULT_URL})."},
    )
    spill_path: str = field(
        default="",
        metadata={
            "help": "JSONL file for what the store could not take (env AGENT_TRACER_SPILL; default: beside "
            "the SQLite file, or agent_tracer_spill.jsonl in the working directory)."
        },
    )
    otlp_endpoint: str | None = field(
        default=None,
        metadata={"help": "Also send spans to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318/v1/traces."},
    )
    service_name: str = field(
        default="agent",
        metadata={"help": "service.name of the TracerProvider that init() creates when the app has none."},
    )
    capture_content: bool = field(
        default=False,
        metadata={
            "help": f"Put message content on spans as well (env {CAPTURE_CONTENT_ENV}); the store always keeps it."
        },
    )
    writer: str = field(
        default="process",
        metadata={
            "help": "Where stored calls are decoded and written: 'process' (a child process, so the "
            "agent's threads never wait for it) or 'thread' (a thread in this process)."
        },
    )
    queue_size: int = field(
        default=100_000,
        metadata={"help": "Finished spans waiting for the writer; past this they are dropped and counted."},
    )
    batch_size: int = field(default=512, metadata={"help": "Spans written to the store in one transaction."})
    flush_interval_s: float = field(
        default=0.5, metadata={"help": "How long a span may wait before the writer takes a partial batch."}
    )
    write_retries: int = field(
        default=3, metadata={"help": "Tries of a failed batch before it is spilled to the spill file."}
    )
    retry_backoff_s: float = field(default=0.2, metadata={"help": "First pause between tries; doubles each time."})
    shutdown_timeout_s: float = field(
        default=5.0, metadata={"help": "How long exit waits for the writer; what is left is spilled."}
    )
    mask: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Mask what is stored (and spilled) before it is written: 'default' (API keys, emails, "
            "card numbers, phone numbers, public IPs), one of secret, email, card, phone, ip, or "
            "NAME=REGEX (replaced by [NAME]); repeatable. The agent's own calls are unchanged."
        },
    )
    mask_function: Callable[[str], str] | None = field(
        default=None,
        metadata={
            "help": "Your own function of a text, run after the mask rules on every string stored; a "
            "module-level function (the writer process imports it by name) unless writer='thread'."
        },
    )

    def __post_init__(self) -> None:
        self.db = self.db or default_url()
        url = parse_url(self.db)
        if not self.spill_path:
            self.spill_path = os.environ.get("AGENT_TRACER_SPILL") or _default_spill_path(url)
        self.capture_content = self.capture_content or _env_flag(CAPTURE_CONTENT_ENV)
        if self.writer not in ("process", "thread"):
            raise ConfigError(f"writer must be 'process' or 'thread', got {self.writer!r}")
        if self.queue_size < 1 or self.batch_size < 1 or self.write_retries < 1:
            raise ConfigError("queue_size, batch_size and write_retries must be at least 1")
        self.mask = (self.mask,) if isinstance(self.mask, str) else tuple(self.mask)
        if self.mask or self.mask_function is not None:
            from agent_tracer.masking import Masker

            Masker.from_settings(self.mask, self.mask_function)  # a bad rule is an error now, not in the writer
        if self.mask_function is not None and self.writer == "process":
            _check_importable(self.mask_function)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _check_importable(function: Callable[[str], str]) -> None:
    """The writer process gets `mask_function` by its module and name: it must be found there."""
    import importlib

    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    try:
        found = importlib.import_module(module) if module and module != "__main__" else None
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, TypeError):
        found = None
    if found is not function:
        raise ConfigError(
            f"mask_function {name or function!r} must be a module-level function of an importable module "
            "(the writer process imports it), or pass writer='thread'"
        )


def _default_spill_path(url) -> str:
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return str(Path(url.database).with_suffix(".spill.jsonl"))
    return "agent_tracer_spill.jsonl"
