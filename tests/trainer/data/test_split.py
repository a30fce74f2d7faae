"""The split keeps runs whole, holds out about the ratio of every tool's traces, and is the same
whatever order the traces arrive in."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from agent_tracer.errors import ConfigError
from trainer.data.rows import Example
from trainer.data.split import EVAL, NO_TOOL, TRAIN, SplitConfig, plan_split, trace_strata

SIZES = {"search": 40, NO_TOOL: 20, "get_weather": 25, "calendar": 9, "send_email": 3, "translate": 2, "rare": 1}


def example(trace_id: str | None, tools: list[str], n: int = 0) -> Example:
    calls = [{"type": "function", "function": {"name": name, "arguments": {}}} for name in tools]
    messages = [{"role": "user", "content": f"request {trace_id} {n}"}]
    if calls:
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        messages.append({"role": "tool", "content": "done"})
    messages.append({"role": "assistant", "content": "ok"})
    return Example(messages, trace_id=trace_id)


def corpus() -> list[Example]:
    """2-3 examples a trace; a trace's first example does not always call its stratum's tool."""
    rng = random.Random(0)
    examples = []
    for tool, count in SIZES.items():
        for i in range(count):
            trace = f"{tool}-{i:02d}"
            first = [] if tool == NO_TOOL or i % 3 == 0 else [tool, "search"]
            examples.append(example(trace, first))
            for n in range(rng.randrange(1, 3)):
                examples.append(example(trace, [] if tool == NO_TOOL else [tool], n + 1))
    return examples


def eval_traces(examples: list[Example], **config) -> frozenset[str]:
    return plan_split(trace_strata(examples), SplitConfig(**config)).eval_traces


def test_strata_are_each_traces_first_tool_called():
    strata = trace_strata(corpus())
    assert Counter(strata.values()) == SIZES
    assert strata["calendar-00"] == "calendar" and strata["calendar-01"] == "calendar"


def test_traces_stay_whole():
    examples = corpus()
    plan = plan_split(trace_strata(examples), SplitConfig(eval_ratio=0.2))
    sides = defaultdict(set)
    for side, ex in plan.route(examples):
        sides[ex.trace_id].add(side)
    assert all(len(s) == 1 for s in sides.values())
    assert plan.rows[TRAIN] + plan.rows[EVAL] == len(examples) and plan.rows[EVAL] > 0


def test_the_same_split_whatever_the_order_and_a_new_one_per_seed():
    examples = corpus()
    reference = eval_traces(examples, seed=7)
    for shuffle_seed in range(5):  # traces in another order, their examples interleaved
        rng = random.Random(shuffle_seed)
        pending = defaultdict(list)
        for ex in examples:
            pending[ex.trace_id].append(ex)
        reordered = []
        while pending:
            trace = rng.choice(sorted(pending))
            reordered.append(pending[trace].pop(0))
            if not pending[trace]:
                del pending[trace]
        assert reordered != examples
        assert eval_traces(reordered, seed=7) == reference
    assert eval_traces(examples, seed=8) != reference


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.3])
def test_eval_share_is_the_ratio_and_every_stratum_is_evaluated(ratio):
    plan = plan_split(trace_strata(corpus()), SplitConfig(eval_ratio=ratio))
    total = sum(SIZES.values())
    assert len(plan.eval_traces) == round(ratio * total)
    for stratum, (traces, held_out) in plan.strata.items():
        assert traces == SIZES[stratum]
        assert held_out < traces or traces == 0  # a training trace for every tool
        if round(ratio * total) >= sum(n >= 2 for n in SIZES.values()):  # the ratio allows one each
            assert held_out >= (1 if traces >= 2 else 0)
        assert abs(held_out - ratio * traces) <= 1 or (traces >= 2 and held_out == 1), stratum
    assert plan.strata["rare"] == (1, 0)


def test_when_the_ratio_allows_fewer_eval_traces_than_strata_the_share_still_holds():
    strata = {f"t{s}-{i}": f"tool{s}" for s in range(30) for i in range(2)}
    plan = plan_split(strata, SplitConfig(eval_ratio=0.1))
    assert len(plan.eval_traces) == 6
    assert all(held_out <= 1 for _, held_out in plan.strata.values())


def test_examples_without_a_trace_always_train():
    examples = corpus()
    plan = plan_split(trace_strata(examples), SplitConfig(eval_ratio=0.5))
    mixed_in = Example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], source="mixin")
    assert plan.side(mixed_in) == TRAIN
    assert "None" not in plan.eval_traces and None not in plan.eval_traces


def test_no_eval_at_ratio_zero_and_bad_ratios_refused():
    assert eval_traces(corpus(), eval_ratio=0) == frozenset()
    with pytest.raises(ConfigError):
        SplitConfig(eval_ratio=1.0)
