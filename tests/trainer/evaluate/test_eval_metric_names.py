"""One meaning per metric name: a base model that answers in prose where a call was due has a
tool-call format of 0/N and well-formed answers of N/N, and every place a user reads (the console
tables, report.md, index.html and its chart, results.jsonl, --json) shows those two figures under
those two names, never one figure under the other's name."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from trainer.evaluate import charts, evaluate
from trainer.evaluate.stats import Rate
from trainer.quickstart.closing import table as closing_table

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    },
}
N = 4


def case(i: int) -> dict:
    return {
        "id": f"o{i}",
        "messages": [{"role": "user", "content": f"order {i}"}],
        "tools": [TOOL],
        "expected": {"tool_calls": [{"name": "lookup_order", "arguments": {"id": f"A{i}"}}]},
    }


@pytest.fixture
def endpoints(scripted):
    tuned = scripted({f"order {i}": dict(calls=[("lookup_order", {"id": f"A{i}"})]) for i in range(N)})
    base = scripted({f"order {i}": dict(content=f"Order A{i} is on its way.") for i in range(N)})  # prose, no call
    return {"tuned": tuned.openai_base_url, "base": base.openai_base_url}


def column(table: str, header: str, row: str) -> str:
    """The cell under `header` in the row starting with `row`, in a table `text_table` printed
    (cells two spaces apart at least)."""
    lines = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]
    head = next(cells for cells in lines if header in cells)
    return dict(zip(head, next(cells for cells in lines if cells[0] == row)))[header]


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}\n")[1].split("\n## ")[0]


def test_prose_where_a_call_was_due_reads_the_same_everywhere(endpoints, tmp_path, monkeypatch):
    drawn = []
    rate_chart = charts.rate_chart
    monkeypatch.setattr(charts, "rate_chart", lambda groups, *a: drawn.append(groups) or rate_chart(groups, *a))
    report = tmp_path / "report"
    specs = [f"--endpoint={name}={url}" for name, url in endpoints.items()]
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(case(i)) + "\n" for i in range(N)))
    result = CliRunner().invoke(main, ["eval", "--cases", str(cases), *specs, "--report", str(report), "--no-progress"])
    assert result.exit_code == 0, result.output

    # the console: each figure under its own column
    assert column(result.stdout, "tool-call format", "base") == "0.0%"
    assert column(result.stdout, "well-formed", "base") == "100.0%"
    assert (
        column(result.stdout, "tool-call format", "tuned") == column(result.stdout, "well-formed", "tuned") == "100.0%"
    )

    # results.jsonl: each row's grade under the same two keys, adding up to the same figures
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    base = [row["grade"] for row in rows if row["endpoint"] == "base"]
    assert len(base) == N and all("format" not in grade for grade in base)
    assert sum(grade["tool_call_format"] for grade in base) == 0 and all(grade["well_formed"] for grade in base)

    # report.md: tool-call format first, each with its definition, the base's 0/N and N/N
    markdown = (report / "report.md").read_text()
    assert "ompliance" not in markdown
    assert markdown.index("## Tool-call format") < markdown.index("## Well-formed answers")
    calls, formed = section(markdown, "Tool-call format"), section(markdown, "Well-formed answers")
    assert "a prose answer or a failed request fails it" in calls and "a prose answer passes" in formed
    assert f"| base | 0.0% | 0.0%–49.0% | 0 / {N} |" in calls
    assert f"| base | 100.0% | 51.0%–100.0% | {N} / {N} |" in formed

    # index.html: the same tables, and the chart's bars under the same labels
    page = (report / "index.html").read_text()
    assert "ompliance" not in page
    calls_html = page.split("<h2>Tool-call format</h2>")[1].split("<h2>")[0]
    formed_html = page.split("<h2>Well-formed answers</h2>")[1].split("<h2>")[0]
    assert f"<td>base</td><td>0.0%</td><td>0.0%–49.0%</td><td>0 / {N}</td>" in calls_html
    assert f"<td>base</td><td>100.0%</td><td>51.0%–100.0%</td><td>{N} / {N}</td>" in formed_html
    chart = {label: dict(rates) for label, rates in drawn[0]}
    assert list(chart).index("Tool-call format") < list(chart).index("Well-formed answers")
    assert chart["Tool-call format"]["base"] == Rate(0, N) and chart["Well-formed answers"]["base"] == Rate(N, N)


def test_quickstart_closing_and_json_summary_use_the_same_names(endpoints, tmp_path):
    result = evaluate([case(i) for i in range(N)], endpoints)
    lines = "\n".join(closing_table(result))
    assert "ompliance" not in lines
    assert column(lines, "tool-call format", "base") == f"0.0% [0.0%, 49.0%] (0/{N})"
    assert column(lines, "tool-call format", "tuned") == f"100.0% [51.0%, 100.0%] ({N}/{N})"
    assert re.search(r"tool-call format: .*a prose answer or a failed request fails it", lines)
    assert re.search(r"well-formed answers, in the report: .*a prose answer passes", lines)

    base = next(endpoint for endpoint in result.to_dict()["endpoints"] if endpoint["name"] == "base")
    assert "format" not in base
    assert (base["tool_call_format"]["k"], base["tool_call_format"]["n"]) == (0, N)
    assert (base["well_formed"]["k"], base["well_formed"]["n"]) == (N, N)
