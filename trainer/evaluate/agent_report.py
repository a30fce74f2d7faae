"""The agent evaluation's report: results.jsonl, report.md, index.html (with charts), the table
printed. The sections are built once as (heading, table) and laid out by both the Markdown and
the HTML, with `report`'s cells and `html`'s page, so the two show the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trainer.evaluate import charts, html, report

if TYPE_CHECKING:
    from trainer.evaluate.agent import AgentEvaluation, AgentSummary

FAILED_SHOWN = 20
"""Failed tasks listed per endpoint."""


def agent_report_md(evaluation: AgentEvaluation, worst: int) -> str:
    out = [f"# {_title(evaluation)}", "", _intro(evaluation), ""]
    if report.down(evaluation.summaries):
        out += [*(f"- **{name} was down**: {why}" for name, why in report.down(evaluation.summaries)), ""]
    for heading, cells in _sections(evaluation):
        out += [f"## {heading}", "", *report.markdown_table(cells), ""]
    return "\n".join(out).rstrip() + "\n"


def agent_html(evaluation: AgentEvaluation, worst: int) -> dict[str, str | bytes]:
    names = [summary.name for summary in evaluation.summaries if not summary.down]
    pngs: dict[str, bytes] = {}
    if not charts.missing() and names:
        pngs["success.png"] = charts.rate_chart(
            [("Task success", report.rated(evaluation.summaries, "success"))],
            names,
            "Task success with 95% Wilson intervals",
        )
        pngs["latency.png"] = charts.latency_chart(
            {
                name: [
                    row.latency_ms
                    for row in evaluation.rows
                    if row.endpoint == name and row.status == "ok" and row.latency_ms is not None
                ]
                for name in names
            },
            "Task latency (the whole agent run)",
        )
    body = [
        f"<h1>{html.escape(_title(evaluation))}</h1>",
        f"<p>{html.escape(_intro(evaluation))}</p>",
        *(
            f'<p class="down"><b>{html.escape(name)} was down</b>: {html.escape(why)}</p>'
            for name, why in report.down(evaluation.summaries)
        ),
        *html.missing_charts(),
        html.figure(pngs, "success.png", "Task success per endpoint"),
        html.figure(pngs, "latency.png", "Task latency per endpoint"),
    ]
    for heading, cells in _sections(evaluation):
        body += [f"<h2>{html.escape(heading)}</h2>", html.table(cells)]
    return {"index.html": html.page(_title(evaluation), body), **pngs}


AGENT_WRITERS: dict[str, Callable[[AgentEvaluation, int], report.Output]] = {
    "results.jsonl": report.results_jsonl,
    "report.md": agent_report_md,
    "index.html": agent_html,
}


def agent_table(evaluation: AgentEvaluation) -> str:
    from agent_tracer.console import text_table

    header, *rows = _figures(evaluation.summaries)
    lines = [text_table(header, rows, right=set(range(1, len(header))))]
    lines += report.comparison_lines(evaluation.comparisons)
    lines += [f"{name} was down: {why}" for name, why in report.down(evaluation.summaries)]
    return "\n".join(lines)


def _title(evaluation: AgentEvaluation) -> str:
    return f"Agent evaluation: {len(evaluation.tasks)} tasks × {len(evaluation.summaries)} endpoints"


def _intro(evaluation: AgentEvaluation) -> str:
    return (
        f"Endpoints: {report.endpoint_list(evaluation.summaries)}. Success with 95% Wilson intervals; a task "
        "whose agent raised is a failed task. A call is a request the agent sent (retries too), a turn a "
        "call answered."
    )


def _sections(evaluation: AgentEvaluation) -> list[tuple[str, report.Cells]]:
    sections = []
    if report.rated(evaluation.summaries, "success"):
        sections.append(("Task success", report.rate_rows(report.rated(evaluation.summaries, "success"))))
    sections.append(("Turns, latency, tokens and cost", _figures(evaluation.summaries)))
    if evaluation.comparisons:
        sections.append(
            ("Endpoint against endpoint (task success, exact McNemar)", report.comparison_rows(evaluation.comparisons))
        )
    for summary in evaluation.summaries:
        failed = [row for row in evaluation.rows if row.endpoint == summary.name and not row.success]
        if failed and not summary.down:
            sections.append(
                (
                    f"Failed tasks: {summary.name} ({len(failed)})",
                    [
                        ["task", "turns", "calls", "why"],
                        *(
                            [
                                row.case_id,
                                str(row.turns),
                                str(row.calls),
                                report.clip(row.error or f"judged wrong: {row.result!r}", 200),
                            ]
                            for row in failed[:FAILED_SHOWN]
                        ),
                    ],
                )
            )
    return sections


def _figures(summaries: list[AgentSummary]) -> report.Cells:
    return [
        [
            "endpoint",
            "success",
            "turns to complete",
            "turns / task",
            "calls / task",
            "latency p50",
            "p95",
            "tokens in",
            "tokens out",
            "$ / task",
            "errors",
        ],
        *(
            [
                s.name,
                report.pct(s.success),
                _one(s.turns_to_complete),
                _one(s.turns),
                _one(s.calls),
                report.ms(s.latency_ms["p50"]),
                report.ms(s.latency_ms["p95"]),
                report.num(s.input_tokens),
                report.num(s.output_tokens),
                report.usd(s.cost_per_task),
                str(s.errors),
            ]
            for s in summaries
        ),
    ]


def _one(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
