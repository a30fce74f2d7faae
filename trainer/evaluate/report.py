"""What an evaluation leaves behind: results.jsonl (one row per case × endpoint), report.md (a
table per metric with its interval, endpoint against endpoint, per tool, the worst failures shown
as conversations), and the short table printed.

Files are made by `WRITERS`, file name → function of (evaluation, worst); an HTML page with charts
is one more entry there, reading the same `Evaluation` (`summary.to_dict()` holds every figure).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.evaluate.stats import Rate

if TYPE_CHECKING:
    from trainer.evaluate.cases import Case
    from trainer.evaluate.evaluation import Evaluation
    from trainer.evaluate.runner import Row

RATES = (("success", "Task success"), ("tool_selection", "Tool selection"), ("arguments", "Arguments (AST match)"),
         ("answer", "Answer"), ("format", "Format compliance"))  # fmt: skip


def results_jsonl(evaluation: Evaluation, worst: int) -> str:
    return "".join(json.dumps(row.to_dict(), ensure_ascii=False, default=str) + "\n" for row in evaluation.rows)


def report_md(evaluation: Evaluation, worst: int) -> str:
    summary = evaluation.summary
    endpoints = ", ".join(f"{e.name} ({e.model or '?'})" for e in summary.endpoints)
    out = [f"# Evaluation: {len(evaluation.cases)} cases × {len(summary.endpoints)} endpoints", "",
           f"Endpoints: {endpoints}. Rates with 95% Wilson intervals; a failed request is a failed task.", ""]
    down = [f"- **{e.name} was down**: {e.down}" for e in summary.endpoints if e.down]
    if down:
        out += [*down, ""]
    for key, title in RATES:
        rated = [(e.name, getattr(e, key)) for e in summary.endpoints if getattr(e, key).n and not e.down]
        if rated:
            out += [f"## {title}", "", *_md([
                ["endpoint", "rate", "95% interval", "k / n"],
                *([name, f"{rate.value:.1%}", _interval(rate), f"{rate.k} / {rate.n}"] for name, rate in rated)]), ""]
    out += ["## Latency, tokens and cost", "", *_md([
        ["endpoint", "latency p50", "p95", "TTFT p50", "p95", "tokens in", "tokens out", "$ / task", "errors"],
        *([e.name, _ms(e.latency_ms["p50"]), _ms(e.latency_ms["p95"]), _ms(e.ttft_ms["p50"]), _ms(e.ttft_ms["p95"]),
           _num(e.input_tokens), _num(e.output_tokens), _usd(e.cost_per_task), str(e.errors)]
          for e in summary.endpoints)]), ""]  # fmt: skip
    if summary.comparisons:
        out += ["## Endpoint against endpoint (task success, exact McNemar)", "", *_md([
            ["a", "b", "both right", "only a", "only b", "both wrong", "p"],
            *([c.a, c.b, str(c.both), str(c.a_only), str(c.b_only), str(c.neither), f"{c.p_value:.3g}"]
              for c in summary.comparisons)]), ""]  # fmt: skip
    if summary.per_tool:
        names = [e.name for e in summary.endpoints if e.down is None]
        out += ["## Per tool (task success; arguments)", "", *_md([
            ["tool", "cases", *names],
            *([tool, str(next(iter(rates.values()))["success"].n),
               *(_short(rates[name]["success"]) + "; " + _short(rates[name]["arguments"]) if name in rates else "-"
                 for name in names)]
              for tool, rates in summary.per_tool.items())]), ""]  # fmt: skip
    kinds = [(e.name, e.failure_kinds) for e in summary.endpoints if e.failure_kinds]
    if kinds:
        out += ["## Failure kinds", "", *(f"- {name}: " + ", ".join(f"{k} {n}" for k, n in counts.items())
                                          for name, counts in kinds), ""]  # fmt: skip
    out += _worst(evaluation, worst)
    return "\n".join(out).rstrip() + "\n"


WRITERS: dict[str, Callable[[Evaluation, int], str]] = {"results.jsonl": results_jsonl, "report.md": report_md}
"""Report file name → what writes it."""


def write_report(evaluation: Evaluation, directory: Path, worst: int = 5) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, render in WRITERS.items():
        path = directory / name
        path.write_text(render(evaluation, worst), encoding="utf-8")
        written[name] = path
    return written


def stdout_table(evaluation: Evaluation) -> str:
    from agent_tracer.commands.traces import _table

    headers = ["endpoint", "model", "success", "95% CI", "tools", "args", "format", "p50", "p95", "TTFT", "$/task",
               "errors"]  # fmt: skip
    rows = []
    for e in evaluation.summary.endpoints:
        if e.down:
            rows.append([e.name, e.model or "?", "down", "-", "-", "-", "-", "-", "-", "-", "-", str(e.errors)])
            continue
        rows.append([e.name, e.model or "?", _pct(e.success), _interval(e.success), _pct(e.tool_selection),
                     _pct(e.arguments), _pct(e.format), _ms(e.latency_ms["p50"]), _ms(e.latency_ms["p95"]),
                     _ms(e.ttft_ms["p50"]), _usd(e.cost_per_task), str(e.errors)])  # fmt: skip
    lines = [_table(headers, rows, right={2, 4, 5, 6, 7, 8, 9, 10, 11})]
    for c in evaluation.summary.comparisons:
        lines.append(f"{c.a} vs {c.b}: only {c.a} right {c.a_only}, only {c.b} right {c.b_only}, "
                     f"p = {c.p_value:.3g} (exact McNemar)")
    for e in evaluation.summary.endpoints:
        if e.down:
            lines.append(f"{e.name} was down: {e.down}")
    return "\n".join(lines)


# -- failures -------------------------------------------------------------------------------------


def _worst(evaluation: Evaluation, count: int) -> list[str]:
    """Each endpoint's failures, those another endpoint got right first, as conversations."""
    if count <= 0:
        return []
    cases = {case.id: case for case in evaluation.cases}
    right: dict[str, int] = defaultdict(int)
    for row in evaluation.rows:
        right[row.case_id] += row.success
    out = []
    for endpoint in evaluation.summary.endpoints:
        if endpoint.down:
            continue
        failed = [row for row in evaluation.rows if row.endpoint == endpoint.name and not row.success]
        failed.sort(key=lambda row: -right[row.case_id])  # stable: case order within
        if failed:
            out += [f"## Worst failures: {endpoint.name} ({len(failed)} failed)", ""]
            for row in failed[:count]:
                out += _failure(cases[row.case_id], row, right[row.case_id])
    return out


def _failure(case: Case, row: Row, others_right: int) -> list[str]:
    why = row.error if row.status != "ok" else (row.grade.reason if row.grade else None)
    out = [f"### {case.id}" + (f" ({others_right} other endpoint(s) right)" if others_right else ""), "",
           f"**Why**: {why}", "", "```"]  # fmt: skip
    for message in case.messages[-6:]:
        out.append(f"{message.get('role')}: {_message_text(message)}")
    if case.expected_calls is not None:
        expected = [f"{name}({json.dumps(args, ensure_ascii=False)})" for call in case.expected_calls
                    for name, args in call.items()] or ["no call"]  # fmt: skip
        out.append("expected: " + "; ".join(expected))
    if case.reference:
        out.append(f"recorded answer: {_clip(case.reference)}")
    if row.reply is not None:
        made = [f"{call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})" for call in row.reply.calls]
        if row.reply.content:
            made.append(_clip(row.reply.content))
        out.append("got: " + ("; ".join(made) or "(nothing)"))
    return [*out, "```", ""]


def _message_text(message: dict[str, Any]) -> str:
    from agent_tracer.conversations import content_text

    parts = [_clip(content_text(message.get("content")))] if message.get("content") else []
    parts += [f"{call['function']['name']}({call['function'].get('arguments')})" for call in message.get("tool_calls") or ()]
    return " ".join(parts)


# -- cells ----------------------------------------------------------------------------------------


def _md(rows: list[list[str]]) -> list[str]:
    header, *body = rows
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body)]


def _pct(rate: Rate) -> str:
    return f"{rate.value:.1%}" if rate.n else "-"


def _short(rate: Rate) -> str:
    return f"{rate.value:.0%} ({rate.k}/{rate.n})" if rate.n else "-"


def _interval(rate: Rate) -> str:
    interval = rate.interval
    return f"{interval[0]:.1%}–{interval[1]:.1%}" if interval else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.6f}"


def _clip(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
