"""Proxy fixtures: `agent-tracer proxy` as a real server process in front of the fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore


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


class Samples(dict):
    """Prometheus samples as (name, sorted labels) → value; called with a name and labels, the
    value (0 when absent, as for a counter that never moved)."""

    def __call__(self, name: str, **labels: str) -> float:
        return self.get((name, tuple(sorted(labels.items()))), 0.0)


def _parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families  # Prometheus' own parser

    return Samples(
        ((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )


@pytest.fixture
def parse_metrics():
    return _parse


@pytest.fixture
def scrape():
    """GET a proxy's /metrics and parse it as a Prometheus server would."""

    def get(url: str) -> Samples:
        response = httpx.get(url + "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return _parse(response.text)

    return get
