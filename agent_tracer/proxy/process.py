"""`agent-tracer proxy` as a child process on a free loopback port, ready once `/healthz` answers.

The quickstart's swap stage runs the real proxy this way (so what it shows is what the command
does), and so do the tests and benchmarks that drive a proxy from outside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agent_tracer.loopback import free_port

__all__ = ["ProxyProcess"]

_CLEARED_ENV = ("AGENT_TRACER_DB", "AGENT_TRACER_PROXY_KEYS", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""Not inherited by the child: its store and keys are the ones given, never the caller's."""


class ProxyProcess:
    """`python -m agent_tracer.cli proxy …` on a free port; `stop()` sends SIGINT (uvicorn's
    graceful shutdown, which flushes the store) and waits."""

    def __init__(self, upstream_url: str, db: Path | str, *extra: str, env: dict[str, str] | None = None) -> None:
        """`upstream_url`: where OpenAI and Anthropic calls go; `db`: an SQLite file's path, or any
        store URL; `extra`: more `agent-tracer proxy` options; `env`: variables to set for the
        process (AGENT_TRACER_DB and the API key variables are cleared unless given here)."""
        self.port = free_port()
        self.db_url = db if isinstance(db, str) else f"sqlite:///{db}"
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        # What it prints goes to a file, not a pipe: a pipe nobody reads until stop() fills up and
        # blocks a proxy that logs much (a long quickstart, a load test).
        self._output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_tracer.cli",
                "proxy",
                "--port",
                str(self.port),
                "--db",
                self.db_url,
                "--upstream",
                f"openai={upstream_url}",
                "--upstream",
                f"anthropic={upstream_url}",
                *extra,
            ],
            env=env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited early:\n{self._printed()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).json().get("status") in ("ok", "degraded"):
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the proxy did not answer /healthz in time")

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0, *, group: bool = False) -> str:
        """Stop the process; returns what it printed. A clean stop exits 0 (SIGINT) or by the
        signal itself (uvicorn raises SIGTERM again once it has shut down): see `stopped_cleanly`.
        `group=True` signals its whole process group, as a terminal's Ctrl-C does."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.signal = sig
        return self._printed()

    def _printed(self) -> str:
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    @property
    def stopped_cleanly(self) -> bool:
        return self.process.returncode in (0, -self.signal)
