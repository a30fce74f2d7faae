"""The report's charts as PNG bytes: rates with their 95% intervals as error bars, latency
distributions, per-tool success. matplotlib, drawn on the Agg canvas of a `Figure` of its own
(never pyplot), so no window, no global backend switch in the caller's process, no state
shared between charts.

matplotlib comes with the `train` extra; without it `missing()` says why, and the report leaves
the charts out with that line instead of failing.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import Any

from trainer.evaluate.stats import Rate

RateGroup = tuple[str, Sequence[tuple[str, Rate]]]
"""A group of bars: its label, and (endpoint, rate) for each endpoint that has the rate."""


def missing() -> str | None:
    """Why charts cannot be drawn here, or None when they can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "charts need matplotlib (pip install matplotlib, or the train extra)"
    return None


def rate_chart(groups: Sequence[RateGroup], endpoints: Sequence[str], title: str) -> bytes:
    """Grouped bars, one group per rate (or tool), one bar per endpoint, the Wilson interval as
    error bars: overlapping bars say the difference may be noise before the p-value does."""
    figure, axes = _figure(max(6.0, 1.2 + len(groups) * (0.35 + 0.3 * len(endpoints))), 4.2)
    width = 0.8 / max(len(endpoints), 1)
    for index, name in enumerate(endpoints):
        at, values, low, high = [], [], [], []
        for position, (_, rates) in enumerate(groups):
            rate = dict(rates).get(name)
            if rate is None or rate.value is None:  # no rate without n
                continue
            bounds = rate.interval or (0.0, 0.0)
            at.append(position - 0.4 + width * (index + 0.5))
            values.append(rate.value)
            low.append(max(rate.value - bounds[0], 0.0))  # Wilson's bound may pass k/n by a rounding
            high.append(max(bounds[1] - rate.value, 0.0))
        axes.bar(
            at,
            values,
            width * 0.92,
            yerr=[low, high],
            capsize=3,
            label=name,
            color=_colour(index),
            error_kw={"elinewidth": 1, "ecolor": "#333"},
        )
    axes.set_xticks(range(len(groups)), [textwrap.fill(label, 14) for label, _ in groups])
    axes.set_ylim(0, 1.05)
    axes.yaxis.set_major_formatter(_percent())
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")  # beside the bars, never on them
    return _png(figure)


def latency_chart(latencies: dict[str, list[float]], title: str = "Latency per request") -> bytes:
    """A box plot per endpoint (median, quartiles, whiskers at 1.5 IQR, outliers as points)."""
    names = [name for name, values in latencies.items() if values]
    figure, axes = _figure(max(5.0, 1.5 + 1.1 * len(names)), 4.0)
    boxes = axes.boxplot([latencies[name] for name in names], patch_artist=True, widths=0.5)
    for index, box in enumerate(boxes["boxes"]):
        box.set_facecolor(_colour(index))
        box.set_alpha(0.7)
    axes.set_xticks(range(1, len(names) + 1), names)
    axes.set_ylabel("ms")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(min(width, 14.0), height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def _colour(index: int) -> str:
    palette = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7")
    return palette[index % len(palette)]
