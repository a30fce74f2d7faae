"""The run page's timing waterfall, and a run of 1,000 model calls paged."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm.exc import DetachedInstanceError
from starlette.testclient import TestClient

from agent_tracer.store import TraceStore
from agent_tracer.ui import create_app, views

START = datetime(2025, 4, 1, 12, 0, 0)
TRACE = "bb" * 16
ROW = re.compile(
    r'<div class="wf-row wf-(\w+)[^"]*" data-offset-ms="([\d.]+)" data-duration-ms="([\d.]+)">\s*'
    r'<div class="wf-label"[^>]*>([^<]*)</div>\s*<div class="wf-track">\s*'
    r'<div class="wf-bar" style="left: ([\d.]+)%; width: ([\d.]+)%"[^>]*></div>\s*'
    r'(?:<div class="wf-ttft" style="left: ([\d.]+)%")?'
)


def at(ms: float) -> datetime:
    return START + timedelta(milliseconds=ms)


def test_the_waterfall_follows_the_stored_timings(store_url):
    with TraceStore(store_url) as store:
        store.write(
            [
                ("trace", {"id": TRACE, "name": "timed", "started_at": START}),
                # written out of order: the page orders by start
                ("llm_call", {"id": "c2" * 8, "trace_id": TRACE, "request_model": "m-two", "started_at": at(520),
                              "latency_ms": 1000.0}),
                ("llm_call", {"id": "c1" * 8, "trace_id": TRACE, "request_model": "m-one", "started_at": at(0),
                              "latency_ms": 400.0, "ttft_ms": 100.0, "streamed": True}),
                ("tool_execution", {"id": "t1" * 8, "trace_id": TRACE, "name": "lookup", "started_at": at(450),
                                    "latency_ms": 50.0}),
            ]
        )  # fmt: skip
    with TestClient(create_app(store_url)) as client:
        page = client.get(f"/runs/{TRACE}").text
    rows = ROW.findall(page)
    assert [(kind, label) for kind, _, _, label, *_ in rows] == [
        ("llm", "#1 m-one"),
        ("tool", "lookup"),
        ("llm", "#2 m-two"),
    ]
    offsets = [float(row[1]) for row in rows]
    durations = [float(row[2]) for row in rows]
    assert offsets == [0.0, 450.0, 520.0] and durations == [400.0, 50.0, 1000.0]
    lefts = [float(row[4]) for row in rows]
    widths = [float(row[5]) for row in rows]
    span = 1520.0  # the last bar ends at 520 + 1000 ms
    assert lefts == [0.0, round(100 * 450 / span, 3), round(100 * 520 / span, 3)]
    assert abs(widths[2] / widths[0] - 2.5) < 1e-2 and abs(widths[0] / widths[1] - 8) < 1e-2  # 3 decimals in the page
    assert float(rows[0][6]) == round(100 * 100 / span, 3)  # first token, on the streamed call only
    assert rows[1][6] == "" and rows[2][6] == ""
    assert "first token 100 ms" in page


def long_run(url: str, calls: int) -> None:
    """One run whose agent resends its whole history, `calls` model calls each followed by a tool."""
    records: list[tuple[str, dict]] = [("trace", {"id": TRACE, "name": "long", "started_at": START})]
    history = [{"role": "system", "content": "You are a long-running agent."}, {"role": "user", "content": "Go."}]
    for n in range(calls):
        answer = {"role": "assistant", "content": f"step {n} done"}
        records.append(
            (
                "llm_call",
                {
                    "id": f"{n:016x}",
                    "trace_id": TRACE,
                    "request_model": "gpt-test",
                    "started_at": at(n * 10),
                    "latency_ms": 6.0,
                    "request": {"messages": list(history)},
                    "response": {"message": answer},
                },
            )
        )
        records.append(("tool_execution", {"id": f"t{n:015x}", "trace_id": TRACE, "name": "work",
                                           "started_at": at(n * 10 + 7), "latency_ms": 2.0}))  # fmt: skip
        history += [answer, {"role": "user", "content": f"continue after {n}"}]
    with TraceStore(url) as store:
        store.write(records)


def test_a_run_of_1000_calls_opens_paged(store_url, capsys):
    long_run(store_url, 1000)
    with TestClient(create_app(store_url)) as client:
        client.get(f"/runs/{TRACE}")  # warm: templates compiled, connections open
        timings = {}
        for page_number in (1, 5, 10):
            started = time.perf_counter()
            response = client.get(f"/runs/{TRACE}?page={page_number}")
            timings[page_number] = (time.perf_counter() - started) * 1000
            assert response.status_code == 200
            page = response.text.split('<h2 id="pair">')[0]  # not "Make a DPO pair", which shows the last answer
            first = (page_number - 1) * 100 + 1
            assert f"model calls {first}–{first + 99} of 1000 · page {page_number} of 10" in page
            assert page.count('class="node node-llm"') == 100
            assert page.count('class="wf-row wf-llm') == 100
            assert f"model call #{first} gpt-test" in page and f"model call #{first + 100} " not in page
            # each call shows only what is new: its answer and the user turn after the last one
            assert page.count(">step ") == 100
            assert page.count("You are a long-running agent.") == (1 if page_number == 1 else 0)
            # the page's calls, read whole: each one's new user turn and answer, and a link to its bodies
            links = re.findall(rf'href="http://testserver/runs/{TRACE}/calls/([0-9a-f]+)"', page)
            assert links == [f"{n:016x}" for n in range(first - 1, first + 99)]
            for n in (first - 1, first + 98):
                assert f">step {n} done<" in page
                assert (f">continue after {n - 1}<" in page) == (n > 0)
            assert f">continue after {first - 3}<" not in page  # the previous page's, not repeated
            assert f">continue after {first + 98}<" not in page  # the next page's first call's
        assert (
            'class="next-page" href="http://testserver/runs/' + TRACE + '?page=2"' in client.get(f"/runs/{TRACE}").text
        )
        last = client.get(f"/runs/{TRACE}?page=10").text
        assert 'class="prev-page"' in last and 'class="next-page"' not in last
        assert "page 10 of 10" in client.get(f"/runs/{TRACE}?page=99").text
        assert client.get(f"/runs/{TRACE}?page=x").status_code == 400
        bodies = client.get(f"/runs/{TRACE}/calls/{400:016x}").text  # a call shown light elsewhere, whole here
        assert "continue after 399" in bodies and "You are a long-running agent." in bodies
        with TraceStore(store_url) as store:  # before: every call read whole, as `traces show` reads them
            started = time.perf_counter()
            whole = store.get_trace(TRACE)
            before = views.run_page(whole, 5), views.waterfall(whole)
            whole_ms = (time.perf_counter() - started) * 1000
            light = store.get_trace(TRACE, full_calls=())
            assert light.calls[0].started_at == whole.calls[0].started_at
            with pytest.raises(DetachedInstanceError):  # a light call's bodies were never read
                light.calls[0].request  # noqa: B018
            store.fill_calls(light, views.page_call_ids(light, 5))
            after = views.run_page(light, 5), views.waterfall(light)
            assert after == before
    with capsys.disabled():
        shown = ", ".join(f"page {n}: {value:.0f} ms" for n, value in timings.items())
        print(
            f"\n[{store_url.split(':')[0]}] run page of 1,000 model calls, server time: {shown}"
            f" (page 5 with every call read whole: {whole_ms:.0f} ms before rendering)"
        )


def test_the_review_queue_shows_a_long_run_paged(tmp_path):
    """The queue reads a run as its page does: the first 100 model calls, only their bodies read
    (bench/ui.py's run of 1,000 calls, unrated and newest, made /review take 350-520 ms read whole)."""
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    long_run(url, 250)
    with TestClient(create_app(url)) as client:
        page = client.get("/review").text
    assert "model calls 1–100 of 250 · page 1 of 3" in page
    assert page.count('class="node node-llm"') == 100
    assert f'class="next-page" href="http://testserver/runs/{TRACE}?page=2"' in page
    links = re.findall(rf'href="http://testserver/runs/{TRACE}/calls/([0-9a-f]+)"', page)
    assert links == [f"{n:016x}" for n in range(100)]
    assert ">step 99 done<" in page and ">step 100 done<" not in page
