"""`agent-tracer dataset sft`: SFT rows from the store, curated, split, written, summarised.

    select → convert → redact → exact dedup → near dedup → unused parameters → truncate → max samples
    → split → mix-in

Streamed in two passes, so memory stays flat however many traces there are: the first writes the
curated examples to a staging file and keeps only each trace's stratum (its first tool); the split
is then planned over those, and the second pass routes the staged rows to the train and eval files
and adds the mixed-in rows to train. Traces tagged `held-out` (BFCL's live_* questions, kept for
evaluation) are never used unless asked for.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent_tracer import fastjson
from agent_tracer.console import bar_over, progress_bar
from agent_tracer.conversations import call_conversation, final_conversations
from agent_tracer.errors import ConfigError
from agent_tracer.formats import HELD_OUT_TAG
from agent_tracer.store import TraceStore
from agent_tracer.store.store import RunRows
from trainer.data import parallel, pii
from trainer.data.dedup import ExactDedup, NearDedup, NearDedupConfig
from trainer.data.mixin import MixinConfig, sample_mixin
from trainer.data.output import SplitWriter, finish, load_dataset, output_paths
from trainer.data.rows import Example, NotTrainable, example_from
from trainer.data.select import Selection
from trainer.data.split import NO_TOOL, SplitConfig, plan_split
from trainer.data.summary import Step, Summary
from trainer.data.truncate import Truncator
from trainer.data.unused_params import UnusedParams

PER = ("run", "call")


@dataclass
class SFTConfig:
    out: str = field(
        default="sft.jsonl",
        metadata={
            "help": "Train file; the eval split and the manifest go beside it (NAME.eval.jsonl, NAME.manifest.json)."
        },
    )
    per: str = field(
        default="run", metadata={"help": "run: one row per run (its final conversation); call: one row per model call."}
    )
    model: str | None = field(
        default="smollm2",
        metadata={
            "help": "Tokenizer and chat template that lengths are "
            "measured and truncated with (smollm2, a folder, "
            "a .gguf file, a hub id; none: no measuring)."
        },
    )
    max_length: int | None = field(
        default=4096, metadata={"help": "Tokens an example may have; longer ones lose their oldest turns."}
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "At most this many rows (train + eval), best-rated traces first."}
    )
    redact: bool = field(default=True, metadata={"help": "Replace emails, phone and card numbers, keys, IPs."})
    redact_rules: list[str] = field(
        default_factory=list, metadata={"help": "More to replace: NAME=REGEX, each match becoming [NAME]."}
    )
    dedup: bool = field(default=True, metadata={"help": "Drop exact duplicates."})
    near_dup: float | None = field(
        default=0.9,
        metadata={"help": "Drop rows whose prompt is this similar to an earlier one (MinHash Jaccard; 0: keep them)."},
    )
    eval_ratio: float = field(default=0.1, metadata={"help": "Share of traces held out for evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of the split and the mix-in sample."})
    mixin: str | None = field(
        default=None, metadata={"help": "JSONL of general instruction rows to mix into train (against forgetting)."}
    )
    mixin_share: float = field(default=0.1, metadata={"help": "Share of the train rows the mix-in makes up."})
    include_held_out: bool = field(
        default=False, metadata={"help": "Also use traces tagged held-out (evaluation data)."}
    )
    unused_params: int = field(
        default=0,
        metadata={
            "help": "Optional parameters borrowed from other tools added to "
            "each tool a row offers, which its answer leaves out: "
            "teaches leaving out what the user did not ask for (0: "
            "none)."
        },
    )

    def __post_init__(self) -> None:
        if self.per not in PER:
            raise ConfigError(f"per must be run or call, not {self.per!r}")
        if self.model is not None and self.model.lower() == "none":
            self.model = None
        if self.near_dup is not None and not 0 <= self.near_dup <= 1:
            raise ConfigError(f"near_dup must be from 0 to 1, not {self.near_dup}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError("max_samples must be at least 1")
        if self.unused_params < 0:
            raise ConfigError(f"unused_params must be 0 or more, not {self.unused_params}")


@dataclass
class BuildResult:
    """What a build wrote, and its summary; `dataset()` loads the rows as `datasets.Dataset`s."""

    kind: str
    summary: Summary
    paths: dict[str, Path]

    def dataset(self) -> Any:
        """{"train": Dataset, "eval": Dataset} (a DatasetDict; eval only when there is one)."""
        from datasets import DatasetDict

        splits = {"train": self.paths["train"]}
        if self.paths["eval"].exists():
            splits["eval"] = self.paths["eval"]
        return DatasetDict({name: load_dataset(path, self.kind) for name, path in splits.items()})


def run_examples(
    runs: Iterable[RunRows], per: str, select: Step, convert: Step, include_held_out: bool = False
) -> Iterator[Example]:
    """The examples in the selected runs: each run's final conversations, or each call's, in TRL's
    form; counted into the select and convert steps."""
    for run in runs:
        select.rows_in += 1
        if not include_held_out and HELD_OUT_TAG in (run.trace.get("tags") or ()):
            select.reasons["held out for evaluation"] += 1
            continue
        conversations = [
            conversation
            for conversation in (
                call_conversation(call["id"], call["trace_id"], call["request"], call["response"])
                for call in run.calls
                if call["status"] == "ok"
            )
            if conversation is not None
        ]
        if not conversations:
            select.reasons["no call with an answer"] += 1
            continue
        select.rows_out += 1
        if per == "run":
            conversations = final_conversations(conversations)
        for conversation in conversations:
            convert.rows_in += 1
            try:
                example = example_from(conversation, convert.reasons)
            except NotTrainable as why:
                convert.reasons[str(why)] += 1
                continue
            convert.rows_out += 1
            yield example


def build_sft(
    store: TraceStore, selection: Selection, config: SFTConfig, *, tokenizer: Any = None, progress: bool = False
) -> BuildResult:
    """Build the SFT dataset; raises `EmptySelection` (which filter left nothing) or `ConfigError`.
    `tokenizer` (an object) stands in for loading `config.model`."""
    total = selection.check(store)
    summary = Summary("sft")
    truncator = _truncator(config, summary, tokenizer)
    mixin = MixinConfig(config.mixin, config.mixin_share if config.mixin else 0.0, config.seed)
    paths = output_paths(config.out)
    steps = {name: summary.step(name) for name in ("select", "convert", "redact") if name != "redact" or config.redact}
    redaction = pii.redaction(config.redact_rules, steps["redact"]) if config.redact else None
    bar = _progress_bar(total, progress)
    stream: Iterable[Example]
    # A limit that only some traces count towards (tags, held-out) depends on every chunk: read in one process.
    limited = selection.max_traces is not None and bool(selection.tags or not config.include_held_out)
    if total >= parallel.PARALLEL_FROM and parallel.readers() > 1 and not limited:
        job = parallel.ReadJob(
            store.url, selection, config.per, config.include_held_out, config.redact_rules if config.redact else None
        )
        stream = parallel.read_in_processes(job, steps, bar.update if bar is not None else None)
    else:
        runs = selection.runs(store, include_held_out=config.include_held_out)
        runs = runs if bar is None else bar_over(runs, bar)
        stream = run_examples(runs, config.per, steps["select"], steps["convert"], config.include_held_out)
        if redaction is not None:
            stream = redaction(stream)
    if config.dedup:
        stream = ExactDedup(summary.step("exact dedup"))(stream)
    if config.near_dup:
        stream = NearDedup(NearDedupConfig(threshold=config.near_dup, seed=config.seed), summary.step("near dedup"))(
            stream
        )
    if config.unused_params:
        stream = UnusedParams(config.unused_params, config.seed, summary.step("unused parameters"))(stream)
    if truncator is not None:
        stream = _measured(stream, truncator, summary.step("truncate"), summary)
    if config.max_samples is not None:
        stream = _at_most(stream, config.max_samples, summary.step("max samples"))

    paths["train"].parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sft-", dir=paths["train"].parent) as staging_dir:
        staging = Path(staging_dir) / "examples.jsonl"
        staged = _stage(stream, staging, summary)
        if bar is not None:
            bar.close()
        plan = plan_split(staged.strata, SplitConfig(config.eval_ratio, config.seed))
        train_rows = sum(n for trace_id, n in staged.rows.items() if trace_id not in plan.eval_traces)
        mixed = sample_mixin(mixin, train_rows)
        if redaction is not None:  # a user's general data may hold personal data too
            mixed.examples = [redaction.example(example) for example in mixed.examples]
        with SplitWriter(paths, plan.eval_traces, summary) as written:
            with open(staging, encoding="utf-8") as lines:
                for line in lines:
                    trace_id, _, row = line.partition("\t")
                    written.write_line(row, trace_id or None)
            for example in mixed.examples:
                written.write(example.row(), None)
                if truncator is not None:
                    summary.token_lengths.append(truncator.length(example.messages, example.tools))
    if mixin.share:
        step = summary.step("mix-in")
        step.rows_in, step.rows_out = written.train.rows - len(mixed.examples), written.train.rows
        step.reasons.update({"rows added": len(mixed.examples), "bad lines": mixed.bad})
        if len(mixed.examples) < mixed.wanted:
            step.reasons[f"short of the {mixed.wanted:,} wanted"] += 1
    total_rows = written.train.rows + written.eval.rows
    summary.sources = +Counter({"traces": total_rows - len(mixed.examples), "mixin": len(mixed.examples)})
    finish(
        summary,
        paths,
        written,
        {"selection": asdict(selection), "config": asdict(config), "mixin_errors": mixed.errors},
    )
    return BuildResult("sft", summary, paths)


def _truncator(config: SFTConfig, summary: Summary, tokenizer: Any) -> Truncator | None:
    if tokenizer is None and config.model is None:
        return None
    from trainer.chat_template import use_tool_template
    from trainer.models import load_tokenizer

    if tokenizer is None and config.model is not None:
        tokenizer = load_tokenizer(config.model)
    name = config.model or type(tokenizer).__name__
    summary.tokenizer = f"{name}, {use_tool_template(tokenizer)} chat template"
    return Truncator(tokenizer, config.max_length)


def _measured(examples: Iterable[Example], truncator: Truncator, step: Step, summary: Summary) -> Iterator[Example]:
    for example in examples:
        step.rows_in += 1
        kept, tokens = truncator(example)
        if kept is not example and example.plain is not None:  # the borrowed parameters made it too long
            step.reasons["kept without unused parameters, too long with them"] += 1
            kept, tokens = truncator(example.plain)
        if kept is None:
            step.reasons[f"longer than {truncator.max_length:,} tokens in its last turn"] += 1
            continue
        if kept is not example:
            step.reasons["truncated (oldest turns dropped)"] += 1
        summary.token_lengths.append(tokens)
        step.rows_out += 1
        yield kept


def _at_most(examples: Iterable[Example], limit: int, step: Step) -> Iterator[Example]:
    for example in examples:
        if step.rows_out == limit:
            step.reasons["over the limit"] += 1
            step.rows_in += 1
            continue
        step.rows_in += 1
        step.rows_out += 1
        yield example


@dataclass
class _Staged:
    strata: dict[str, str] = field(default_factory=dict)
    """Each trace's stratum for the split: the first tool its examples call, or "none"."""
    rows: Counter[str] = field(default_factory=Counter)
    """Examples per trace id ("" for none)."""


def _stage(examples: Iterable[Example], path: Path, summary: Summary) -> _Staged:
    """Write the curated examples to the staging file as the lines the dataset will hold, each
    after its trace id and a tab (so the second pass only routes lines); count tools and rows."""
    staged = _Staged()
    with open(path, "w", encoding="utf-8") as staging:
        for example in examples:
            trace_id = example.trace_id or ""
            staging.write(f"{trace_id}\t{fastjson.dumps(example.row())}\n")
            tools = example.tool_names
            summary.tools.update(tools)
            staged.rows[trace_id] += 1
            if trace_id and staged.strata.get(trace_id, NO_TOOL) == NO_TOOL:
                staged.strata[trace_id] = tools[0] if tools else NO_TOOL
    return staged


def _progress_bar(total: int, show: bool) -> Any:
    return progress_bar("reading traces", " traces", total) if show else None
