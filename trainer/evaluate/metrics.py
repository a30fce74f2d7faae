"""From rows to figures: per endpoint, per tool, and between endpoints.

Each rate is k of n with a 95% Wilson interval; `RATES` names and defines each one, once, for
every place that shows it (report.md, index.html and its chart, the tables printed, the JSON
summary; results.jsonl's grades use the same keys). Task success and tool-call format count a
failed request against the endpoint (a failed request is a failed task); the other rates are over
the answered cases, so they describe the answers an endpoint gave, and `errors` says how many it
did not give. An endpoint that answered nothing is `down` and has no figures. Two endpoints are
compared on success, case by case: the exact McNemar test on the cases where one succeeded and
the other failed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from trainer.evaluate.ast_match import call_names
from trainer.evaluate.cases import Case
from trainer.evaluate.runner import Row
from trainer.evaluate.stats import Rate, mcnemar_exact, percentile


@dataclass(frozen=True)
class Metric:
    """A rate as users see it: its key (in `EndpointSummary`, the JSON summary and results.jsonl's
    grades), its name, the console's column header, and what it counts, in one line."""

    key: str
    name: str
    column: str
    definition: str


RATES = (
    Metric("success", "Task success", "success", "cases whose every check passed, of all cases."),
    Metric(
        "tool_call_format",
        "Tool-call format",
        "tool-call format",
        "answers holding tool calls, all well-formed, of the cases that want a call; a prose answer or a failed "
        "request fails it.",
    ),
    Metric(
        "tool_selection",
        "Tool selection",
        "tools",
        "answers calling exactly the expected functions (none where none is right), of those graded on it.",
    ),
    Metric(
        "arguments",
        "Arguments (AST match)",
        "args",
        "answers whose calls match the expected ones by BFCL's AST rules, of those that want a call.",
    ),
    Metric("answer", "Answer", "answer", "answers with the expected text and fields, of those that ask for them."),
    Metric(
        "well_formed",
        "Well-formed answers",
        "well-formed",
        "answers of any kind that parse (tool calls; JSON, schema, length where asked), of all answers; a prose "
        "answer passes.",
    ),
)
"""Every rate of an endpoint, in the order shown: tool-call format, what fine-tuning for tool use
moves first, leads the two format rates."""
METRICS = {metric.key: metric for metric in RATES}

NO_CALL = "(no call)"
"""The per-tool group of cases where calling nothing is right."""


@dataclass
class EndpointSummary:
    name: str
    model: str | None
    cases: int
    errors: int
    down: str | None
    """Why every request failed (the first row's error), when none was answered."""
    success: Rate
    tool_call_format: Rate
    tool_selection: Rate
    arguments: Rate
    answer: Rate
    well_formed: Rate
    latency_ms: dict[str, float | None]
    ttft_ms: dict[str, float | None]
    input_tokens: float | None
    """Mean per answered case (from the server's usage)."""
    output_tokens: float | None
    cost_per_task: float | None
    """Mean US dollars per answered case, where the price is known."""
    failure_kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        for metric in RATES:
            out[metric.key] = getattr(self, metric.key).to_dict()
        return out


@dataclass
class Comparison:
    """Endpoint a against b on success, over the same cases."""

    a: str
    b: str
    both: int
    a_only: int
    b_only: int
    neither: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Summary:
    endpoints: list[EndpointSummary]
    comparisons: list[Comparison]
    per_tool: dict[str, dict[str, dict[str, Rate]]]
    """Tool → endpoint → {"success", "arguments"} over the cases expecting that tool."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoints": [summary.to_dict() for summary in self.endpoints],
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
            "per_tool": {
                tool: {
                    name: {key: rate.to_dict() for key, rate in rates.items()} for name, rates in by_endpoint.items()
                }
                for tool, by_endpoint in self.per_tool.items()
            },
        }


def summarise(cases: Sequence[Case], endpoints: Sequence[str], rows: Sequence[Row]) -> Summary:
    by_case = {case.id: case for case in cases}
    by_endpoint: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_endpoint[row.endpoint].append(row)
    summaries = [_endpoint(name, by_endpoint[name], by_case) for name in endpoints]
    up = [summary.name for summary in summaries if summary.down is None]
    comparisons = [compare(a, b, by_endpoint[a], by_endpoint[b]) for a, b in combinations(up, 2)]
    return Summary(summaries, comparisons, _per_tool(up, by_endpoint, by_case))


def tool_groups(case: Case) -> list[str]:
    """The per-tool groups a case counts in: each function it expects, or `NO_CALL`."""
    if case.expected_calls is None:
        return []
    return sorted(set(call_names(case.expected_calls))) or [NO_CALL]


def _endpoint(name: str, rows: list[Row], by_case: dict[str, Case]) -> EndpointSummary:
    answered = [(row, row.grade, by_case[row.case_id]) for row in rows if row.grade is not None]
    due = [row for row in rows if by_case[row.case_id].expected_calls]
    calls = [grade for _, grade, case in answered if case.expected_calls is not None]
    with_arguments = [grade for _, grade, case in answered if case.expected_calls]
    asked = [grade for _, grade, case in answered if case.graded_answer]
    latencies = [row.latency_ms for row, _, _ in answered if row.latency_ms is not None]
    ttfts = [row.ttft_ms for row, _, _ in answered if row.ttft_ms is not None]
    return EndpointSummary(
        name=name,
        model=next((row.model for row in rows if row.model), None),
        cases=len(rows),
        errors=len(rows) - len(answered),
        down=rows[0].error if rows and not answered else None,
        success=Rate(sum(row.success for row in rows), len(rows)),
        tool_call_format=Rate(sum(bool(row.grade and row.grade.tool_call_format) for row in due), len(due)),
        tool_selection=Rate(sum(bool(grade.tool_selection) for grade in calls), len(calls)),
        arguments=Rate(sum(bool(grade.arguments) for grade in with_arguments), len(with_arguments)),
        answer=Rate(sum(bool(grade.answer) for grade in asked), len(asked)),
        well_formed=Rate(sum(grade.well_formed for _, grade, _ in answered), len(answered)),
        latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        ttft_ms={"p50": percentile(ttfts, 50), "p95": percentile(ttfts, 95)},
        input_tokens=mean([row.input_tokens for row, _, _ in answered if row.input_tokens is not None]),
        output_tokens=mean([row.output_tokens for row, _, _ in answered if row.output_tokens is not None]),
        cost_per_task=mean([row.cost for row, _, _ in answered if row.cost is not None]),
        failure_kinds=dict(Counter(grade.error_kind for _, grade, _ in answered if grade.error_kind).most_common()),
    )


def compare(a: str, b: str, rows_a: Sequence[Any], rows_b: Sequence[Any]) -> Comparison:
    """a against b on the cases both answered: rows with `case_id` and `success` (an agent
    evaluation's rows too)."""
    success_b = {row.case_id: row.success for row in rows_b}
    pairs = Counter((row.success, success_b[row.case_id]) for row in rows_a if row.case_id in success_b)
    a_only, b_only = pairs[True, False], pairs[False, True]
    return Comparison(a, b, pairs[True, True], a_only, b_only, pairs[False, False], mcnemar_exact(a_only, b_only))


def _per_tool(
    endpoints: list[str], by_endpoint: dict[str, list[Row]], by_case: dict[str, Case]
) -> dict[str, dict[str, dict[str, Rate]]]:
    table: dict[str, dict[str, dict[str, Rate]]] = {}
    for name in endpoints:
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for row in by_endpoint[name]:
            for tool in tool_groups(by_case[row.case_id]):
                counts[tool]["cases"] += 1
                counts[tool]["success"] += row.success
                if tool != NO_CALL and row.grade is not None:
                    counts[tool]["answered"] += 1
                    counts[tool]["arguments"] += bool(row.grade.arguments)
        for tool, count in counts.items():
            table.setdefault(tool, {})[name] = {
                "success": Rate(count["success"], count["cases"]),
                "arguments": Rate(count["arguments"], count["answered"]),
            }
    return dict(sorted(table.items()))


def mean(values: list[float] | list[int]) -> float | None:
    return sum(values) / len(values) if values else None
