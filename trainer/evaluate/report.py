"""What an evaluation leaves behind: results.jsonl (one row per case × endpoint), report.md (a
table per metric with its interval, endpoint against endpoint, per tool, the worst failures shown
as conversations), index.html (the same tables with charts, one self-contained page: see
`trainer.evaluate.html`), case-messages.jsonl (each case as it was sent: id, source, messages, tools, so
that a row's answer can be read beside its question, as the web UI's evaluation pages do), and
the short table printed.

Files are made by `WRITERS`, file name → function of (evaluation, worst) giving the file's text,
or {file name: text or bytes} where one writer makes several files (the page and its charts).
The tables are built once here as rows of cells (`rate_rows`, `cost_rows`, …) and only laid out
differently by the Markdown and the HTML, so both show the same figures to the character.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.evaluate.metrics import METRICS, RATES, Metric
from trainer.evaluate.stats import Rate

if TYPE_CHECKING:
    from trainer.evaluate.cases import Case
    from trainer.evaluate.evaluation import Evaluation
    from trainer.evaluate.metrics import Comparison, EndpointSummary, Summary
    from trainer.evaluate.runner import Row

CAPABILITY_TITLE = "General capability"

Cells = list[list[str]]
"""A table: its header row, then its rows, each cell already written out."""
Output = str | dict[str, str | bytes]


def results_jsonl(evaluation: Any, worst: int) -> str:
    rows = list(evaluation.rows) + (list(evaluation.capability.rows) if getattr(evaluation, "capability", None) else [])
    return "".join(json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n" for row in rows)


def case_messages_jsonl(evaluation: Any, worst: int) -> str:
    """The cases the rows answer (the capability check's too), one JSON object a line."""
    capability = getattr(evaluation, "capability", None)
    cases = list(evaluation.cases) + (list(capability.cases) if capability else [])
    return "".join(
        json.dumps(
            {
                "id": case.id,
                "source": case.source,
                "messages": case.messages,
                "tools": case.tools,
                "reference": case.reference,
            },
            ensure_ascii=False,
            default=str,
        )
        + "\n"
        for case in cases
    )


def report_md(evaluation: Evaluation, worst: int) -> str:
    summary = evaluation.summary
    out = [
        f"# {title(evaluation)}",
        "",
        f"Endpoints: {endpoint_list(summary.endpoints)}. Rates with 95% Wilson "
        "intervals; a failed request is a failed task.",
        "",
    ]
    if down(summary.endpoints):
        out += [*(f"- **{name} was down**: {why}" for name, why in down(summary.endpoints)), ""]
    for metric in RATES:
        if rated(summary.endpoints, metric.key):
            out += [
                f"## {metric.name}",
                "",
                defined(metric),
                "",
                *markdown_table(rate_rows(rated(summary.endpoints, metric.key))),
                "",
            ]
    out += ["## Latency, tokens and cost", "", *markdown_table(cost_rows(summary.endpoints)), ""]
    if summary.comparisons:
        out += [
            "## Endpoint against endpoint (task success, exact McNemar)",
            "",
            *markdown_table(comparison_rows(summary.comparisons)),
            "",
        ]
    if summary.per_tool:
        out += ["## Per tool (task success; arguments)", "", *markdown_table(tool_rows(summary)), ""]
    if failure_kinds(summary.endpoints):
        out += ["## Failure kinds", "", *(f"- {line}" for line in failure_kinds(summary.endpoints)), ""]
    if evaluation.capability is not None:
        out += capability_md(evaluation.capability.summary, evaluation.capability.source)
    for group in worst_failures(evaluation, worst):
        out += [f"## Worst failures: {group.endpoint} ({group.failed} failed)", ""]
        for failure in group.failures:
            out += _failure_md(failure)
    return "\n".join(out).rstrip() + "\n"


def capability_md(summary: Summary, source: str) -> list[str]:
    """The capability check's section: its success rate per endpoint and the paired tests."""
    out = [f"## {CAPABILITY_TITLE} ({source})", ""]
    if rated(summary.endpoints, "success"):
        out += markdown_table(rate_rows(rated(summary.endpoints, "success"))) + [""]
    if summary.comparisons:
        out += [
            "Endpoint against endpoint, exact McNemar:",
            "",
            *markdown_table(comparison_rows(summary.comparisons)),
            "",
        ]
    return out


def html_report(evaluation: Evaluation, worst: int) -> dict[str, str | bytes]:
    from trainer.evaluate.html import index_html

    return index_html(evaluation, worst)


WRITERS: dict[str, Callable[[Evaluation, int], Output]] = {
    "results.jsonl": results_jsonl,
    "case-messages.jsonl": case_messages_jsonl,
    "report.md": report_md,
    "index.html": html_report,
}
"""Report file name → what writes it."""


def write_report(
    evaluation: Any, directory: Path, worst: int = 5, writers: dict[str, Callable[[Any, int], Output]] | None = None
) -> dict[str, Path]:
    """Each writer's files in `directory`; file name → path written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, render in (WRITERS if writers is None else writers).items():
        output = render(evaluation, worst)
        for file_name, content in (output if isinstance(output, dict) else {name: output}).items():
            path = directory / file_name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            written[file_name] = path
    return written


def stdout_table(evaluation: Evaluation) -> str:
    from agent_tracer.console import text_table

    shown = [METRICS[key] for key in ("tool_call_format", "tool_selection", "arguments", "well_formed")]
    headers = [
        "endpoint",
        "model",
        METRICS["success"].column,
        "95% CI",
        *(metric.column for metric in shown),
        "p50",
        "p95",
        "TTFT",
        "$/task",
        "errors",
    ]
    rows = []
    for e in evaluation.summary.endpoints:
        if e.down:
            rows.append([e.name, e.model or "?", "down", *["-"] * (len(headers) - 4), str(e.errors)])
            continue
        rows.append(
            [
                e.name,
                e.model or "?",
                pct(e.success),
                interval(e.success),
                *(pct(getattr(e, metric.key)) for metric in shown),
                ms(e.latency_ms["p50"]),
                ms(e.latency_ms["p95"]),
                ms(e.ttft_ms["p50"]),
                usd(e.cost_per_task),
                str(e.errors),
            ]
        )
    lines = [text_table(headers, rows, right=set(range(2, len(headers))) - {3})]
    lines += comparison_lines(evaluation.summary.comparisons)
    if evaluation.capability is not None:
        capability = evaluation.capability.summary
        lines.append(
            f"{CAPABILITY_TITLE.lower()} ({evaluation.capability.source}): "
            + ", ".join(f"{name} {rate}" for name, rate in rated(capability.endpoints, "success"))
        )
        lines += comparison_lines(capability.comparisons)
    lines += [f"{name} was down: {why}" for name, why in down(evaluation.summary.endpoints)]
    return "\n".join(lines)


def comparison_lines(comparisons: Sequence[Comparison]) -> list[str]:
    return [
        f"{c.a} vs {c.b}: only {c.a} right {c.a_only}, only {c.b} right {c.b_only}, p = {c.p_value:.3g} (exact McNemar)"
        for c in comparisons
    ]


# -- tables ---------------------------------------------------------------------------------------


def title(evaluation: Evaluation) -> str:
    return f"Evaluation: {len(evaluation.cases)} cases × {len(evaluation.summary.endpoints)} endpoints"


def endpoint_list(endpoints: Sequence[Any]) -> str:
    return ", ".join(f"{e.name} ({e.model or '?'})" for e in endpoints)


def down(endpoints: Sequence[Any]) -> list[tuple[str, str]]:
    return [(e.name, e.down) for e in endpoints if e.down]


def rated(endpoints: Sequence[Any], key: str) -> list[tuple[str, Rate]]:
    """(endpoint, rate) for the endpoints that were up and have this rate."""
    return [(e.name, getattr(e, key)) for e in endpoints if getattr(e, key).n and not e.down]


def defined(metric: Metric) -> str:
    """The metric's one-line definition, as report.md and index.html print it under its heading."""
    return metric.definition[0].upper() + metric.definition[1:]


def rate_rows(rates: Sequence[tuple[str, Rate]]) -> Cells:
    return [
        ["endpoint", "rate", "95% interval", "k / n"],
        *([name, f"{rate.value:.1%}", interval(rate), f"{rate.k} / {rate.n}"] for name, rate in rates),
    ]


def cost_rows(endpoints: Sequence[EndpointSummary]) -> Cells:
    return [
        ["endpoint", "latency p50", "p95", "TTFT p50", "p95", "tokens in", "tokens out", "$ / task", "errors"],
        *(
            [
                e.name,
                ms(e.latency_ms["p50"]),
                ms(e.latency_ms["p95"]),
                ms(e.ttft_ms["p50"]),
                ms(e.ttft_ms["p95"]),
                num(e.input_tokens),
                num(e.output_tokens),
                usd(e.cost_per_task),
                str(e.errors),
            ]
            for e in endpoints
        ),
    ]


def comparison_rows(comparisons: Sequence[Comparison]) -> Cells:
    return [
        ["a", "b", "both right", "only a", "only b", "both wrong", "p"],
        *(
            [c.a, c.b, str(c.both), str(c.a_only), str(c.b_only), str(c.neither), f"{c.p_value:.3g}"]
            for c in comparisons
        ),
    ]


def tool_rows(summary: Summary) -> Cells:
    names = [e.name for e in summary.endpoints if e.down is None]
    return [
        ["tool", "cases", *names],
        *(
            [
                tool,
                str(next(iter(rates.values()))["success"].n),
                *(
                    short(rates[name]["success"]) + "; " + short(rates[name]["arguments"]) if name in rates else "-"
                    for name in names
                ),
            ]
            for tool, rates in summary.per_tool.items()
        ),
    ]


def failure_kinds(endpoints: Sequence[EndpointSummary]) -> list[str]:
    return [
        f"{e.name}: " + ", ".join(f"{k} {n}" for k, n in e.failure_kinds.items()) for e in endpoints if e.failure_kinds
    ]


# -- failures -------------------------------------------------------------------------------------


@dataclass
class Failure:
    case: Case
    row: Row
    others_right: int
    """How many other endpoints got this case right."""

    @property
    def why(self) -> str | None:
        return self.row.error if self.row.status != "ok" else (self.row.grade.reason if self.row.grade else None)

    @property
    def expected(self) -> str | None:
        if self.case.expected_calls is None:
            return None
        return (
            "; ".join(
                f"{name}({json.dumps(args, ensure_ascii=False)})"
                for call in self.case.expected_calls
                for name, args in call.items()
            )
            or "no call"
        )

    @property
    def got(self) -> str | None:
        if self.row.reply is None:
            return None
        made = [f"{call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})" for call in self.row.reply.calls]
        if self.row.reply.content:
            made.append(clip(self.row.reply.content))
        return "; ".join(made) or "(nothing)"


@dataclass
class FailureGroup:
    endpoint: str
    failed: int
    failures: list[Failure]


def worst_failures(evaluation: Evaluation, count: int) -> list[FailureGroup]:
    """Each endpoint's failures, those another endpoint got right first (then in case order)."""
    if count <= 0:
        return []
    cases = {case.id: case for case in evaluation.cases}
    right: dict[str, int] = defaultdict(int)
    for row in evaluation.rows:
        right[row.case_id] += row.success
    groups = []
    for endpoint in evaluation.summary.endpoints:
        if endpoint.down:
            continue
        failed = [row for row in evaluation.rows if row.endpoint == endpoint.name and not row.success]
        failed.sort(key=lambda row: -right[row.case_id])  # stable: case order within
        if failed:
            groups.append(
                FailureGroup(
                    endpoint.name,
                    len(failed),
                    [Failure(cases[row.case_id], row, right[row.case_id]) for row in failed[:count]],
                )
            )
    return groups


def _failure_md(failure: Failure) -> list[str]:
    out = [
        f"### {failure.case.id}"
        + (f" ({failure.others_right} other endpoint(s) right)" if failure.others_right else ""),
        "",
        f"**Why**: {failure.why}",
        "",
        "```",
    ]
    for message in failure.case.messages[-6:]:
        out.append(f"{message.get('role')}: {message_line(message)}")
    if failure.expected is not None:
        out.append("expected: " + failure.expected)
    if failure.case.reference:
        out.append(f"recorded answer: {clip(failure.case.reference)}")
    if failure.got is not None:
        out.append("got: " + failure.got)
    return [*out, "```", ""]


def message_line(message: dict[str, Any]) -> str:
    """A message on one line: its text, clipped, then its tool calls."""
    from agent_tracer.messages import message_text

    text = message_text(message)
    parts = [clip(text)] if text else []
    parts += [
        f"{call['function']['name']}({call['function'].get('arguments')})" for call in message.get("tool_calls") or ()
    ]
    return " ".join(parts)


# -- cells ----------------------------------------------------------------------------------------


def markdown_table(rows: Cells) -> list[str]:
    header, *body = rows
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body),
    ]


def pct(rate: Rate) -> str:
    return f"{rate.value:.1%}" if rate.n else "-"


def short(rate: Rate) -> str:
    return f"{rate.value:.0%} ({rate.k}/{rate.n})" if rate.n else "-"


def interval(rate: Rate) -> str:
    bounds = rate.interval
    return f"{bounds[0]:.1%}–{bounds[1]:.1%}" if bounds else "-"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.6f}"


def clip(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
