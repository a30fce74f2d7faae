"""OTLP ingest fixtures: the scripted fake model, an OpenAI client on it, `agent-tracer collect`."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from otlp_loop import CollectProcess, script

from agent_tracer.testing import FakeUpstream


@pytest.fixture
def scripted_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(reply=script) as server:
        yield server


@pytest.fixture
def client(scripted_upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_upstream.openai_base_url, api_key="sk-test", max_retries=0)


@pytest.fixture(scope="package")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectProcess]:
    folder = tmp_path_factory.mktemp("collect")
    server = CollectProcess(f"sqlite:///{folder / 'otlp.db'}", "--spill", str(folder / "spill.jsonl"))
    yield server
    server.stop()
