"""Waiting for what a proxy's writer stores, for tests that drive `agent-tracer proxy` from
outside (`agent_tracer.proxy.process.ProxyProcess` starts it)."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_tracer.store import LLMCall, TraceStore


def wait_for_call(store: TraceStore, predicate: Callable[[LLMCall], bool], timeout: float = 5.0) -> LLMCall:
    """The one stored call that matches, once the proxy's writer has written it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [call for call in store.calls() if predicate(call)]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)


def marked(marker: str) -> Callable[[LLMCall], bool]:
    return lambda call: marker in (call.raw_request or "")
