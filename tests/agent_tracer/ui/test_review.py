"""Reviewing from the list and in the queue, over HTTP, on each database: bulk feedback, the
queue's walk over the unrated runs, CSRF and read-only refusals."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from starlette.testclient import TestClient

from agent_tracer.store import TraceStore
from agent_tracer.ui import create_app


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def fill(url: str) -> list[str]:
    """Five runs of agent "a", newest first: the 2nd is rated, the others not; one run of "b"."""
    start = datetime(2025, 1, 1)
    ids = [f"{n:032x}" for n in range(1, 6)]
    with TraceStore(url) as fresh:
        fresh.write(
            [("trace", {"id": ids[n], "name": "a", "started_at": start + timedelta(minutes=n)}) for n in range(5)]
            + [("trace", {"id": "f" * 32, "name": "b", "started_at": start})]
        )
        fresh.record_feedback(ids[3], rating=5)
    return ids[::-1]


def test_bulk_review_writes_feedback_for_each_selected_run(store_url):
    ids = fill(store_url)
    with TestClient(create_app(store_url)) as client:
        page = client.get("/?name=a").text
        assert page.count('name="run"') == 5 and 'id="bulk-form"' in page
        form = {"csrf_token": csrf(page), "back": "name=a", "outcome": "success", "rating": "4", "tags": "bulk, x"}
        response = client.post("/bulk-review", data={**form, "run": ids[:2]}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "http://testserver/?name=a&reviewed=2"
        assert "Rated 2 runs." in client.get(response.headers["location"]).text
    with TraceStore(store_url) as store:
        rows = [row for row in store.feedback() if row.source == "ui"]
        assert sorted(row.trace_id for row in rows) == sorted(ids[:2])
        assert {(row.outcome, row.rating) for row in rows} == {("success", 4.0)}
        for trace_id in ids[:2]:
            trace = store.get_trace(trace_id).trace
            assert (trace.outcome, trace.rating, trace.tags) == ("success", 4.0, ["bulk", "x"])
        assert store.get_trace(ids[2]).trace.rating is None


def test_bulk_review_refusals_write_nothing(store_url):
    ids = fill(store_url)
    with TestClient(create_app(store_url)) as client:
        token = csrf(client.get("/").text)
        no_token = client.post("/bulk-review", data={"run": ids[:2], "rating": "2"})
        assert no_token.status_code == 403 and "Refused" in no_token.text
        nothing = client.post("/bulk-review", data={"csrf_token": token, "rating": "2"})
        assert nothing.status_code == 400 and "select at least one run" in nothing.text
        unknown = client.post("/bulk-review", data={"csrf_token": token, "run": [ids[0], "ab" * 16], "rating": "2"})
        assert unknown.status_code == 400 and "unknown runs: " + "ab" * 16 in unknown.text
        bad = client.post("/bulk-review", data={"csrf_token": token, "run": ids[:2], "rating": "7"})
        assert bad.status_code == 400 and "rating must be from 0 to 5" in bad.text
        empty = client.post("/bulk-review", data={"csrf_token": token, "run": ids[:2]})
        assert empty.status_code == 400 and "give at least one of" in empty.text
    with TraceStore(store_url) as store:
        assert [row.source for row in store.feedback()] == ["api"]  # only fill()'s


def test_read_only_hides_the_bulk_form_and_the_queue_buttons_and_refuses(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    ids = fill(url)
    with TestClient(create_app(url, read_only=True)) as client:
        page = client.get("/").text
        assert 'id="bulk-form"' not in page and 'name="run"' not in page
        queue = client.get("/review").text
        assert 'id="queue-form"' not in queue and ids[0] in queue
        assert client.post("/bulk-review", data={"run": ids[:1], "rating": "3"}).status_code == 403
        assert client.post(f"/review/{ids[0]}", data={"rating": "3"}).status_code == 403


def test_the_queue_walks_the_unrated_runs_of_the_filter(store_url):
    ids = fill(store_url)  # ids[1] is rated: the queue holds ids 0, 2, 3, 4
    with TestClient(create_app(store_url)) as client:
        runs = client.get("/?name=a").text
        assert 'id="review-these" href="http://testserver/review?name=a"' in runs
        page = client.get("/review?name=a").text
        assert shown(page) == ids[0] and progress(page) == "1 of 4 unrated"
        assert 'id="previous"' not in page
        response = client.post(
            f"/review/{ids[0]}",
            data={"csrf_token": csrf(page), "rating": "3", "back": "name=a", "here": here(page), "done": "0"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        page = client.get(response.headers["location"]).text
        assert shown(page) == ids[2] and progress(page) == "2 of 4 unrated"  # the rated one is passed over
        skipped = client.get(link(page, "skip")).text
        assert shown(skipped) == ids[3] and progress(skipped) == "3 of 4 unrated"
        back = client.get(link(skipped, "previous")).text
        assert shown(back) == ids[2] and progress(back) == "2 of 4 unrated"
        last = client.get(link(client.get(link(skipped, "skip")).text, "skip")).text
        assert "The end of the queue: 3 runs of this filter are still unrated" in last
        assert 'id="restart"' in last
        assert "No unrated runs match this filter." in client.get("/review?name=a&rating=1").text
        assert client.get("/review?rating=abc").status_code == 400
        assert client.get("/review?run=" + "ab" * 16).status_code == 404
    with TraceStore(store_url) as store:
        assert store.get_trace(ids[0]).trace.rating == 3.0
        assert store.feedback()[-1].source == "ui"


def shown(page: str) -> str:
    return re.search(r'id="queue-run" data-id="([0-9a-f]+)"', page).group(1)


def progress(page: str) -> str:
    return re.search(r'id="progress">([^<]+)<', page).group(1)


def here(page: str) -> str:
    return re.search(r'name="here" value="([^"]+)"', page).group(1)


def link(page: str, name: str) -> str:
    return re.search(rf'id="{name}" href="([^"]+)"', page).group(1).replace("&amp;", "&")
