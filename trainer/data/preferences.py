"""`agent-tracer dataset dpo` and `dataset reward`: preference pairs from the store, each labelled with
how it was made, curated, split by trace, written and summarised.

DPO pairs come from four sources (`--negatives`):

    corrections a run's last answer against the answer a person gave as its correction (feedback
                with a `correction`: the run page's "Make a DPO pair", `traces correct`), the
                prompt being the conversation that last call was sent; the newest correction of
                a run counts
    traces      a failed run against a successful run of a similar task (word-set Jaccard of what
                the user asked, at least `similarity`, 0.7 by default), parted where they differ
    synthetic   rule-made wrong tool calls for each call a successful run made (`negatives.py`)
    llm         wrong tool calls written by a model behind an OpenAI-compatible endpoint, for the same

Reward rows (the same prompt / chosen / rejected shape, which TRL's RewardTrainer takes) come from

    ratings     a lower rated run against a similar one rated at least `min_gap` higher
    feedback    pairwise judgements: feedback on trace A labelled "better_than:<trace B>"
                (`agent-tracer traces rate A --better-than B`)

The runs are held in memory as examples (pairing needs them all at once); preference data is
made from thousands of runs, not the millions SFT may stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from agent_tracer.console import progress_bar
from agent_tracer.errors import ConfigError, TraceNotFound
from agent_tracer.feedback import BETTER_THAN
from agent_tracer.store import TraceStore
from trainer.data import pii
from trainer.data.dedup import row_digest
from trainer.data.output import SplitWriter, finish, output_paths
from trainer.data.pairs import Candidate, match_pairs, preference, same_turn, task_text
from trainer.data.pii import Redaction
from trainer.data.rows import Example, NotTrainable, Preference, trl_messages
from trainer.data.select import Selection
from trainer.data.sft import BuildResult, run_examples
from trainer.data.split import SplitConfig, plan_split
from trainer.data.summary import Step, Summary

DPO_SOURCES = ("corrections", "traces", "synthetic", "llm")
REWARD_SOURCES = ("ratings", "feedback")


@dataclass
class PreferenceConfig:
    out: str = field(
        default="dpo.jsonl", metadata={"help": "Train file; the eval split and the manifest go beside it."}
    )
    sources: list[str] = field(
        default_factory=lambda: ["corrections", "traces", "synthetic"],
        metadata={"help": "Where pairs come from (see the command's help)."},
    )
    similarity: float = field(
        default=0.7,
        metadata={"help": "How alike two runs' tasks must be to be paired (Jaccard of the words the user wrote)."},
    )
    chosen_outcome: str = field(default="success", metadata={"help": "Outcome of the runs that are chosen."})
    rejected_outcome: str = field(default="failure", metadata={"help": "Outcome of the runs that are rejected."})
    min_gap: float = field(
        default=1.0, metadata={"help": "Reward rows from ratings: how much higher the chosen run must be rated."}
    )
    kinds: list[str] | None = field(default=None, metadata={"help": "Synthetic mistakes to make (default all)."})
    per_example: int = field(default=2, metadata={"help": "Synthetic rejected answers per successful run."})
    llm_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint that writes negatives (source llm)."}
    )
    llm_model: str | None = field(default=None, metadata={"help": "Its model."})
    llm_key_env: str | None = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding its API key."}
    )
    redact: bool = field(default=True, metadata={"help": "Replace emails, phone and card numbers, keys, IPs."})
    redact_rules: list[str] = field(
        default_factory=list, metadata={"help": "More to replace: NAME=REGEX, each match becoming [NAME]."}
    )
    eval_ratio: float = field(default=0.1, metadata={"help": "Share of traces held out for evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of the synthetic negatives and the split."})
    include_held_out: bool = field(default=False, metadata={"help": "Also use traces tagged held-out."})

    def check(self, known: tuple[str, ...]) -> None:
        unknown = sorted(set(self.sources) - set(known))
        if unknown or not self.sources:
            raise ConfigError(f"sources must be some of {', '.join(known)}, not {', '.join(unknown) or 'none'}")
        if "llm" in self.sources and not (self.llm_url and self.llm_model):
            raise ConfigError("negatives written by an LLM need --llm-url and --llm-model")
        if not 0 < self.similarity <= 1:
            raise ConfigError(f"similarity must be in (0, 1], not {self.similarity}")


def build_dpo(
    store: TraceStore, selection: Selection, config: PreferenceConfig, *, progress: bool = False
) -> BuildResult:
    """DPO pairs; raises `EmptySelection` or `ConfigError`."""
    config.check(DPO_SOURCES)
    summary = Summary("dpo")
    runs = _Runs(store, selection, config, summary)
    chosen = [ex for ex in runs.examples if runs.outcome(ex) == config.chosen_outcome]
    calls = [point for ex in chosen for point in tool_call_points(ex)]
    pairs: list[Preference] = []
    if "corrections" in config.sources:  # first: a pair also made another way is kept as a correction
        pairs += _corrected(store, runs, summary.step("pairs from corrections"))
    if "traces" in config.sources:
        step = summary.step("pair runs")
        failed = [ex for ex in runs.examples if runs.outcome(ex) == config.rejected_outcome]
        step.rows_in = len(failed)
        pairs += _matched(
            match_pairs(
                [Candidate(ex, task_text(ex), 1.0) for ex in chosen],
                [Candidate(ex, task_text(ex), 0.0) for ex in failed],
                threshold=config.similarity,
                source="traces",
            ),
            step,
        )
    if "synthetic" in config.sources:
        from trainer.data.negatives import KINDS, SyntheticConfig, SyntheticStats, synthetic_negatives

        stats = SyntheticStats()
        made = list(
            synthetic_negatives(
                calls, SyntheticConfig(tuple(config.kinds or KINDS), config.per_example, config.seed), stats
            )
        )
        step = summary.step("synthetic")
        step.rows_in, step.rows_out = stats.examples, len(made)
        step.reasons.update({f"{reason}": n for reason, n in stats.unusable.items()})
        step.reasons.update({f"made {kind}": n for kind, n in stats.made.items()})
        step.reasons.update({f"no {kind}: {why}": n for (kind, why), n in stats.skipped.items()})
        pairs += made
    if "llm" in config.sources:
        pairs += _llm_pairs(calls, config, summary, progress)
    return _write(pairs, "dpo", store, selection, config, summary, runs)


def build_reward(
    store: TraceStore, selection: Selection, config: PreferenceConfig, *, progress: bool = False
) -> BuildResult:
    """Reward-model pairs; raises `EmptySelection` or `ConfigError`."""
    config.check(REWARD_SOURCES)
    summary = Summary("reward")
    runs = _Runs(store, selection, config, summary)
    pairs: list[Preference] = []
    if "ratings" in config.sources:
        step = summary.step("pair ratings")
        rated = [
            Candidate(ex, task_text(ex), rating) for ex in runs.examples if (rating := runs.rating(ex)) is not None
        ]
        step.rows_in = len(rated)
        if len(rated) < len(runs.examples):
            step.reasons["runs not rated (left out)"] = len(runs.examples) - len(rated)
        pairs += _matched(
            match_pairs(rated, rated, threshold=config.similarity, source="ratings", min_gap=config.min_gap), step
        )
    if "feedback" in config.sources:
        pairs += _judged(store, runs, summary.step("pairwise feedback"))
    return _write(pairs, "reward", store, selection, config, summary, runs)


def tool_call_points(example: Example) -> list[Example]:
    """The example cut at each assistant turn that calls tools: what the model was given, and the
    calls it made there (the correct answers that negatives contradict)."""
    return [
        Example(example.messages[: i + 1], example.tools, example.trace_id)
        for i, message in enumerate(example.messages)
        if message["role"] == "assistant" and message.get("tool_calls")
    ]


class _Runs:
    """The selected runs as examples (each run's final conversations), with their traces."""

    def __init__(self, store: TraceStore, selection: Selection, config: PreferenceConfig, summary: Summary) -> None:
        selection.check(store)
        self.traces: dict[str, dict[str, Any]] = {}

        def remember(runs: Iterable[Any]) -> Iterator[Any]:
            for run in runs:
                self.traces[run.trace["id"]] = run.trace
                yield run

        runs = remember(selection.runs(store, include_held_out=config.include_held_out))
        self.examples = list(
            run_examples(runs, "run", summary.step("select"), summary.step("convert"), config.include_held_out)
        )
        self.by_trace: dict[str, Example] = {}
        for example in self.examples:  # a run with several threads: its last is its answer
            self.by_trace[example.trace_id or ""] = example

    def outcome(self, example: Example) -> str | None:
        return self.traces[example.trace_id or ""].get("outcome")

    def rating(self, example: Example) -> float | None:
        return self.traces[example.trace_id or ""].get("rating")


def _matched(results: Iterable[tuple[Preference | None, str]], step: Step) -> list[Preference]:
    pairs = []
    for pair, why in results:
        if pair is None:
            step.reasons[why] += 1
        else:
            pairs.append(pair)
    step.rows_out = len(pairs)
    return pairs


def _judged(store: TraceStore, runs: _Runs, step: Step) -> list[Preference]:
    pairs = []
    for feedback in store.feedback(label_prefix=BETTER_THAN):
        step.rows_in += 1
        better = runs.by_trace.get(feedback.trace_id)
        assert feedback.label is not None  # chosen by its prefix
        try:
            worse_id = store.get_trace(feedback.label[len(BETTER_THAN) :]).trace.id
        except TraceNotFound:
            worse_id = None
        worse = runs.by_trace.get(worse_id or "")
        if better is None or worse is None:
            step.reasons["a run not in the selection"] += 1
            continue
        pair = preference(better, worse, "feedback")
        if pair is None:
            step.reasons["answers do not differ"] += 1
            continue
        pairs.append(pair)
    step.rows_out = len(pairs)
    return pairs


def _corrected(store: TraceStore, runs: _Runs, step: Step) -> list[Preference]:
    """A pair for each selected run with a correction (its newest): the run's final conversation
    without its answer, the correction chosen, the answer rejected."""
    newest = {feedback.trace_id: feedback for feedback in store.feedback(corrections=True)}
    pairs = []
    for trace_id, feedback in newest.items():
        step.rows_in += 1
        run = runs.by_trace.get(trace_id)
        if run is None:
            step.reasons["run not in the selection"] += 1
            continue
        try:
            chosen = trl_messages([feedback.correction or {}], notes=step.reasons)
        except NotTrainable as why:
            step.reasons[f"correction {why}"] += 1
            continue
        pair = Preference(run.messages[:-1], chosen, run.messages[-1:], run.tools, "corrections", trace_id=trace_id)
        if same_turn(pair.chosen[0], pair.rejected[0]):
            step.reasons["correction is the answer given"] += 1
            continue
        pairs.append(pair)
    step.rows_out = len(pairs)
    return pairs


def _llm_pairs(calls: list[Example], config: PreferenceConfig, summary: Summary, progress: bool) -> list[Preference]:
    from trainer.data.llm_negatives import LLMConfig, LLMStats, llm_negatives

    stats = LLMStats()
    update = None
    bar = None
    if progress:
        bar = progress_bar("asking the LLM for negatives", " calls", len(calls))
        update = bar.update
    try:
        made = list(
            llm_negatives(
                calls,
                LLMConfig(
                    config.llm_url or "", config.llm_model or "", api_key_env=config.llm_key_env, seed=config.seed
                ),
                stats,
                progress=update,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    step = summary.step("llm")
    step.rows_in, step.rows_out = stats.examples, stats.made
    step.reasons.update(stats.failed)
    return made


def _write(
    pairs: list[Preference],
    kind: str,
    store: TraceStore,
    selection: Selection,
    config: PreferenceConfig,
    summary: Summary,
    runs: _Runs,
) -> BuildResult:
    curate = summary.step("curate")
    curate.rows_in = len(pairs)
    redaction = pii.redaction(config.redact_rules, Step("redact")) if config.redact else None
    seen: set[bytes] = set()
    kept: list[Preference] = []
    for pair in pairs:
        if redaction is not None:
            pair = _redacted(pair, redaction)
        digest = row_digest(Example(pair.prompt + pair.chosen + pair.rejected, pair.tools))
        if digest in seen:
            curate.reasons["exact duplicate"] += 1
            continue
        seen.add(digest)
        kept.append(pair)
    if redaction is not None:
        curate.reasons.update({f"redacted {name}": n for name, n in redaction.counts.reasons.items()})
    curate.rows_out = len(kept)
    strata: dict[str, str] = {}
    for pair in kept:
        if pair.trace_id is not None:
            strata.setdefault(pair.trace_id, (_first_tool(pair) or "none"))
    plan = plan_split(strata, SplitConfig(config.eval_ratio, config.seed))
    paths = output_paths(config.out)
    with SplitWriter(paths, plan.eval_traces, summary) as written:
        for pair in kept:
            written.write(pair.row(), pair.trace_id)
            summary.sources[pair.source] += 1
            tool = _first_tool(pair)
            if tool:
                summary.tools[tool] += 1
    finish(summary, paths, written, {"selection": asdict(selection), "config": asdict(config)})
    return BuildResult(kind, summary, paths)


def _redacted(pair: Preference, redaction: Redaction) -> Preference:
    prompt, chosen, rejected = (
        redaction.example(Example(messages)).messages for messages in (pair.prompt, pair.chosen, pair.rejected)
    )
    return Preference(prompt, chosen, rejected, pair.tools, pair.source, pair.kind, pair.trace_id)


def _first_tool(pair: Preference) -> str | None:
    calls = pair.chosen[0].get("tool_calls") if pair.chosen else None
    return calls[0]["function"]["name"] if calls else None
