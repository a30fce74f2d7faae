"""Cost in the UI over HTTP, on runs really captured through the OpenAI SDK from a fake API that
answers with known models and token counts: the exact cost of each run in the runs list, of each
call on the run page, "–" with the reason for a model the table does not know, the overview's cost
chart and its bars' links, `--prices FILE` over the defaults, and a bad price file refused in one
line (by `agent-tracer ui` and `agent-tracer proxy`)."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.store import TraceStore


def run_ids(url: str) -> dict[str, str]:
    with TraceStore(url) as store:
        return {trace.name or "": trace.id for trace in store.traces()}


def cost_cells(page: str) -> dict[str, tuple[str, str]]:
    """Run id → (the cost cell's text, its tooltip) in a runs page."""
    cells = {}
    for row in re.findall(r'<tr data-id="([0-9a-f]+)">(.*?)</tr>', page, re.S):
        cell = re.search(r'<td class="num cost[^"]*"(?: title="([^"]*)")?>([^<]*)</td>', row[1])
        assert cell, row[1]
        cells[row[0]] = (html.unescape(cell.group(2)), html.unescape(cell.group(1) or ""))
    return cells


def test_the_runs_list_shows_each_runs_exact_cost(cost_server, priced_url):
    ids = run_ids(priced_url)
    cells = cost_cells(httpx.get(cost_server.url + "/").text)
    assert cells[ids["two-frontier"]] == ("$0.015", "")
    assert cells[ids["small"]] == ("$0.000036", "")
    assert cells[ids["tuned-only"]] == ("–", "no price for model my-tuned: add it with --prices FILE (1 call)")
    text, tooltip = cells[ids["mixed"]]
    assert text == "≥ $0.0075" and tooltip.startswith("1 of 2 calls not priced: no price for model my-tuned")


def test_the_run_page_shows_each_calls_tokens_and_cost(cost_server, priced_url):
    ids = run_ids(priced_url)
    page = httpx.get(f"{cost_server.url}/runs/{ids['mixed']}").text
    assert re.search(r'id="fact-cost" title="1 of 2 calls not priced[^"]*">≥ \$0.0075</dd>', page)
    calls = re.findall(r"<h3>model call #\d+ (.*?)</h3>", page, re.S)
    assert len(calls) == 2
    assert "gpt-4o-2024-08-06" in calls[0] and "tokens 1,000 in / 500 out" in calls[0]
    assert '<span class="fact cost">cost $0.0075</span>' in calls[0]
    assert "my-tuned" in calls[1] and "tokens 1,000 in / 500 out" in calls[1]
    unknown = "no price for model my-tuned: add it with --prices FILE (1 call)"
    assert f'<span class="fact cost" title="{unknown}">cost –</span>' in calls[1]
    whole = httpx.get(f"{cost_server.url}/runs/{ids['two-frontier']}").text
    assert '<dd id="fact-cost">$0.015</dd>' in whole


def test_the_overview_draws_cost_per_model_and_its_bars_open_the_runs_they_count(cost_server, priced_url):
    page = httpx.get(cost_server.url + "/overview?since=1d&bucket=hour").text
    svg = page.split('id="chart-cost"')[1].split("</figure>")[0]
    bars = re.findall(r'<a class="bar-link" href="([^"]+)"><rect [^>]*data-series="([^"]+)" data-value="([^"]+)"', svg)
    drawn: dict[str, float] = {}
    for _, series, value in bars:
        drawn[series] = drawn.get(series, 0.0) + float(value)
    assert drawn == {"gpt-4o-2024-08-06": pytest.approx(3 * 0.0075), "gpt-4o-mini": pytest.approx(0.000036)}
    assert '<strong data-usd="' in page and "≥ $0.0225" in page  # the span's total, partial
    assert "no price for model my-tuned: add it with --prices FILE (2 calls)" in page
    link = html.unescape(next(href for href, series, _ in bars if series == "gpt-4o-2024-08-06"))
    assert "since=" in link and "until=" in link and "model=gpt-4o-2024-08-06" in link
    listed = httpx.get(cost_server.url + link[link.index("/?") :])
    assert listed.status_code == 200
    ids = run_ids(priced_url)
    assert set(cost_cells(listed.text)) == {ids["two-frontier"], ids["mixed"]}
    calls_bar = re.search(r'id="chart-calls".*?<a class="bar-link" href="([^"]+)">', page, re.S)
    assert calls_bar and "model=" not in calls_bar.group(1) and "status=" not in calls_bar.group(1)


def test_a_price_file_overrides_the_table(priced_url, price_file_server):
    """{"my-tuned": {"input": 0.0001, "output": 0.0002}, "gpt-4o": {"input": 0.005, "output": 0.02}}"""
    cells = cost_cells(httpx.get(price_file_server.url + "/").text)
    ids = run_ids(priced_url)
    assert cells[ids["two-frontier"]] == ("$0.03", "")  # 2 × (1 × $0.005 + 0.5 × $0.02)
    assert cells[ids["tuned-only"]] == ("$0.0002", "")  # 1 × $0.0001 + 0.5 × $0.0002
    assert cells[ids["mixed"]] == ("$0.0152", "")
    assert cells[ids["small"]] == ("$0.000036", "")  # gpt-4o-mini keeps its default price


@pytest.mark.parametrize("command", ["ui", "proxy"])
def test_a_bad_price_file_is_refused_in_one_line_naming_it(tmp_path, command):
    bad = tmp_path / "prices.json"
    bad.write_text('{"my-tuned": {"input": 0.0001}}')
    db = f"sqlite:///{tmp_path / 'traces.db'}"
    result = CliRunner().invoke(main, [command, "--db", db, "--port", "1", "--prices", str(bad)])
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert error == f"Error: {bad}: the price of my-tuned needs input and output, USD per 1K tokens"


def test_the_route_filter_is_offered_and_checked(cost_server, priced_url):
    page = httpx.get(cost_server.url + "/?route=direct").text
    assert '<option value="direct" selected>' in page and set(cost_cells(page)) == set(run_ids(priced_url).values())
    assert "No runs match." in httpx.get(cost_server.url + "/?route=fallback").text
    refused = httpx.get(cost_server.url + "/?route=sideways")
    assert refused.status_code == 400 and "route must be one of primary, fallback, shadow, direct" in refused.text
