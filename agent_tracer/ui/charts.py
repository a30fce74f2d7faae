"""Stacked bar charts as plain numbers for `_chart.html`, which draws them as inline SVG.

Geometry is computed here (bar x, y, width, height in the SVG's own units, the axis's round top
value, which bucket labels fit); the template prints it, so every label, series name and bucket is
escaped by Jinja like any other value. Each bar segment carries its bucket, series and count as
`data-` attributes and a `<title>` (the browser's tooltip), so a test reads the numbers drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from agent_tracer.store.timeline import DIRECT, NO_OUTCOME, ROUTES, Timeline

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 6, 10, 22
MAX_LABELS = 7
MAX_OUTCOMES = 6
"""Outcomes are free text: the most frequent few get their own colour, the rest are "other"."""

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
    value: int
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str
    """The bucket's label, for the tooltip."""


@dataclass
class Tick:
    x: float
    text: str


@dataclass
class Series:
    name: str
    colour: str
    total: int


@dataclass
class Chart:
    id: str
    title: str
    series: list[Series]
    segments: list[Segment] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    top: int = 0
    """The value at the top of the y axis (a round number at least the tallest bar)."""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        return sum(series.total for series in self.series)


def round_top(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k at least `value` (1 for an empty chart)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def bucket_label(start: datetime, bucket: str) -> str:
    return start.strftime("%Y-%m-%d %H:00") if bucket == "hour" else start.strftime("%Y-%m-%d")


def stacked(chart_id: str, title: str, labels: list[str], values: dict[str, list[int]]) -> Chart:
    """Bars per label, each stacked from `values`' series in order (series that are 0 throughout
    are left out of the legend)."""
    series = [
        Series(name, COLOURS.get(name) or _colour(i), sum(counts)) for i, (name, counts) in enumerate(values.items())
    ]
    series = [item for item in series if item.total]
    chart = Chart(chart_id, title, series)
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
                    item.name, value, round(x, 2), round(base, 2), round(bar, 2), round(height, 2), item.colour, label
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
        ),
        stacked(
            "tokens",
            "Tokens",
            labels,
            {"input": [b.input_tokens for b in buckets], "output": [b.output_tokens for b in buckets]},
        ),
        stacked("outcomes", "Runs by outcome", labels, by_outcome),
        stacked(
            "routes",
            "Model calls by route",
            labels,
            {route: [b.routes.get(route, 0) for b in buckets] for route in (*ROUTES, DIRECT)},
        ),
    ]


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]
