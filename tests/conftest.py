"""Fixtures shared by every test: a loopback server that answers like the model APIs."""

from __future__ import annotations

import pytest

from agent_tracer.testing import FakeUpstream


@pytest.fixture(scope="session")
def upstream():
    with FakeUpstream() as server:
        yield server
