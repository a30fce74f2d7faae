"""A circuit breaker per primary endpoint: stop waiting on a primary that keeps failing.

Closed: every call tries the primary. After `failures` failures in a row it opens: calls skip the
primary (reason `circuit_open`) for `cooldown_s`. Then it is half-open: one call tries the primary
while the others still skip it; success closes the breaker, failure opens it for another cool-down.

Only failures of the endpoint count (no connection, time-outs, 429 and 5xx answers): a bad answer
says something about one request, not about whether the primary is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_tracer.proxy.routes import Breaker


class CircuitBreaker:
    __slots__ = ("settings", "failures", "open_until", "trial", "clock")

    def __init__(self, settings: Breaker, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.failures = 0
        self.open_until: float | None = None
        self.trial = False
        """A half-open trial call is under way."""
        self.clock = clock

    @property
    def state(self) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if self.clock() < self.open_until else "half-open"

    def allow(self) -> bool:
        """Whether this call may try the primary (taking the half-open trial if it is free)."""
        if self.open_until is None:
            return True
        if self.trial or self.clock() < self.open_until:
            return False
        self.trial = True
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = None
        self.trial = False

    def failed(self) -> None:
        self.failures += 1
        if self.trial or self.failures >= self.settings.failures:
            self.open_until = self.clock() + self.settings.cooldown_s
        self.trial = False

    def released(self) -> None:
        """The call that took the trial ended without a verdict on the endpoint (e.g. a bad
        answer, or the client left): let the next call try."""
        self.trial = False
