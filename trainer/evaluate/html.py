"""index.html: the report as one page that opens anywhere, offline, and can be mailed as a file.

Self-contained: the CSS is inline, the charts are PNGs embedded as base64 data URIs (and also
written beside the page, for slides), and the page has no script and makes no request. Every
text that comes from a case, a tool spec or a model's answer is HTML-escaped: an answer that
says `<script>` shows those characters, it does not run. The tables are `report`'s cells, so the
page and report.md print the same figures. Without matplotlib the page has the tables and a line
saying charts need it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from trainer.evaluate import charts, report

if TYPE_CHECKING:
    from trainer.evaluate.evaluation import Evaluation

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
     padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child,td.text{text-align:left}
img{max-width:100%;display:block;margin:.5em 0}.note{color:#666;font-style:italic}
.down{background:#fdecea;border-left:4px solid #e15759;padding:.4em .8em}
.failure{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.msg{margin:.3em 0;padding:.3em .6em;border-radius:4px;background:#f7f7f7}
.msg .role{font-weight:600;font-size:.85em;color:#555;text-transform:uppercase}
.msg.user{background:#eef4fb}.msg.assistant{background:#f1f8ee}.msg.tool{background:#fbf6ea}
pre{white-space:pre-wrap;word-break:break-word;margin:.2em 0;max-height:24em;overflow:auto;font-size:.9em}
.verdict{display:grid;grid-template-columns:1fr 1fr;gap:1em}.verdict>div{background:#fafafa;padding:.3em .6em}
.expected h4{color:#2b7a2b}.got h4{color:#b02a2a}h4{margin:.2em 0}
"""


def index_html(evaluation: Evaluation, worst: int) -> dict[str, str | bytes]:
    """The page and its charts: {"index.html": text, "NAME.png": bytes, …}."""
    summary = evaluation.summary
    names = [e.name for e in summary.endpoints if not e.down]
    pngs = _charts(evaluation, names)
    body = [
        f"<h1>{escape(report.title(evaluation))}</h1>",
        f"<p>Endpoints: {escape(report.endpoint_list(summary.endpoints))}. Rates with 95% Wilson intervals "
        "(the error bars); a failed request is a failed task.</p>",
        *(
            f'<p class="down"><b>{escape(name)} was down</b>: {escape(why)}</p>'
            for name, why in report.down(summary.endpoints)
        ),
        *missing_charts(),
    ]
    body += [figure(pngs, "rates.png", "Rates per endpoint with 95% intervals")]
    for metric in report.RATES:
        if report.rated(summary.endpoints, metric.key):
            body += [
                f"<h2>{escape(metric.name)}</h2>",
                f'<p class="note">{escape(report.defined(metric))}</p>',
                table(report.rate_rows(report.rated(summary.endpoints, metric.key))),
            ]
    body += [
        "<h2>Latency, tokens and cost</h2>",
        table(report.cost_rows(summary.endpoints)),
        figure(pngs, "latency.png", "Latency per endpoint"),
    ]
    if summary.comparisons:
        body += [
            "<h2>Endpoint against endpoint (task success, exact McNemar)</h2>",
            table(report.comparison_rows(summary.comparisons)),
        ]
    if summary.per_tool:
        body += [
            "<h2>Per tool (task success; arguments)</h2>",
            table(report.tool_rows(summary)),
            figure(pngs, "tools.png", "Task success per tool"),
        ]
    if report.failure_kinds(summary.endpoints):
        body += ["<h2>Failure kinds</h2>", _list(report.failure_kinds(summary.endpoints))]
    if evaluation.capability is not None:
        capability = evaluation.capability.summary
        body += [
            f"<h2>{report.CAPABILITY_TITLE} ({escape(evaluation.capability.source)})</h2>",
            table(report.rate_rows(report.rated(capability.endpoints, "success"))),
            *([table(report.comparison_rows(capability.comparisons))] if capability.comparisons else []),
        ]
    for group in report.worst_failures(evaluation, worst):
        body += [
            f"<h2>Worst failures: {escape(group.endpoint)} ({group.failed} failed)</h2>",
            *(_failure(failure) for failure in group.failures),
        ]
    return {"index.html": page(report.title(evaluation), body), **pngs}


def page(title: str, body: Iterable[str]) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(part for part in body if part) + "\n</body></html>\n"
    )


def table(cells: report.Cells) -> str:
    header, *rows = cells
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(pngs: dict[str, bytes], name: str, alt: str) -> str:
    """The chart as an <img> with its bytes inline; nothing when it was not drawn."""
    if name not in pngs:
        return ""
    data = base64.b64encode(pngs[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def missing_charts() -> list[str]:
    why = charts.missing()
    return [f'<p class="note">No charts: {escape(why)}.</p>'] if why else []


def _charts(evaluation: Evaluation, names: Sequence[str]) -> dict[str, bytes]:
    if charts.missing() or not names:
        return {}
    summary = evaluation.summary
    groups: list[charts.RateGroup] = [
        (metric.name, report.rated(summary.endpoints, metric.key))
        for metric in report.RATES
        if report.rated(summary.endpoints, metric.key)
    ]
    if evaluation.capability is not None:
        groups.append((report.CAPABILITY_TITLE, report.rated(evaluation.capability.summary.endpoints, "success")))
    out = {}
    if groups:
        out["rates.png"] = charts.rate_chart(groups, names, "Rates with 95% Wilson intervals")
    latencies = {
        name: [row.latency_ms for row in evaluation.rows if row.endpoint == name and row.latency_ms is not None]
        for name in names
    }
    if any(latencies.values()):
        out["latency.png"] = charts.latency_chart(latencies)
    if summary.per_tool:
        tools = [
            (tool, [(name, rates["success"]) for name, rates in by_endpoint.items()])
            for tool, by_endpoint in summary.per_tool.items()
        ]
        out["tools.png"] = charts.rate_chart(tools, names, "Task success per tool")
    return out


# -- failures as conversations --------------------------------------------------------------------


def _failure(failure: report.Failure) -> str:
    case = failure.case
    others = f" ({failure.others_right} other endpoint(s) right)" if failure.others_right else ""
    parts = [
        f'<section class="failure"><h3>{escape(case.id)}{others}</h3>',
        f"<p><b>Why</b>: {escape(str(failure.why))}</p>",
        _tools(case.tools),
        *(_message(message) for message in case.messages),
    ]
    if case.reference:
        parts.append(
            f'<div class="msg assistant"><div class="role">recorded answer</div><pre>'
            f"{escape(case.reference)}</pre></div>"
        )
    expected = failure.expected if failure.expected is not None else "(calls not graded)"
    parts.append(
        f'<div class="verdict"><div class="expected"><h4>expected</h4><pre>{escape(expected)}</pre></div>'
        f'<div class="got"><h4>got</h4><pre>{escape(failure.got or "(no answer)")}</pre></div></div>'
    )
    return "".join(parts) + "</section>"


def _tools(tools: list[dict[str, Any]]) -> str:
    if not tools:
        return '<p class="note">No tools offered.</p>'
    items = []
    for tool in tools:
        function = tool["function"]
        properties = (function.get("parameters") or {}).get("properties") or {}
        params = ", ".join(
            f"{name}: {spec.get('type', '?') if isinstance(spec, dict) else '?'}" for name, spec in properties.items()
        )
        description = f" — {report.clip(function['description'])}" if function.get("description") else ""
        items.append(f"<code>{escape(function['name'])}({escape(params)})</code>{escape(description)}")
    return f"<details><summary>Tools offered ({len(tools)})</summary>{_list(items, escaped=True)}</details>"


def _message(message: dict[str, Any]) -> str:
    from agent_tracer.messages import message_text

    role = str(message.get("role"))
    text = message_text(message)
    calls = [
        f"{call['function']['name']}({call['function'].get('arguments')})" for call in message.get("tool_calls") or ()
    ]
    if role == "tool" and message.get("name"):
        role = f"tool {message['name']}"
    shown = "\n".join([text] * bool(text) + [f"→ {call}" for call in calls]) or json.dumps(message.get("content"))
    return (
        f'<div class="msg {escape(role.split()[0])}"><div class="role">{escape(role)}</div>'
        f"<pre>{escape(shown)}</pre></div>"
    )


def _list(items: Sequence[str], escaped: bool = False) -> str:
    return "<ul>" + "".join(f"<li>{item if escaped else escape(item)}</li>" for item in items) + "</ul>"
