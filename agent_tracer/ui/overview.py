"""The overview: model calls, tokens, runs by outcome and calls by route per hour or day, as inline
SVG bar charts, and the router's fallback reasons as a table.

`/overview?since=7d&bucket=day` takes the runs page's filters too (agent name, outcome, tag, model,
tools, status, held-out): given, only the calls of the runs they pick count. The numbers come from
`TraceStore.timeline` (GROUP BY in the database); `charts` turns them into geometry and
`_chart.html` draws it. Cost is left to `agent-tracer cost`: prices live in the trainer, which the
capture side does not import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agent_tracer.errors import ConfigError
from agent_tracer.store.timeline import BUCKETS
from agent_tracer.ui.charts import overview_charts
from agent_tracer.ui.filters import parse_filters

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

DEFAULT_SINCE = "7d"
_NOT_HERE = ("limit", "after")


class Overview:
    def __init__(self, ui: UI) -> None:
        self.ui = ui

    async def page(self, request: Request) -> Response:
        params = request.query_params
        bucket = params.get("bucket", "").strip() or "day"
        try:
            if bucket not in BUCKETS:
                raise ConfigError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
            filters = parse_filters({key: value for key, value in params.items() if key not in _NOT_HERE})
            chosen = dict(filters.store)
            since = chosen.pop("since", None) or DEFAULT_SINCE
            until = chosen.pop("until", None)
            timeline = await run_in_threadpool(
                self.ui.store.timeline, bucket=bucket, since=since, until=until, **chosen
            )
        except ConfigError as exc:  # FilterError included
            return self.ui.render(request, "overview.html", {"error": str(exc)}, 400)
        runs_query = filters.query(since=filters.given.get("since") or DEFAULT_SINCE)
        context = {"timeline": timeline, "charts": overview_charts(timeline), "runs_query": runs_query}
        return self.ui.render(request, "overview.html", context)
