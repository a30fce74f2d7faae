"""The UI over HTTP: pages and their status codes, CSRF, keys, read-only, and the command's refusals."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from agent_tracer.cli import main
from agent_tracer.store import TraceStore
from agent_tracer.ui import create_app


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_runs_page_lists_every_run_newest_first(ui_server, store):
    page = httpx.get(ui_server.url + "/").text
    shown = re.findall(r'<tr data-id="([0-9a-f]+)"', page)
    assert shown == [trace.id for trace in store.traces()]
    assert len(shown) == 11


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("rating=abc", "rating must be a number, not &#39;abc&#39;"),
        ("since=yesterdayish", "since: not a time: &#39;yesterdayish&#39;"),
        ("tools=maybe", "tools must be yes or no"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("after=nonsense", "after must be a cursor from a Next link"),
    ],
)
def test_a_bad_filter_is_a_400_with_one_line(ui_server, query, message):
    response = httpx.get(f"{ui_server.url}/?{query}")
    assert response.status_code == 400
    assert message in response.text
    assert "Traceback" not in response.text


def test_an_unknown_run_is_a_404_page(ui_server):
    response = httpx.get(ui_server.url + "/runs/ffffffffffff")
    assert response.status_code == 404
    assert "Unknown run: no trace with id &#39;ffffffffffff&#39;" in response.text


def test_a_run_opens_by_id_prefix(ui_server, store):
    trace = store.traces(name="orders-agent", outcome="success")[0]
    response = httpx.get(f"{ui_server.url}/runs/{trace.id[:10]}")
    assert response.status_code == 200
    assert trace.id in response.text


def test_a_post_without_a_valid_csrf_token_is_refused(ui_server, store):
    trace = store.traces(name="orders-agent")[0]
    before = len(store.get_trace(trace.id).feedback)
    with httpx.Client(base_url=ui_server.url) as client:
        page = client.get(f"/runs/{trace.id}").text
        missing = client.post(f"/runs/{trace.id}/review", data={"rating": "2"})
        forged = client.post(f"/runs/{trace.id}/review", data={"rating": "2", "csrf_token": "0" * 64})
        other_site = client.post(
            f"/runs/{trace.id}/review",
            data={"rating": "2", "csrf_token": csrf(page)},
            headers={"Origin": "https://evil.example"},
        )
    with httpx.Client(base_url=ui_server.url) as stranger:  # another browser: a token not made for it
        stolen = stranger.post(f"/runs/{trace.id}/review", data={"rating": "2", "csrf_token": csrf(page)})
    for response in (missing, forged, other_site, stolen):
        assert response.status_code == 403
        assert "Refused" in response.text
    assert len(store.get_trace(trace.id).feedback) == before


def test_a_review_with_its_token_writes_feedback_and_redirects(ui_server, store):
    trace = store.traces(name="orders-agent", outcome="success")[0]
    with httpx.Client(base_url=ui_server.url) as client:
        token = csrf(client.get(f"/runs/{trace.id}").text)
        response = client.post(
            f"/runs/{trace.id}/review",
            data={"csrf_token": token, "label": "golden", "comment": "checked by hand", "tags": "reviewed"},
            headers={"Origin": ui_server.url},
        )
        assert response.status_code == 303
        assert response.headers["location"].endswith(f"/runs/{trace.id}#review")
        bad = client.post(f"/runs/{trace.id}/review", data={"csrf_token": token, "rating": "9"})
        assert bad.status_code == 400
        assert "Not saved: rating must be from 0 to 5, got 9.0" in bad.text
    detail = store.get_trace(trace.id)
    assert (detail.feedback[-1].label, detail.feedback[-1].comment, detail.feedback[-1].source) == (
        "golden",
        "checked by hand",
        "ui",
    )
    assert "reviewed" in detail.trace.tags


def test_read_only_refuses_writes_and_shows_no_form(read_only_server, store):
    trace = store.traces()[0]
    with httpx.Client(base_url=read_only_server.url) as client:
        page = client.get(f"/runs/{trace.id}").text
        assert 'id="review-form"' not in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is None
        response = client.post(f"/runs/{trace.id}/review", data={"rating": "1"})
    assert response.status_code == 403


def test_headers_over_64_kib_are_a_431_from_the_ui(ui_server):
    response = httpx.get(ui_server.url + "/", headers={"cookie": "a=" + "x" * 100_000})
    assert response.status_code == 431 and "64 KiB" in response.text


def test_the_key_is_required_as_bearer_or_login_cookie(keyed_server, ui_key):
    KEY = ui_key
    assert httpx.get(keyed_server.url + "/").status_code == 401
    assert (
        httpx.get(keyed_server.url + "/", headers={"Authorization": "Bearer wrong-key-0123456789"}).status_code == 401
    )
    assert httpx.get(keyed_server.url + "/", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    with httpx.Client(base_url=keyed_server.url) as client:
        token = csrf(client.get("/login").text)
        assert client.post("/login", data={"csrf_token": token, "key": "nope"}).status_code == 401
        response = client.post("/login", data={"csrf_token": token, "key": KEY})
        assert response.status_code == 303
        assert client.get("/").status_code == 200
        assert KEY not in client.get("/").text


def test_the_command_refuses_another_host_without_a_key(tmp_path):
    result = CliRunner().invoke(main, ["ui", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "add --require-key" in result.output
    missing = CliRunner().invoke(main, ["ui", "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert missing.exit_code == 1
    assert "no trace store at" in missing.output


def test_keyset_pages_walk_every_run_once(store_url):
    """On each database: pages of the runs, by the Next link's cursor, equal the whole list."""
    start = datetime(2025, 1, 1)
    with TraceStore(store_url) as fresh:
        fresh.write(
            [
                ("trace", {"id": f"{n:032x}", "name": "a", "started_at": start + timedelta(seconds=n // 3)})
                for n in range(1, 11)
            ]
            + [("trace", {"id": f"{n:032x}", "name": "a"}) for n in range(11, 14)]  # no start time: last
        )
        everything = [trace.id for trace in fresh.traces()]
    with TestClient(create_app(store_url)) as client:
        seen: list[str] = []
        url = "/?limit=4&name=a"
        while url:
            page = client.get(url).text
            seen += re.findall(r'<tr data-id="([0-9a-f]+)"', page)
            found = re.search(r'id="next" href="([^"]+)"', page)
            url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == everything
    assert len(seen) == 13


def test_the_route_that_answered_is_a_column_and_the_run_shows_why(store_url):
    trace_id = "ab" * 16
    with TraceStore(store_url) as fresh:
        fresh.write(
            [
                ("trace", {"id": trace_id, "name": "routed", "started_at": datetime(2025, 1, 1)}),
                (
                    "llm_call",
                    {
                        "id": "c1" * 8,
                        "trace_id": trace_id,
                        "request_model": "tuned",
                        "route": "fallback",
                        "fallback_reason": "malformed_tool_call",
                        "started_at": datetime(2025, 1, 1),
                    },
                ),
            ]
        )
        assert fresh.trace_routes([trace_id]) == {trace_id: ["fallback"]}
    with TestClient(create_app(store_url)) as client:
        assert "<td>fallback</td>" in client.get("/").text
        assert "route fallback (malformed_tool_call)" in client.get(f"/runs/{trace_id}").text


def test_the_app_mounted_under_a_root_path_links_within_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    with TraceStore(url) as fresh:
        fresh.write([("trace", {"id": "cd" * 16, "name": "mounted", "started_at": datetime(2025, 1, 1)})])
    with TestClient(create_app(url, root_path="/agent-tracer/ui")) as client:
        page = client.get("/agent-tracer/ui/").text
        assert 'href="http://testserver/agent-tracer/ui/runs/' + "cd" * 16 + '"' in page
        assert "/agent-tracer/ui/static/ui.css" in page
        assert client.get("/agent-tracer/ui/static/ui.css").status_code == 200
        assert client.get("/").status_code == 404
