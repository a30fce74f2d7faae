"""Proxy fixtures: `agent-tracer proxy` as a real server process in front of the fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_tracer.store import TraceStore
from agent_tracer.testing.proxy_process import ProxyProcess


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory) -> Iterator[ProxyProcess]:
    """One proxy for the module, with a 1 s upstream time-out (the 504 case)."""
    process = ProxyProcess(upstream.url, tmp_path_factory.mktemp("proxy") / "traces.db", "--timeout", "1")
    yield process
    output = process.stop()
    assert process.stopped_cleanly, output


@pytest.fixture(scope="module")
def proxy_store(proxy) -> Iterator[TraceStore]:
    store = TraceStore(proxy.db_url)
    yield store
    store.close()
