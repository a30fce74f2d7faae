"""Stacked bar charts as plain numbers for `_chart.html`, which draws them as inline SVG.

Geometry is computed here (bar x, y, width, height in the SVG's own units, the axis's round top
value, which bucket labels fit); the template prints it, so every label, series name and bucket is
escaped by Jinja like any other value. Each bar segment carries its bucket, series and count as
`data-` attributes and a `<title>` (the browser's tooltip), so a test reads the numbers drawn, and
links to the runs list filtered to its bucket (and to its series, where the chart is split by a
runs filter: `Chart.split`); `overview.py` writes those links.

The cost chart prices each bucket's tokens per model in Python (`agent_tracer.ui.costs`), stacked
by model: the database sums, the price table lives here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent_tracer.prices import Prices
from agent_tracer.store.timeline import DIRECT, NO_OUTCOME, ROUTES, Timeline
from agent_tracer.ui.costs import Cost, sum_costs, usage_cost

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 6, 10, 22
MAX_LABELS = 7
MAX_OUTCOMES = 6
"""Outcomes are free text: the most frequent few get their own colour, the rest are "other"."""
MAX_MODELS = 6
"""The costliest models get their own colour in the cost chart, the rest are "other"."""
OTHER = "other"

PALETTE = ("#2457c5", "#e0a54a", "#7dbb87", "#8e6bd1", "#3aa6b9", "#c46aa0", "#9aa3ad")
COLOURS = {
    "ok": "#2457c5",
    "error": "#b42318",
    "input": "#7c9be0",
    "output": "#2457c5",
    "success": "#1e7a3a",
    "failure": "#b42318",
    "partial": "#e0a54a",
    NO_OUTCOME: "#c3c8cf",
    "other": "#9aa3ad",
    "primary": "#2457c5",
    "fallback": "#e0a54a",
    "shadow": "#8e6bd1",
    DIRECT: "#c3c8cf",
}


@dataclass
class Segment:
    series: str
    value: float
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    """The bucket's label, for the tooltip."""
    index: int = 0
    """The bucket's place in the timeline."""
    query: str = ""
    """The runs list's query string for this bucket (and series), set by the overview."""


@dataclass
class Tick:
    x: float
    text: str


@dataclass
class Series:
    name: str
    colour: str
    total: float


@dataclass
class Chart:
    id: str
    title: str
    series: list[Series]
    segments: list[Segment] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    top: float = 0
    """The value at the top of the y axis (a round number at least the tallest bar)."""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    split: str | None = None
    """The runs filter its series are values of (status, outcome, route, model), for the links."""
    money: bool = False
    """Values are US dollars."""

    @property
    def total(self) -> float:
        return sum(series.total for series in self.series)


def round_top(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at least `value` (1 for an empty chart; below 1 only for
    fractions, such as dollars)."""
    if value <= 0 or (value <= 1 and float(value).is_integer()):
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10**exponent if exponent >= 0 else step / 10**-exponent  # exact decimals
        if top >= value * (1 - 1e-12):
            return top
    return 10 ** (exponent + 1)


def bucket_label(start: datetime, bucket: str) -> str:
    return start.strftime("%Y-%m-%d %H:00") if bucket == "hour" else start.strftime("%Y-%m-%d")


def stacked(
    chart_id: str, title: str, labels: list[str], values: Mapping[str, Sequence[float]], split: str | None = None
) -> Chart:
    """Bars per label, each stacked from `values`' series in order (series that are 0 throughout
    are left out of the legend)."""
    series = [
        Series(name, COLOURS.get(name) or _colour(i), sum(counts)) for i, (name, counts) in enumerate(values.items())
    ]
    series = [item for item in series if item.total]
    chart = Chart(chart_id, title, series, split=split)
    heights = [sum(values[item.name][i] for item in series) for i in range(len(labels))]
    chart.top = round_top(max(heights, default=0))
    plot_height = chart.plot_bottom - chart.plot_top
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    bar = max(slot * 0.8, 1.0)
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar) / 2
        base = float(chart.plot_bottom)
        for item in series:
            value = values[item.name][i]
            if not value:
                continue
            height = plot_height * value / chart.top
            base -= height
            chart.segments.append(
                Segment(
                    item.name,
                    value,
                    round(x, 2),
                    round(base, 2),
                    round(bar, 2),
                    round(height, 2),
                    item.colour,
                    label,
                    index=i,
                )
            )
    every = max(math.ceil(len(labels) / MAX_LABELS), 1)
    chart.ticks = [Tick(round(LEFT + (i + 0.5) * slot, 2), label) for i, label in enumerate(labels) if i % every == 0]
    return chart


def overview_charts(timeline: Timeline) -> list[Chart]:
    """Model calls (ok, error), tokens (input, output), runs by outcome, calls by route."""
    buckets = timeline.buckets
    labels = [bucket_label(bucket.start, timeline.bucket) for bucket in buckets]
    outcomes: dict[str, int] = {}
    for bucket in buckets:
        for name, runs in bucket.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + runs
    ranked = sorted((name for name in outcomes if name != NO_OUTCOME), key=lambda name: (-outcomes[name], name))
    kept = ranked[:MAX_OUTCOMES]
    by_outcome = {name: [bucket.outcomes.get(name, 0) for bucket in buckets] for name in kept}
    if ranked[MAX_OUTCOMES:]:
        by_outcome["other"] = [sum(b.outcomes.get(name, 0) for name in ranked[MAX_OUTCOMES:]) for b in buckets]
    by_outcome[NO_OUTCOME] = [bucket.outcomes.get(NO_OUTCOME, 0) for bucket in buckets]
    return [
        stacked(
            "calls",
            "Model calls",
            labels,
            {"ok": [b.calls - b.errors for b in buckets], "error": [b.errors for b in buckets]},
            split="status",
        ),
        stacked(
            "tokens",
            "Tokens",
            labels,
            {"input": [b.input_tokens for b in buckets], "output": [b.output_tokens for b in buckets]},
        ),
        stacked("outcomes", "Runs by outcome", labels, by_outcome, split="outcome"),
        stacked(
            "routes",
            "Model calls by route",
            labels,
            {route: [b.routes.get(route, 0) for b in buckets] for route in (*ROUTES, DIRECT)},
            split="route",
        ),
    ]


def cost_chart(timeline: Timeline, prices: Prices) -> tuple[Chart, Cost]:
    """US dollars per bucket stacked by model (the costliest `MAX_MODELS`, the rest "other"), and
    the span's whole cost (with the calls it could not price and why)."""
    buckets = timeline.buckets
    labels = [bucket_label(bucket.start, timeline.bucket) for bucket in buckets]
    per_bucket = [{model: usage_cost(usage, prices) for model, usage in b.models.items()} for b in buckets]
    totals: dict[str, float] = {}
    for found in per_bucket:
        for model, cost in found.items():
            if model is not None and cost.priced:
                totals[model] = totals.get(model, 0.0) + cost.usd
    ranked = sorted(totals, key=lambda model: (-totals[model], model))
    kept = ranked[:MAX_MODELS]
    values = {model: [found[model].usd if model in found else 0.0 for found in per_bucket] for model in kept}
    if ranked[MAX_MODELS:]:
        rest = ranked[MAX_MODELS:]
        values[OTHER] = [sum(found[model].usd for model in rest if model in found) for found in per_bucket]
    chart = stacked("cost", "Cost (USD)", labels, values, split="model")
    chart.money = True
    return chart, sum_costs(cost for found in per_bucket for cost in found.values())


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]
