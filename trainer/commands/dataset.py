"""`agent-tracer dataset sft|dpo|reward`: training data from the trace store.

    agent-tracer dataset sft    --out sft.jsonl    --outcome success --min-rating 4 --max-samples 10000
    agent-tracer dataset dpo    --out dpo.jsonl    --negatives corrections,traces,synthetic[,llm --llm-url URL …]
    agent-tracer dataset reward --out reward.jsonl --sources ratings,feedback

Each prints what went in, what was dropped and why, token lengths, tools and the files written
(`--json`: the same as JSON). Options take their defaults and help from the config dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

from agent_tracer.console import db_option, json_option, open_store, selection_options
from trainer.data.negatives import KINDS as NEGATIVE_KINDS
from trainer.data.preferences import DPO_SOURCES, REWARD_SOURCES, PreferenceConfig
from trainer.data.select import Selection
from trainer.data.sft import SFTConfig


def _help(config: type, name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(config) if f.name == name)


class ListParam(click.ParamType):
    """A comma-separated list of choices: `traces,synthetic`."""

    name = "LIST"

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        items = [item.strip() for item in str(value).split(",") if item.strip()]
        unknown = [item for item in items if item not in self.choices]
        if unknown or not items:
            self.fail(f"{value!r}: choose from {', '.join(self.choices)}, comma-separated", param, ctx)
        return items


def _selection(filters: dict[str, Any]) -> Selection:
    """The selection options' values (taken out of `filters`) as a `Selection`."""
    outcome = filters.pop("outcome")
    return Selection(
        outcome=None if outcome in (None, "any") else outcome,
        min_rating=filters.pop("min_rating"),
        name=filters.pop("name"),
        tags=list(filters.pop("tags")),
        since=filters.pop("since"),
        until=filters.pop("until"),
        model=filters.pop("model"),
        has_tool_calls=filters.pop("has_tool_calls"),
        text=filters.pop("text"),
        max_traces=filters.pop("limit"),
        order=filters.pop("order"),
    )


def _report(build: Callable[[Any], Any], db: str | None, as_json: bool) -> None:
    """Run a build against the store at `db`, print its summary; its errors as one line."""
    from agent_tracer.errors import AgentTracerError

    try:
        with open_store(db) as store:
            result = build(store)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        json.dumps(result.summary.to_dict(), indent=2, ensure_ascii=False) if as_json else result.summary.render()
    )


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--redact/--no-redact", default=True, show_default=True, help=_help(SFTConfig, "redact")),
            click.option(
                "--redact-rule",
                "redact_rules",
                multiple=True,
                metavar="NAME=REGEX",
                help=_help(SFTConfig, "redact_rules") + " Repeatable.",
            ),
            click.option(
                "--eval-ratio",
                type=click.FloatRange(0, 1, max_open=True),
                default=0.1,
                show_default=True,
                help=_help(SFTConfig, "eval_ratio"),
            ),
            click.option("--seed", type=int, default=0, show_default=True, help=_help(SFTConfig, "seed")),
            click.option("--include-held-out", is_flag=True, help=_help(SFTConfig, "include_held_out")),
            click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars."),
            db_option,
            json_option,
        ]
    ):
        command = option(command)
    return command


@click.group()
def dataset() -> None:
    """Training data from the recorded traces: SFT, DPO and reward rows in TRL's formats."""


@dataset.command("sft")
@click.option(
    "--out", default="sft.jsonl", show_default=True, type=click.Path(dir_okay=False), help=_help(SFTConfig, "out")
)
@click.option(
    "--per", type=click.Choice(["run", "call"]), default="run", show_default=True, help=_help(SFTConfig, "per")
)
@click.option("--tokenizer", default="smollm2", show_default=True, help=_help(SFTConfig, "model"))
@click.option(
    "--max-length", type=click.IntRange(min=16), default=4096, show_default=True, help=_help(SFTConfig, "max_length")
)
@click.option("--max-samples", type=click.IntRange(min=1), help=_help(SFTConfig, "max_samples"))
@click.option("--dedup/--no-dedup", default=True, show_default=True, help=_help(SFTConfig, "dedup"))
@click.option(
    "--near-dup", type=click.FloatRange(0, 1), default=0.9, show_default=True, help=_help(SFTConfig, "near_dup")
)
@click.option("--mixin", type=click.Path(exists=True, dir_okay=False), help=_help(SFTConfig, "mixin"))
@click.option(
    "--mixin-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help=_help(SFTConfig, "mixin_share"),
)
@click.option(
    "--unused-params", type=click.IntRange(min=0), default=0, show_default=True, help=_help(SFTConfig, "unused_params")
)
@selection_options(order="best", outcome="success", limit_flag="--max-traces")
@_common
def sft(db: str | None, as_json: bool, progress: bool, tokenizer: str, **options: Any) -> None:
    """SFT rows {messages, tools}: one per run (its final conversation) or per model call, curated.

    By default the successful runs (--outcome any: all runs), best-rated first; traces tagged
    held-out (BFCL's live_* questions) are never used unless asked for."""
    from trainer.data.sft import build_sft

    selection = _selection(options)
    config = SFTConfig(model=tokenizer, **options)
    _report(lambda store: build_sft(store, selection, config, progress=progress), db, as_json)


@dataset.command("dpo")
@click.option(
    "--out",
    default="dpo.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
    help=_help(PreferenceConfig, "out"),
)
@click.option(
    "--negatives",
    "sources",
    type=ListParam(DPO_SOURCES),
    default="corrections,traces,synthetic",
    show_default=True,
    help="corrections: a run's answer against the correction a person gave it (traces correct, the run "
    "page); traces: a failed run against a successful run of a similar task; synthetic: rule-made wrong "
    "tool calls; llm: wrong calls written by a model at --llm-url.",
)
@click.option(
    "--similarity",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.7,
    show_default=True,
    help=_help(PreferenceConfig, "similarity"),
)
@click.option("--chosen-outcome", default="success", show_default=True, help=_help(PreferenceConfig, "chosen_outcome"))
@click.option(
    "--rejected-outcome", default="failure", show_default=True, help=_help(PreferenceConfig, "rejected_outcome")
)
@click.option("--kinds", type=ListParam(NEGATIVE_KINDS), help=_help(PreferenceConfig, "kinds"))
@click.option(
    "--per-example",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help=_help(PreferenceConfig, "per_example"),
)
@click.option("--llm-url", help=_help(PreferenceConfig, "llm_url"))
@click.option("--llm-model", help=_help(PreferenceConfig, "llm_model"))
@click.option("--llm-key-env", default="OPENAI_API_KEY", show_default=True, help=_help(PreferenceConfig, "llm_key_env"))
@selection_options(order="best", outcome="any", limit_flag="--max-traces")
@_common
def dpo(db: str | None, as_json: bool, progress: bool, **options: Any) -> None:
    """DPO rows {prompt, chosen, rejected, tools, source, kind}, each labelled with its source."""
    from trainer.data.preferences import build_dpo

    selection = _selection(options)
    config = PreferenceConfig(**options)
    _report(lambda store: build_dpo(store, selection, config, progress=progress), db, as_json)


@dataset.command("reward")
@click.option(
    "--out",
    default="reward.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
    help=_help(PreferenceConfig, "out"),
)
@click.option(
    "--sources",
    type=ListParam(REWARD_SOURCES),
    default="ratings,feedback",
    show_default=True,
    help="ratings: a lower rated run against a similar, better rated one; feedback: pairwise judgements "
    "(traces rate A --better-than B).",
)
@click.option(
    "--similarity",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.7,
    show_default=True,
    help=_help(PreferenceConfig, "similarity"),
)
@click.option(
    "--min-gap", type=click.FloatRange(0, 5), default=1.0, show_default=True, help=_help(PreferenceConfig, "min_gap")
)
@selection_options(order="best", outcome="any", limit_flag="--max-traces")
@_common
def reward(db: str | None, as_json: bool, progress: bool, **options: Any) -> None:
    """Reward-model rows {prompt, chosen, rejected, tools, source} from ratings and pairwise feedback."""
    from trainer.data.preferences import build_reward

    selection = _selection(options)
    config = PreferenceConfig(**options)
    _report(lambda store: build_reward(store, selection, config, progress=progress), db, as_json)
