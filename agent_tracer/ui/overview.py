"""The overview: model calls, tokens, cost, runs by outcome and calls by route per hour or day, as
inline SVG bar charts, and the router's fallback reasons as a table.

`/overview?since=7d&bucket=day` takes the runs page's filters too (agent name, outcome, tag, model,
tools, status, held-out): given, only the calls of the runs they pick count. The numbers come from
`TraceStore.timeline` (GROUP BY in the database); `charts` turns them into geometry and
`_chart.html` draws it. Cost is the tokens per bucket and model priced in Python by the UI's price
table (`agent_tracer.prices`, `--prices FILE` over the defaults).

Each bar links to the runs list over its bucket (`since`/`until`, clipped to the overview's span),
with the overview's filters and, where the chart is split by a runs filter, its series: failed
calls → `status=error`, an outcome, a route, a model. A run is listed by its start time, so a call
bucket's runs are those that started in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agent_tracer.errors import ConfigError
from agent_tracer.store.timeline import BUCKETS, NO_OUTCOME, Timeline
from agent_tracer.ui.charts import OTHER, Chart, cost_chart, overview_charts
from agent_tracer.ui.filters import RunFilters, parse_filters

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
        charts = overview_charts(timeline)
        cost, total_cost = cost_chart(timeline, self.ui.prices)
        charts.insert(2, cost)
        for chart in charts:
            link_bars(chart, timeline, filters)
        context = {"timeline": timeline, "charts": charts, "runs_query": runs_query, "cost": total_cost}
        return self.ui.render(request, "overview.html", context)


def link_bars(chart: Chart, timeline: Timeline, filters: RunFilters) -> None:
    """Each bar segment's runs-list query: its bucket, the overview's filters, and its series
    where that is a value of the filter the chart is split by."""
    step = BUCKETS[timeline.bucket]
    for segment in chart.segments:
        start = timeline.buckets[segment.index].start
        changes = {"since": _iso(max(start, timeline.since)), "until": _iso(min(start + step, timeline.until))}
        value = _filter_value(chart.split, segment.series)
        if chart.split is not None and value is not None:
            changes[chart.split] = value
        segment.query = filters.query(after=None, **changes)


def _filter_value(split: str | None, series: str) -> str | None:
    """The runs filter's value for a series (None: the series is not one the filter can pick)."""
    if split == "status":
        return "error" if series == "error" else None  # "ok" calls may share a run with failed ones
    if series in (OTHER, NO_OUTCOME) and split in ("outcome", "model"):
        return None
    return series


def _iso(value: datetime) -> str:
    return value.isoformat(sep="T", timespec="seconds" if not value.microsecond else "microseconds")
