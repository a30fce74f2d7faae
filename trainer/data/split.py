"""The train/eval split: by trace, stratified by tool, the same every time.

By trace: all examples of a run go to the same side, so an eval example never shares its run
(its user, its tool results, its earlier turns) with a training one. Examples without a trace id
(mixed-in instruction data) always train.

Stratified by tool: a trace's stratum is the first tool its examples call ("none" when they call
none), so a tool that is rarely used is still evaluated, and eval is not all one common tool.

The rule, for n traces and an eval ratio r:

1. The eval set has round(r * n) traces, but every stratum keeps at least one trace for training
   (a stratum of one trace is train only: its tool would otherwise never be trained).
2. Each stratum of two or more traces gets one eval trace first, as far as the total allows;
   when it allows fewer, the largest strata get theirs.
3. The remaining eval slots go one at a time to the stratum furthest below its share r * n_s
   (largest remainder), so the eval share of each stratum, and of the whole, stays near r.
4. Within a stratum, traces are ordered by a seeded hash of their id and the first ones go to
   eval. Ties between strata are broken by a seeded hash of the stratum's name.

Only ids and hashes are involved, never the order the traces arrive in: the same traces and
seed give the same split. The pipeline makes two passes: `trace_strata` (or its own query) for
the (trace id, stratum) pairs, `plan_split` for the assignment, then `SplitPlan.route`.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from agent_tracer.errors import ConfigError
from trainer.data.rows import Example

NO_TOOL = "none"
TRAIN, EVAL = "train", "eval"


@dataclass
class SplitConfig:
    eval_ratio: float = field(default=0.1, metadata={"help": "Share of the traces held out for evaluation, in [0, 1)."})
    seed: int = field(default=0, metadata={"help": "Seed of the split: same traces and seed, same split."})

    def __post_init__(self) -> None:
        if not 0 <= self.eval_ratio < 1:
            raise ConfigError(f"eval_ratio must be in [0, 1), got {self.eval_ratio}")


def trace_strata(examples: Iterable[Example]) -> dict[str, str]:
    """Each trace's stratum: the first tool called by its examples, in stream order, or "none"."""
    strata: dict[str, str] = {}
    for example in examples:
        if example.trace_id is None:
            continue
        tools = example.tool_names
        if tools and strata.get(example.trace_id, NO_TOOL) == NO_TOOL:
            strata[example.trace_id] = tools[0]
        else:
            strata.setdefault(example.trace_id, NO_TOOL)
    return strata


@dataclass
class SplitPlan:
    """Which traces are held out; `route` sends examples to their side and counts them."""

    eval_traces: frozenset[str]
    strata: dict[str, tuple[int, int]]
    """Per stratum: (traces, of which eval)."""
    rows: Counter[str] = field(default_factory=Counter)
    """Examples routed to each side."""

    def side(self, example: Example) -> str:
        return EVAL if example.trace_id in self.eval_traces else TRAIN

    def route(self, examples: Iterable[Example]) -> Iterator[tuple[str, Example]]:
        for example in examples:
            side = self.side(example)
            self.rows[side] += 1
            yield side, example


def plan_split(strata: Mapping[str, str], config: SplitConfig | None = None) -> SplitPlan:
    """The eval traces for these (trace id -> stratum) pairs, by the rule of the module docstring."""
    config = config if config is not None else SplitConfig()
    members: dict[str, list[str]] = defaultdict(list)
    for trace_id, stratum in strata.items():
        members[stratum].append(trace_id)
    for ids in members.values():
        ids.sort(key=lambda trace_id: (_seeded(config.seed, "trace", trace_id), trace_id))
    quota = _eval_counts({s: len(ids) for s, ids in members.items()}, config)
    eval_traces = frozenset(trace_id for s, ids in members.items() for trace_id in ids[: quota[s]])
    return SplitPlan(eval_traces, {s: (len(ids), quota[s]) for s, ids in sorted(members.items())})


def _eval_counts(sizes: dict[str, int], config: SplitConfig) -> dict[str, int]:
    ratio = config.eval_ratio
    tie = {s: _seeded(config.seed, "stratum", s) for s in sizes}
    capacity = {s: n - 1 for s, n in sizes.items()}  # every stratum keeps a training trace
    remaining = min(round(ratio * sum(sizes.values())), sum(capacity.values()))
    counts = dict.fromkeys(sizes, 0)
    # Step 2: one each for the strata that can spare one, largest first while the total allows.
    for s in sorted((s for s in sizes if capacity[s] > 0), key=lambda s: (-sizes[s], tie[s], s))[:remaining]:
        counts[s] = 1
        remaining -= 1
    # Step 3: the rest to the stratum furthest below its share, one at a time.
    heap = [(counts[s] - ratio * n, tie[s], s) for s, n in sizes.items() if counts[s] < capacity[s]]
    heapq.heapify(heap)
    while remaining > 0 and heap:
        _, _, s = heapq.heappop(heap)
        counts[s] += 1
        remaining -= 1
        if counts[s] < capacity[s]:
            heapq.heappush(heap, (counts[s] - ratio * sizes[s], tie[s], s))
    return counts


def _seeded(seed: int, kind: str, name: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{name}".encode(), digest_size=8, key=str(seed).encode()).digest()
