"""The one active capture runtime of a process: config, spans, writer, transport patch.

`agent_tracer.init()` builds it and `uninstrument()` takes it down, like an OpenTelemetry
instrumentor: idempotent, and everything it changed is restored. The app's own TracerProvider is
joined when it has an SDK one (our spans reach its processors and exporters too); otherwise a
private provider is used and the global one is left alone.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from agent_tracer.capture import TransportPatch
from agent_tracer.config import TracerConfig
from agent_tracer.errors import ConfigError
from agent_tracer.exporter import CaptureStats, Payload, StoreExporter
from agent_tracer.recorder import WireCalls

logger = logging.getLogger("agent_tracer")
VERSION = "0.1.0"


def _open_store(url: str):
    from agent_tracer.store import TraceStore

    return TraceStore(url)


class Runtime:
    def __init__(self, config: TracerConfig, *, instrument: bool = True) -> None:
        """`instrument=False` records only what is handed to it (the proxy drives its own
        `CallRecorder`s) and leaves the httpx transports alone."""
        self.config = config
        self.stats = CaptureStats()
        self._warned: set[str] = set()
        self._otlp: SpanProcessor | None = None
        self.spans_wanted = False
        """Whether model-call spans reach anyone (the app's provider, OTLP): only then are calls
        decoded on the agent's thread to put the GenAI attributes on them."""
        self.wire_calls = WireCalls()
        """The spans this process's transport recorded model calls in (`recorder.WireCalls`)."""
        self.provider = self._join_provider()
        self.tracer = self.provider.get_tracer("agent_tracer", VERSION)
        self.exporter = self._start_writer()
        self.patch = TransportPatch(self)
        if instrument:
            self.patch.install()

    def _join_provider(self) -> TracerProvider:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
            self.spans_wanted = True
        else:
            provider = TracerProvider(resource=Resource.create({"service.name": self.config.service_name}))
            self.spans_wanted = bool(self.config.otlp_endpoint)
        if self.config.otlp_endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                raise ConfigError("otlp_endpoint needs the OTLP exporter: pip install 'agent-tracer[otlp]'") from None
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self._otlp = BatchSpanProcessor(OTLPSpanExporter(endpoint=self.config.otlp_endpoint))
            provider.add_span_processor(self._otlp)
        return provider

    def _start_writer(self) -> StoreExporter:
        if self.config.writer == "process":
            from agent_tracer.writer_process import ProcessExporter

            try:
                return ProcessExporter(self.config, self.stats, _open_store)
            except OSError as exc:  # no child process here (a sandbox, an embedded interpreter)
                logger.warning("agent-tracer: cannot start the writer process (%s); writing from a thread", exc)
        return StoreExporter(self.config, self.stats, _open_store)

    def submit(self, payload: Payload) -> None:
        self.exporter.submit(payload)

    def health(self) -> dict[str, Any]:
        """What an operator's alert reads (`/healthz`, `/metrics`): whether the store takes
        writes, what waits to be written and for how long, what is spilled, the writes' time."""
        figures = self.stats.health()
        try:
            spilled = os.path.getsize(self.config.spill_path)
        except OSError:
            spilled = 0
        return {
            "store": "unreachable" if figures["store_down"] else "ok",
            "queued": self.exporter.queued(),
            "oldest_unwritten_s": round(self.exporter.oldest_age(), 3),
            "spill_bytes": spilled,
            "writes": figures["writes"],
            "write_seconds": figures["write_ms"] / 1000,
        }

    def capture_failed(self, what: str, exc: BaseException) -> None:
        """Count a capture failure; log the first of each kind, so a broken codec cannot flood the log."""
        self.stats.add("capture_errors")
        if what not in self._warned:
            self._warned.add(what)
            logger.warning(
                "agent-tracer: %s failed, the call was not recorded (%s: %s)",
                what,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )

    def shutdown(self, timeout: float | None = None) -> None:
        self.patch.remove()
        self.exporter.shutdown(timeout)
        if self._otlp is not None:
            self._otlp.shutdown()


_lock = threading.Lock()
_active: Runtime | None = None


def current() -> Runtime | None:
    return _active


def start(config: TracerConfig, *, instrument: bool = True) -> Runtime:
    """The process's runtime, started once; `instrument=False` skips wrapping the httpx transports."""
    global _active
    with _lock:
        if _active is not None:
            if _active.config != config:
                logger.warning(
                    "agent-tracer: init() called again with other settings; "
                    "call uninstrument() first to change them. Keeping the first ones."
                )
            return _active
        _active = Runtime(config, instrument=instrument)
        return _active


def stop(timeout: float | None = None) -> None:
    global _active
    with _lock:
        runtime, _active = _active, None
    if runtime is not None:
        runtime.shutdown(timeout)
