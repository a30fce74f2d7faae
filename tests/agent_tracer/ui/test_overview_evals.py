"""The overview's charts and the evaluation pages over HTTP: the numbers drawn are the store's,
a bad value is a 400, a report `agent-tracer eval` wrote is listed, opened and compared case by
case, its contents stay text, and nothing outside the report folders is served."""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest

from agent_tracer.store import TraceStore


def drawn(page: str, chart: str) -> Counter:
    """Series → the sum of the values the chart's bars carry."""
    svg = page.split(f'id="chart-{chart}"')[1].split("</figure>")[0]
    totals: Counter = Counter()
    for series, value in re.findall(r'<rect [^>]*data-series="([^"]+)" data-value="(\d+)"', svg):
        totals[series] += int(value)
    return totals


def test_the_overview_draws_the_stores_counts(ui_server, store: TraceStore):
    page = httpx.get(ui_server.url + "/overview?since=1d&bucket=hour").text
    stats = store.stats()
    calls = drawn(page, "calls")
    assert sum(calls.values()) == stats["llm_calls"] and calls["error"] == stats["errors"]
    assert drawn(page, "tokens") == {"input": stats["input_tokens"], "output": stats["output_tokens"]}
    assert drawn(page, "outcomes") == stats["by_outcome"]  # other tests may have rated some runs
    assert drawn(page, "routes") == {"direct": stats["llm_calls"]}  # captured by the decorator: no router
    assert f'data-calls="{stats["llm_calls"]}"' in page and 'data-runs="11"' in page
    assert "<title>" in page.split('id="chart-calls"')[1]
    cost = stats["input_tokens"] / 1000 * 0.0025 + stats["output_tokens"] / 1000 * 0.01  # ui_server's --prices
    shown = re.search(r'<p id="cost-total">Cost: <strong data-usd="([^"]+)"', page)
    assert shown and float(shown.group(1)) == pytest.approx(cost)
    assert 'id="no-reasons"' in page


def test_the_overview_picks_runs_by_the_route_that_answered(ui_server, store: TraceStore):
    """The form's Route select: every captured call passed no router ("direct"), none fell back."""
    direct = httpx.get(ui_server.url + "/overview?since=1d&route=direct").text
    fallback = httpx.get(ui_server.url + "/overview?since=1d&route=fallback").text
    assert sum(drawn(direct, "calls").values()) == store.stats()["llm_calls"]
    assert 'data-runs="0"' in fallback and '<option value="fallback" selected>' in fallback


def test_the_overview_takes_the_runs_filters(ui_server, store: TraceStore):
    page = httpx.get(ui_server.url + "/overview?since=1d&name=billing-*&outcome=partial").text
    assert drawn(page, "outcomes") == {"partial": len(store.traces(name="billing-*", outcome="partial"))}
    calls = sum(len(store.get_trace(t.id).calls) for t in store.traces(name="billing-*", outcome="partial"))
    assert sum(drawn(page, "calls").values()) == calls


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bucket=week", "bucket must be one of hour, day, not &#39;week&#39;"),
        ("since=lately", "since: not a time"),
        ("since=1000d&bucket=hour", "too many bars"),
        ("tools=maybe", "tools must be yes or no"),
    ],
)
def test_a_bad_overview_value_is_a_400_with_one_line(ui_server, query, message):
    response = httpx.get(f"{ui_server.url}/overview?{query}")
    assert response.status_code == 400 and message in response.text and "Traceback" not in response.text


def test_without_reports_the_page_says_how_to_make_one(ui_server):
    page = httpx.get(ui_server.url + "/evals").text
    assert 'id="no-reports"' in page and "agent-tracer eval" in page and "--reports" in page


def test_the_report_is_listed_with_each_endpoints_success(evals_server):
    page = httpx.get(evals_server.url + "/evals").text
    assert re.findall(r'data-endpoint="(\w+)" data-success="([\d/]+)"', page) == [("tuned", "2/3"), ("base", "0/3")]
    assert '<tr data-report="first">' in page and '<td class="num">3</td>' in page


def test_the_report_shows_the_rates_its_rows_carry(evals_server):
    page = httpx.get(evals_server.url + "/evals/first").text
    rows = {
        endpoint: dict(re.findall(r'data-key="(\w+)" data-rate="([\d/]+)"', row))
        for endpoint, row in re.findall(r'<tr data-endpoint="(\w+)">(.*?)</tr>', page, re.S)
    }
    assert rows["tuned"]["success"] == "2/3" and rows["tuned"]["tool_call_format"] == "3/3"
    assert rows["base"]["tool_call_format"] == "0/3" and rows["base"]["well_formed"] == "3/3"
    assert list(rows["base"])[0] == "success" and "reason" not in rows["base"] and "answer" not in rows["base"]
    assert re.findall(r'<tr data-case="(\w+)">', page) == ["o0", "o1", "o2"]
    report_md = httpx.get(evals_server.url + "/evals/first/files/report.md")
    assert report_md.status_code == 200 and report_md.text.startswith("# Evaluation: 3 cases")


def test_a_case_shows_both_answers_side_by_side_as_text(evals_server):
    page = httpx.get(evals_server.url + "/evals/first/cases/o2").text
    sections = dict(re.findall(r'<section class="answer" data-endpoint="(\w+)" data-success="(\w+)">', page))
    assert sections == {"tuned": "False", "base": "False"}
    assert "<pre>order 2</pre>" in page and "tools offered: lookup_order" in page
    assert "&#34;id&#34;: &#34;WRONG&#34;" in page  # the tuned call's arguments, pretty-printed
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "0 calls where 1 were expected" in page and 'data-key="tool_call_format">False' in page


def test_the_cases_filter_to_where_the_endpoints_differ_or_fail(evals_server):
    # tuned passes o0 and o1 and fails o2; base answers every case in prose and fails all three
    def cases(query: str) -> list[str]:
        return re.findall(r'<tr data-case="(\w+)">', httpx.get(evals_server.url + "/evals/first" + query).text)

    assert cases("?show=differ") == ["o0", "o1"]
    assert cases("?show=failed") == ["o0", "o1", "o2"]
    assert cases("?show=all") == cases("") == ["o0", "o1", "o2"]
    bad = httpx.get(evals_server.url + "/evals/first?show=worst")
    assert bad.status_code == 400 and "show must be one of all, differ, failed, got &#39;worst&#39;" in bad.text


def test_a_long_report_pages_its_cases(long_report_server):
    """1,200 cases show 500 a page; a page past the end shows the last."""
    first = httpx.get(long_report_server.url + "/evals/big").text
    last = httpx.get(long_report_server.url + "/evals/big?page=3").text
    beyond = httpx.get(long_report_server.url + "/evals/big?page=9").text
    bad = httpx.get(long_report_server.url + "/evals/big?page=0")
    assert re.findall(r'<tr data-case="(\w+)">', first) == [f"c{i:04d}" for i in range(500)]
    assert "cases 1–500 of 1,200 · page 1 of 3" in first and 'class="next-page"' in first
    assert re.findall(r'<tr data-case="(\w+)">', last) == [f"c{i:04d}" for i in range(1000, 1200)]
    assert "cases 1,001–1,200 of 1,200 · page 3 of 3" in last and 'class="next-page"' not in last
    assert "page 3 of 3" in beyond and re.findall(r'<tr data-case="(\w+)">', beyond)[0] == "c1000"
    assert bad.status_code == 400 and "page must be a whole number from 1, got &#39;0&#39;" in bad.text


@pytest.mark.parametrize(
    "path",
    [
        "/evals/first/files/..%2F..%2F..%2Fetc%2Fpasswd",
        "/evals/first/files/..%2Finput.jsonl",
        "/evals/..%2Ffirst/files/report.md",
        "/evals/first/files/%2Fetc%2Fpasswd",
        "/evals/first/files/index.html%00",
        "/evals/nothing",
        "/evals/first/cases/nothing",
    ],
)
def test_nothing_outside_the_report_folders_is_served(evals_server, path):
    response = httpx.get(evals_server.url + path)
    assert response.status_code == 404
    assert "root:" not in response.text and "expected" not in response.text


def test_the_reports_own_page_runs_sandboxed(evals_server):
    response = httpx.get(evals_server.url + "/evals/first/files/index.html")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("sandbox")
