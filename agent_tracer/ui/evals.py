"""The evaluations: the report folders `agent-tracer eval --report DIR` wrote, listed and opened.

`agent-tracer ui --reports DIR` (repeatable) names them: a folder holding results.jsonl is one
report, any other folder is scanned for sub-folders that hold one. Everything shown is read from
results.jsonl (one row per case × endpoint: its answer, `grade`, error, timings) and, when the
report has one, case-messages.jsonl (each case's messages and tools), as plain JSON: the rates are
counted here from the rows' grades, under the keys the rows carry (any boolean in `grade`), so the
page follows whatever the evaluator grades. `success` counts a failed request (a row without a
grade) as a failure, as the evaluator does; every other rate is over the rows graded on it.

Pages: `/evals` (each report: folder, date, endpoints, cases, each endpoint's success rate),
`/evals/{report}` (a rate table per endpoint and every case's results, 500 a page, `?show=differ`
for the cases the endpoints disagree on, `?show=failed` for those some endpoint failed), `/evals/{report}/cases/{id}`
(the case's messages and each endpoint's answer side by side), `/evals/{report}/files/{name}`
(the report's own files). A report is named by an id made when the folders are scanned, never by
a path from the URL, and a file is served only when its name is one listed in that folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from agent_tracer.ui.views import MessageView, message_view, pretty

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

RESULTS = "results.jsonl"
CASES = "case-messages.jsonl"
SERVED = {".html": "text/html; charset=utf-8", ".md": "text/plain; charset=utf-8"}
SERVED |= {".jsonl": "text/plain; charset=utf-8", ".png": "image/png"}
SANDBOX = "sandbox; default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
"""The report's own page runs no script and reaches nothing from the UI's origin."""
CASES_PER_PAGE = 500
SHOW = {
    "all": "every case",
    "differ": "cases the endpoints disagree on (one passes, another fails)",
    "failed": "cases some endpoint failed or could not answer",
}
"""The report page's case filters (`?show=`), with the words that describe them."""
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def report_folders(paths: Iterable[Path]) -> dict[str, Path]:
    """Report id → folder, for each configured path that holds results.jsonl or each of its
    sub-folders that does; ids from the folders' names, made unique, in the order found."""
    found: dict[str, Path] = {}
    for path in paths:
        if (path / RESULTS).is_file():
            folders = [path]
        elif path.is_dir():
            folders = sorted((child for child in path.iterdir() if (child / RESULTS).is_file()), key=lambda p: p.name)
        else:
            folders = []
        for folder in folders:
            base = _UNSAFE_ID.sub("-", folder.resolve().name).strip("-.") or "report"
            report_id, n = base, 1
            while report_id in found:
                n += 1
                report_id = f"{base}-{n}"
            found[report_id] = folder
    return found


@dataclass
class EndpointFigures:
    name: str
    model: str | None = None
    rows: int = 0
    errors: int = 0
    rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Grade key → (true, graded): `success` over every row, the others over the graded ones."""
    latencies: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def latency_p50(self) -> float | None:
        ordered = sorted(self.latencies)
        return ordered[(len(ordered) - 1) // 2] if ordered else None


@dataclass
class Report:
    id: str
    folder: Path
    date: datetime
    rows: list[dict[str, Any]]
    endpoints: list[EndpointFigures]
    keys: list[str]
    """The grade keys that are rates (boolean values), in the order the rows give them."""
    case_ids: list[str]
    cases: dict[str, dict[str, Any]]
    """Case id → its line in case-messages.jsonl (empty when the report has none)."""
    skipped: int = 0
    """Lines of results.jsonl that are not a row (JSON objects with a case and an endpoint)."""
    files: list[str] = field(default_factory=list)
    by_case: dict[tuple[str, str], dict[str, Any]] = field(init=False)
    """(case id, endpoint) → its row (the first, should a file hold two)."""

    def __post_init__(self) -> None:
        self.by_case = {}
        for row in self.rows:
            self.by_case.setdefault((row["case_id"], row["endpoint"]), row)

    def result(self, case_id: str, endpoint: str) -> dict[str, Any] | None:
        return self.by_case.get((case_id, endpoint))

    def passed(self, case_id: str) -> list[bool]:
        """Each endpoint's success on the case (a failed request, or no row, is a failure)."""
        return [_success(self.result(case_id, figures.name)) for figures in self.endpoints]

    def selected(self, show: str) -> list[str]:
        """The case ids the `show` filter keeps, in the report's order."""
        if show == "differ":
            return [case_id for case_id in self.case_ids if len(set(self.passed(case_id))) > 1]
        if show == "failed":
            return [case_id for case_id in self.case_ids if not all(self.passed(case_id))]
        return list(self.case_ids)


def load_report(report_id: str, folder: Path) -> Report:
    rows, skipped = _jsonl(folder / RESULTS)
    good = [row for row in rows if isinstance(row.get("case_id"), str) and isinstance(row.get("endpoint"), str)]
    skipped += len(rows) - len(good)
    cases_read, _ = _jsonl(folder / CASES) if (folder / CASES).is_file() else ([], 0)
    cases = {str(case["id"]): case for case in cases_read if "id" in case}
    endpoints: dict[str, EndpointFigures] = {}
    keys: list[str] = []
    for row in good:
        grade = row.get("grade") if isinstance(row.get("grade"), dict) else None
        for key, value in (grade or {}).items():
            if isinstance(value, bool) and key not in keys:
                keys.append(key)
    if "success" in keys:  # the headline rate first
        keys.remove("success")
        keys.insert(0, "success")
    for row in good:
        figures = endpoints.setdefault(row["endpoint"], EndpointFigures(row["endpoint"]))
        figures.model = figures.model or row.get("model")
        figures.rows += 1
        grade = row.get("grade") if isinstance(row.get("grade"), dict) else None
        if grade is None:
            figures.errors += 1
        if isinstance(row.get("latency_ms"), (int, float)):
            figures.latencies.append(float(row["latency_ms"]))
        figures.input_tokens += _whole(row.get("input_tokens"))
        figures.output_tokens += _whole(row.get("output_tokens"))
        for key in keys:
            value = (grade or {}).get(key)
            true, graded = figures.rates.get(key, (0, 0))
            if isinstance(value, bool):
                figures.rates[key] = (true + value, graded + 1)
            elif key == "success" and grade is None:  # a failed request is a failed task
                figures.rates[key] = (true, graded + 1)
    case_ids = list(dict.fromkeys(row["case_id"] for row in good))
    date = datetime.fromtimestamp((folder / RESULTS).stat().st_mtime, tz=timezone.utc).replace(tzinfo=None)
    files = sorted(child.name for child in folder.iterdir() if child.is_file() and child.suffix in SERVED)
    return Report(report_id, folder, date, good, list(endpoints.values()), keys, case_ids, cases, skipped, files)


def rate(pair: tuple[int, int] | None) -> str:
    if not pair or not pair[1]:
        return "-"
    return f"{100 * pair[0] / pair[1]:.1f}% ({pair[0]}/{pair[1]})"


@dataclass
class Answer:
    """One endpoint's row for a case, ready to print."""

    endpoint: str
    model: str | None
    status: str
    error: str | None
    content: str
    tool_calls: list[tuple[str, str]]
    """(name, pretty arguments)."""
    grade: list[tuple[str, Any]]
    reason: str | None
    success: bool | None
    facts: list[str]


def answer(row: dict[str, Any]) -> Answer:
    reply: dict[str, Any] = row["reply"] if isinstance(row.get("reply"), dict) else {}
    grade: dict[str, Any] = row["grade"] if isinstance(row.get("grade"), dict) else {}
    calls = [
        (str(call.get("name") or "?"), pretty(call.get("arguments")))
        for call in reply.get("tool_calls") or []
        if isinstance(call, dict)
    ]
    facts = []
    if isinstance(row.get("latency_ms"), (int, float)):
        facts.append(f"{row['latency_ms']:,.0f} ms")
    if row.get("input_tokens") is not None or row.get("output_tokens") is not None:
        facts.append(f"tokens {row.get('input_tokens', '?')} in / {row.get('output_tokens', '?')} out")
    return Answer(
        endpoint=row["endpoint"],
        model=row.get("model"),
        status=str(row.get("status") or "?"),
        error=row.get("error"),
        content=str(reply.get("content") or ""),
        tool_calls=calls,
        grade=[(key, value) for key, value in grade.items() if key not in ("reason", "success")],
        reason=grade.get("reason"),
        success=grade.get("success") if grade else None,
        facts=facts,
    )


class Evaluations:
    def __init__(self, ui: UI, paths: Iterable[str | Path]) -> None:
        self.ui = ui
        self.paths = [Path(path) for path in paths]

    async def _report(self, request: Request) -> Report | Response:
        report_id = request.path_params["report"]
        folder = (await run_in_threadpool(report_folders, self.paths)).get(report_id)
        if folder is None:
            return self.ui.error(request, 404, f"Unknown evaluation report: {report_id!r}")
        return await run_in_threadpool(load_report, report_id, folder)

    async def list(self, request: Request) -> Response:
        def load() -> list[Report]:
            return [load_report(report_id, folder) for report_id, folder in report_folders(self.paths).items()]

        reports = await run_in_threadpool(load)
        context = {"reports": reports, "paths": self.paths, "rate": rate}
        return self.ui.render(request, "evals.html", context)

    async def report(self, request: Request) -> Response:
        report = await self._report(request)
        if isinstance(report, Response):
            return report
        show = request.query_params.get("show") or "all"
        if show not in SHOW:
            return self.ui.error(request, 400, f"show must be one of {', '.join(SHOW)}, got {show!r}")
        raw_page = request.query_params.get("page") or "1"
        if not raw_page.isdigit() or int(raw_page) < 1:
            return self.ui.error(request, 400, f"page must be a whole number from 1, got {raw_page!r}")
        selected = report.selected(show)
        pages = max(1, -(-len(selected) // CASES_PER_PAGE))
        page = min(int(raw_page), pages)
        start = (page - 1) * CASES_PER_PAGE
        shown = selected[start : start + CASES_PER_PAGE]
        results = {
            case_id: {figures.name: report.result(case_id, figures.name) for figures in report.endpoints}
            for case_id in shown
        }
        context = {
            "report": report,
            "rate": rate,
            "shown": shown,
            "results": results,
            "case_url": case_url,
            "show": show,
            "shows": SHOW,
            "selected": len(selected),
            "paging": {"page": page, "pages": pages, "first": start + 1, "last": start + len(shown)},
        }
        return self.ui.render(request, "eval_report.html", context)

    async def case(self, request: Request) -> Response:
        report = await self._report(request)
        if isinstance(report, Response):
            return report
        case_id = request.path_params["case_id"]
        rows = [row for row in report.rows if row["case_id"] == case_id]
        if not rows:
            return self.ui.error(request, 404, f"No case {case_id!r} in report {report.id!r}")
        case = report.cases.get(case_id)
        messages: list[MessageView] = []
        tools: list[str] = []
        if case is not None:
            messages = [message_view(m) for m in case.get("messages") or [] if isinstance(m, dict)]
            tools = [
                str((tool.get("function") or {}).get("name") or "?")
                for tool in case.get("tools") or []
                if isinstance(tool, dict)
            ]
        index = report.case_ids.index(case_id)
        around = {
            "previous": report.case_ids[index - 1] if index > 0 else None,
            "next": report.case_ids[index + 1] if index + 1 < len(report.case_ids) else None,
        }
        context = {
            "report": report,
            "case_id": case_id,
            "case": case,
            "messages": messages,
            "tools": tools,
            "answers": [answer(row) for row in rows],
            "around": around,
            "case_url": case_url,
        }
        return self.ui.render(request, "eval_case.html", context)

    async def file(self, request: Request) -> Response:
        report = await self._report(request)
        if isinstance(report, Response):
            return report
        name = request.path_params["name"]
        if name not in report.files:  # names listed in the folder itself: nothing else is reachable
            return self.ui.error(request, 404, f"No file {name!r} in report {report.id!r}")
        media_type = SERVED[Path(name).suffix]
        headers = {"Content-Security-Policy": SANDBOX, "X-Content-Type-Options": "nosniff"}
        return FileResponse(report.folder / name, media_type=media_type, headers=headers)


def case_url(request: Request, report_id: str, case_id: str) -> str:
    """The case page's URL: the id quoted whole (ids hold ':' and '/', as in "cases.jsonl:3")."""
    return f"{request.url_for('evals')}/{quote(report_id, safe='')}/cases/{quote(case_id, safe='')}"


def _success(row: dict[str, Any] | None) -> bool:
    grade = row.get("grade") if row else None
    return isinstance(grade, dict) and grade.get("success") is True


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSONL file, and how many lines were not one."""
    rows: list[dict[str, Any]] = []
    bad = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(value, dict):
                rows.append(value)
            else:
                bad += 1
    return rows, bad
