"""What went into a dataset and what was dropped, and why: printed at the end of every build and
written beside the dataset (`<name>.manifest.json`) with the held-out traces of the eval split."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    """One curation step: rows in, rows out, and the reasons for the difference (or for changes)."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    """Why rows were dropped (or, for a step that changes rows, what it changed), with counts."""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "in": self.rows_in, "out": self.rows_out, "reasons": dict(self.reasons)}


@dataclass
class Summary:
    kind: str
    """"sft", "dpo" or "reward"."""
    steps: list[Step] = field(default_factory=list)
    token_lengths: list[int] = field(default_factory=list)
    tokenizer: str | None = None
    tools: Counter[str] = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    files: dict[str, str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        step = Step(name)
        self.steps.append(step)
        return step

    def percentiles(self) -> dict[str, int]:
        """Nearest-rank p50, p90, p99 and the maximum of the token lengths."""
        lengths = sorted(self.token_lengths)
        if not lengths:
            return {}
        rank = lambda q: lengths[max(math.ceil(q / 100 * len(lengths)), 1) - 1]  # noqa: E731
        return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": lengths[-1]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps": [step.to_dict() for step in self.steps],
            "tokens": {"tokenizer": self.tokenizer, **self.percentiles()},
            "tools": dict(self.tools.most_common()),
            "splits": self.splits,
            "sources": dict(self.sources),
            "files": self.files,
        }

    def render(self) -> str:
        """The summary as a user reads it at the end of a build."""
        width = max((len(step.name) for step in self.steps), default=4)
        lines = [f"{'step':<{width}}  {'in':>8}  {'out':>8}  why"]
        for step in self.steps:
            why = ", ".join(f"{reason} {count:,}" for reason, count in step.reasons.most_common()) or "-"
            lines.append(f"{step.name:<{width}}  {step.rows_in:>8,}  {step.rows_out:>8,}  {why}")
        lengths = self.percentiles()
        if lengths:
            measured = f" ({self.tokenizer})" if self.tokenizer else ""
            lines.append("")
            lines.append(f"tokens{measured}: " + "  ".join(f"{name} {value:,}" for name, value in lengths.items()))
        if self.tools:
            shown = self.tools.most_common(8)
            more = len(self.tools) - len(shown)
            lines.append(
                "tools called: "
                + ", ".join(f"{name} {count:,}" for name, count in shown)
                + (f", … {more} more" if more > 0 else "")
            )
        if len(self.sources) > 1 or (self.sources and self.kind != "sft"):
            lines.append("sources: " + ", ".join(f"{name} {count:,}" for name, count in self.sources.most_common()))
        if self.splits:
            lines.append("rows: " + ", ".join(f"{split} {count:,}" for split, count in self.splits.items()))
        for label, path in self.files.items():
            lines.append(f"wrote {label}: {path}")
        return "\n".join(lines)
