"""The review queue: the unrated runs of a filter, one after another, as annotation queues show them.

`/review?<the runs page's filters>` shows the newest unrated run (rating null) of the filter, with
buttons that rate it 1-5 or mark it a success or a failure (keyboard shortcuts in
`static/review.js`; the buttons work without it). A review writes the same feedback as the run
page (`UI.save_review`) and moves on to the next unrated run. The place in the queue lives in the
URL, in keyset terms like the list: `after=` the cursor of the last run seen (skipped or reviewed),
or `run=` a run to show again (a step back); `done=` counts the reviews made in this walk, so the
progress line keeps its total while the unrated runs shrink. A long run shows its first page of
model calls, read as the run page reads it (`views.run_page`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent_tracer.errors import ConfigError, TraceNotFound
from agent_tracer.store import Trace, TraceDetail
from agent_tracer.ui import views
from agent_tracer.ui.filters import FilterError, RunFilters, cursor, parse_cursor, parse_filters
from agent_tracer.ui.forms import READ_ONLY, form_fields

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

SHORTCUTS = (
    ("1 – 5", "rate the run and go on"),
    ("s", "mark it a success and go on"),
    ("f", "mark it a failure and go on"),
    ("j / n", "next (skip)"),
    ("k / p", "previous"),
    ("?", "show or hide this list"),
)


class ReviewQueue:
    """The queue's page and its review POST, over the UI's store and templates."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui

    async def page(self, request: Request) -> Response:
        params = request.query_params
        try:
            filters = parse_filters(params)
            done = _count(params.get("done", ""))
            current = await run_in_threadpool(self._current, filters, params.get("run", "").strip())
        except (FilterError, ConfigError) as exc:
            return self.ui.error(request, 400, str(exc))
        except TraceNotFound as exc:
            return self.ui.error(request, 404, f"Unknown run: {exc}")
        store = self.ui.store
        unrated = await run_in_threadpool(lambda: store.count_traces(**filters.store, rated=False))
        base = filters.query(after=None)
        context: dict[str, Any] = {
            "filters": filters,
            "described": {key: value for key, value in filters.given.items() if key not in ("after", "limit")},
            "list_url": _with(request.url_for("runs"), base),
            "restart_url": _with(request.url_for("queue"), base) if filters.after and unrated else None,
            "unrated": unrated,
            "done": done,
        }
        if current is None:
            return self.ui.render(request, "review.html", context)
        key = (current.started_at, current.id)
        # Its place counts the unrated runs before it (newer), not those after it: near the head of
        # the queue, where one reviews, that is a few rows of an index rather than all of them.
        newer = await run_in_threadpool(lambda: store.count_traces(**filters.store, rated=False, before=key))
        earlier = await run_in_threadpool(lambda: store.traces(**filters.store, rated=False, before=key, limit=1))
        detail = await run_in_threadpool(self._detail, current.id)
        shown = views.run_page(detail, 1)
        queue = request.url_for("queue")
        context.update(
            trace=current,
            detail=detail,
            nodes=shown.nodes,
            paging=shown,
            position=newer + (current.rating is None) + done,
            total=unrated + done,
            next_url=_with(queue, filters.query(after=cursor(*key), done=str(done or ""))),
            previous_url=_with(queue, filters.query(after=None, run=earlier[0].id, done=str(done or "")))
            if earlier
            else None,
            back=base,
            here=cursor(*key),
            shortcuts=SHORTCUTS,
        )
        return self.ui.render(request, "review.html", context)

    def _current(self, filters: RunFilters, run: str) -> Trace | None:
        """The run to show: `run` when given, else the first unrated one after the cursor."""
        if run:
            return self.ui.store.get_trace(run).trace
        found = self.ui.store.traces(**filters.store, rated=False, after=filters.after, limit=1)
        return found[0] if found else None

    def _detail(self, trace_id: str) -> TraceDetail:
        """The run as its page reads it: the first page of its model calls whole, the rest light
        (a long run's bodies are most of its bytes; the queue shows the first page, as the run page)."""
        detail = self.ui.store.get_trace(trace_id, full_calls=())
        self.ui.store.fill_calls(detail, views.page_call_ids(detail, 1))
        return detail

    async def review(self, request: Request) -> Response:
        """A queue button's POST: the review saved as the run page saves it, then the next unrated run."""
        if self.ui.read_only:
            return self.ui.error(request, 403, READ_ONLY)
        form = await form_fields(request)
        trace_id = request.path_params["trace_id"].strip().lower()
        try:
            back = parse_filters(dict(parse_qsl(form.get("back", ""))))
            here = form.get("here", "")
            parse_cursor(here)
        except FilterError as exc:
            return self.ui.error(request, 400, f"Not saved: {exc}")
        if not await run_in_threadpool(self.ui.store.known_traces, [trace_id]):
            return self.ui.error(request, 404, f"Unknown run: {trace_id}")
        try:
            await self.ui.save_review([trace_id], form)
        except ConfigError as exc:
            return self.ui.error(request, 400, f"Not saved: {exc}")
        done = _count(form.get("done", "")) + 1
        query = back.query(after=here, run=None, done=str(done))
        return RedirectResponse(_with(request.url_for("queue"), query), status_code=303)


def _count(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def _with(url: Any, query: str) -> str:
    return f"{url}?{query}" if query else str(url)
