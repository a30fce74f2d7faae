"""The runs page's status and held-out filters, done by the store's query on each database."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from starlette.testclient import TestClient

from agent_tracer.formats import HELD_OUT_TAG
from agent_tracer.store import TraceStore
from agent_tracer.ui import create_app

START = datetime(2025, 3, 1)
# id: (trace status, call statuses, tags)
RUNS = {
    "a1" * 16: ("ok", ["ok", "ok"], [HELD_OUT_TAG]),
    "a2" * 16: ("error", ["ok"], ["x"]),
    "a3" * 16: (None, ["ok", "error"], []),
    "a4" * 16: ("ok", ["incomplete"], ["not-held-out", 'x"held-out']),
    "a5" * 16: (None, [], ["a", HELD_OUT_TAG]),
    "a6" * 16: ("ok", ["ok"], None),
}


def fill(url: str) -> None:
    records = []
    for n, (trace_id, (status, calls, tags)) in enumerate(RUNS.items()):
        trace = {"id": trace_id, "name": "f", "started_at": START + timedelta(minutes=n), "status": status}
        if tags is not None:
            trace["tags"] = tags
        records.append(("trace", trace))
        for k, call_status in enumerate(calls):
            records.append(
                (
                    "llm_call",
                    {
                        "id": f"{trace_id[:8]}{k:08x}",
                        "trace_id": trace_id,
                        "status": call_status,
                        "started_at": START + timedelta(minutes=n, seconds=k),
                    },
                )
            )
    with TraceStore(url) as store:
        store.write(records)


def ids(prefixes: str) -> set[str]:
    return {p * 16 for p in prefixes.split()}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "error"}, "a2 a3 a4"),
        ({"status": "ok"}, "a1 a5 a6"),
        ({"held_out": True}, "a1 a5"),
        ({"held_out": False}, "a2 a3 a4 a6"),
        ({"status": "ok", "held_out": False}, "a6"),
    ],
)
def test_the_store_filters_status_and_held_out(store_url, filters, expected):
    fill(store_url)
    with TraceStore(store_url) as store:
        assert {trace.id for trace in store.traces(**filters)} == ids(expected)
        assert store.count_traces(**filters) == len(ids(expected))


def test_the_runs_page_filters_by_url(store_url):
    fill(store_url)
    with TestClient(create_app(store_url)) as client:

        def shown(query: str) -> set[str]:
            page = client.get(f"/?{query}")
            assert page.status_code == 200, page.text
            return set(re.findall(r'<tr data-id="([0-9a-f]+)"', page.text))

        assert shown("status=error") == ids("a2 a3 a4")
        assert shown("held_out=yes") == ids("a1 a5")
        assert shown("held_out=no&status=error") == ids("a2 a3 a4")
        page = client.get("/?status=error&held_out=no").text
        assert '<option value="error" selected>' in page and '<option value="no" selected>' in page
        for query, message in (("status=broken", "status must be ok or error"), ("held_out=maybe", "held_out must")):
            bad = client.get(f"/?{query}")
            assert bad.status_code == 400 and message in bad.text


def test_the_app_catches_the_search_index_up_while_idle(tmp_path, monkeypatch):
    """With the app running and no search, SQLite's index catches up with calls written after
    the app opened the store (by another process in life: the proxy's writer), a batch at a time."""
    import time

    import sqlalchemy as sa

    from agent_tracer.store import search as search_module
    from agent_tracer.ui import catchup

    monkeypatch.setattr(search_module.index_calls, "__defaults__", (2,))
    monkeypatch.setattr(catchup.index_while_idle, "__kwdefaults__", {"idle_pause": 0.05, "batch_pause": 0.0})
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    TraceStore(url).close()
    with TestClient(create_app(url, read_only=True)):
        with TraceStore(url) as writer:
            writer.write(
                [("trace", {"id": f"{n:032x}", "name": "a"}) for n in range(5)]
                + [
                    (
                        "llm_call",
                        {
                            "id": f"{n:016x}",
                            "trace_id": f"{n:032x}",
                            "request": {"messages": [{"role": "user", "content": f"word{n}"}]},
                        },
                    )
                    for n in range(5)
                ]
            )
            deadline = time.monotonic() + 20
            while True:
                with writer.engine.connect() as conn:
                    if not search_module.unindexed_calls(conn):
                        break
                assert time.monotonic() < deadline, "the idle catch-up did not index the calls"
                time.sleep(0.05)
            with writer.engine.connect() as conn:
                indexed = conn.execute(sa.text(f"SELECT count(*) FROM {search_module.FTS_TABLE}_docsize")).scalar_one()
            assert indexed == 5
