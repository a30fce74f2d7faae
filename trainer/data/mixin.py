"""General instruction data mixed into the training set, against catastrophic forgetting.

A model fine-tuned only on one agent's traces can lose what it knew outside them; a share of
general instruction rows in the train set keeps some of it. The user's file is JSONL in one of
TRL's conversational forms:

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}], "tools": [...]}
    {"prompt": "...", "completion": "..."}                  (a user message and the answer)
    {"prompt": [messages...], "completion": [messages...]}  (conversational prompt-completion)

Each line is validated as the traces are (`rows.trl_messages`: text content, known roles, an
assistant message last); a bad line is named `FILE:LINE: reason`, counted and skipped.

The share is of the final train set: for n train examples and share p the mix-in adds
round(p / (1 - p) * n) rows, so they are p of the n + m, or all the file's valid rows if it has
fewer. They are a uniform sample of the file's valid rows (reservoir sampling with a seed, so a
file of any size is read once, holding only the sample), in file order. Mixed-in rows have no
trace id and go only to train (see `split`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from agent_tracer import fastjson
from agent_tracer.errors import ConfigError
from trainer.data.rows import Example, NotTrainable, trl_messages, trl_tools

MAX_ERRORS = 100
"""Bad lines whose message is kept; all of them are counted."""


@dataclass
class MixinConfig:
    path: str | None = field(
        default=None,
        metadata={"help": "JSONL file of general instruction rows (messages, or prompt and completion)."},
    )
    share: float = field(
        default=0.0, metadata={"help": "Share of the final train set made of mixed-in rows, in [0, 1)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sample: same file and seed, same rows."})

    def __post_init__(self) -> None:
        if not 0 <= self.share < 1:
            raise ConfigError(f"mix-in share must be in [0, 1), got {self.share}")
        if self.share > 0 and not self.path:
            raise ConfigError("a mix-in share needs a mix-in file")


@dataclass
class MixinResult:
    examples: list[Example]
    """The sampled rows, in file order, as examples with source "mixin"."""
    wanted: int
    """round(share / (1 - share) * train examples): more than len(examples) when the file ran short."""
    valid: int = 0
    bad: int = 0
    errors: list[str] = field(default_factory=list)
    """`FILE:LINE: reason` of the first `MAX_ERRORS` bad lines."""


def mixin_count(share: float, train_examples: int) -> int:
    """Rows to add to `train_examples` so that they make up `share` of the result."""
    return round(share / (1 - share) * train_examples)


def sample_mixin(config: MixinConfig, train_examples: int) -> MixinResult:
    """Read `config.path` once and sample the rows that make `config.share` of the train set."""
    wanted = mixin_count(config.share, train_examples) if config.path else 0
    result = MixinResult([], wanted)
    if not wanted or not config.path:
        return result
    rng = random.Random(config.seed)
    sample: list[tuple[int, Example]] = []
    try:
        with open(config.path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    example = parse_line(line)
                except NotTrainable as error:
                    result.bad += 1
                    if len(result.errors) < MAX_ERRORS:
                        result.errors.append(f"{config.path}:{number}: {error}")
                    continue
                # Reservoir sampling (Algorithm R): the k-th valid row replaces a kept one with
                # probability wanted / k, which leaves every row kept with the same probability.
                result.valid += 1
                if len(sample) < wanted:
                    sample.append((number, example))
                else:
                    slot = rng.randrange(result.valid)
                    if slot < wanted:
                        sample[slot] = (number, example)
    except OSError as error:
        raise ConfigError(f"cannot read the mix-in file {config.path}: {error.strerror or error}") from None
    result.examples = [example for _, example in sorted(sample, key=lambda pair: pair[0])]
    return result


def parse_line(line: bytes | str) -> Example:
    """One JSONL line as a mixed-in example; `NotTrainable` says why it cannot be one."""
    try:
        row = fastjson.loads(line)
    except ValueError:
        raise NotTrainable("not valid JSON") from None
    if not isinstance(row, dict):
        raise NotTrainable(f"a row must be a JSON object, not {type(row).__name__}")
    if "messages" in row:
        messages = _message_list(row["messages"], "messages")
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        else:
            messages = _message_list(prompt, "prompt") + _message_list(completion, "completion")
    else:
        raise NotTrainable('needs "messages", or "prompt" and "completion"')
    tools = row.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise NotTrainable('"tools" must be a list of objects')
    return Example(trl_messages(messages), trl_tools(tools), trace_id=None, source="mixin")


def _message_list(value: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(message, dict) for message in value):
        raise NotTrainable(f'"{key}" must be a list of message objects (or, with prompt/completion, two strings)')
    return value
