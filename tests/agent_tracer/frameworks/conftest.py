"""Framework fixtures: the scripted fake model, and stores that really capture (see `framework_loop`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from framework_loop import Recording, start, two_tool_loop

import agent_tracer
from agent_tracer.testing import FakeUpstream


@pytest.fixture
def upstream_loop() -> Iterator[FakeUpstream]:
    with FakeUpstream(reply=two_tool_loop) as upstream:
        yield upstream


@pytest.fixture
def recording(tmp_path, upstream_loop) -> Iterator[Recording]:
    """A store capturing with every installed framework's adapter on."""
    recording = start(tmp_path, upstream_loop, "adapters", frameworks="auto")
    try:
        yield recording
    finally:
        agent_tracer.uninstrument()


@pytest.fixture
def decorated(tmp_path, upstream_loop) -> Iterator[Recording]:
    """A store capturing with our own decorators only (the adapters off)."""
    recording = start(tmp_path, upstream_loop, "decorated")
    try:
        yield recording
    finally:
        agent_tracer.uninstrument()
