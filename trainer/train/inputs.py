"""The rows a run trains on: every line checked before a model is loaded, then read as
`datasets.Dataset`s.

A row in the wrong shape fails the run before any training starts, with its file, line and what
is wrong (`sft.jsonl line 12: messages[3] has role 'bot'`), so an hour of training is never lost to
row 9,000. The rows are those `agent-tracer dataset` writes (`trainer/data/rows.py`):

    sft      {"messages": [...], "tools": [...]}, ending with the assistant's turn
    dpo      {"prompt": [...], "chosen": [...], "rejected": [...], "tools": [...]}
    reward   the same as dpo
    grpo     {"prompt": [...], "tools": [...], "reference": [tool calls]}, or an SFT row: a prompt
             before each assistant turn that calls tools, those calls its reference

The evaluation rows are `--eval-data`, else the `.eval.jsonl` file the dataset command wrote beside
the training file, else a seeded share of the training rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_tracer.errors import ConfigError
from agent_tracer.messages import ROLES
from trainer.data.output import load_dataset, output_paths, read_rows
from trainer.data.rows import template_roles

SHOWN = 5
"""Problems quoted in the error; the rest are counted."""


class DataError(ConfigError):
    """Rows that cannot be trained on: the first few, by file and line."""


@dataclass
class DataFile:
    """A checked file: what the run folder records of it."""

    path: Path
    rows: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows, "sha256": self.sha256}


def check(path: str | Path, kind: str) -> DataFile:
    """Read every line of `path` and check it is a `kind` row; `DataError` names the bad lines."""
    path = Path(path)
    digest = hashlib.sha256()
    problems: list[str] = []
    bad = rows = 0
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read the training data {path}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            digest.update(line)
            if not line.strip():
                continue
            rows += 1
            try:
                problem = row_problem(json.loads(line), kind)
            except ValueError as exc:
                problem = f"not JSON ({exc})"
            if problem is not None:
                bad += 1
                if len(problems) < SHOWN:
                    problems.append(f"{path} line {number}: {problem}")
    if problems:
        more = f"\n(and {bad - len(problems)} more bad lines)" if bad > len(problems) else ""
        raise DataError(f"{bad} of {rows} rows are not {kind} rows:\n" + "\n".join(problems) + more)
    if not rows:
        raise DataError(f"{path} has no rows")
    return DataFile(path, rows, digest.hexdigest())


def row_problem(row: Any, kind: str) -> str | None:
    """What is wrong with a row for a `kind` run, or None."""
    if not isinstance(row, dict):
        return f"a row must be a JSON object, not {type(row).__name__}"
    problem = _tools_problem(row.get("tools", []))
    if problem:
        return problem
    if kind == "sft" or (kind == "grpo" and "prompt" not in row):
        return _conversation_problem(row, "messages", ends_with="assistant")
    if kind == "grpo":
        return _conversation_problem(row, "prompt", ends_with=None)
    for key in ("chosen", "rejected"):
        problem = _conversation_problem(row, key, ends_with="assistant")
        if problem:
            return problem
    return _conversation_problem(row, "prompt", ends_with=None, empty_ok=True) if "prompt" in row else None


def eval_path(config: Any) -> Path | None:
    """The evaluation file: `--eval-data`, or the dataset's own beside `--data`, if any."""
    if config.eval_data:
        return Path(config.eval_data)
    beside = output_paths(config.data)["eval"]
    return beside if Path(config.data).suffix == ".jsonl" and beside.exists() else None


def load(config: Any, kind: str) -> tuple[Any, Any, dict[str, Any]]:
    """(train, eval or None, what the run folder records): the rows as `datasets.Dataset`s."""
    train_file = check(config.data, kind)
    eval_file_path = eval_path(config)
    eval_file = check(eval_file_path, kind) if eval_file_path else None
    train = _dataset(train_file.path, kind)
    evaluation = _dataset(eval_file.path, kind) if eval_file else None
    record: dict[str, Any] = {"train": train_file.to_dict(), "eval": eval_file.to_dict() if eval_file else None}
    if evaluation is None and config.eval_ratio > 0 and len(train) >= 10:
        parts = train.train_test_split(test_size=config.eval_ratio, seed=config.seed)
        train, evaluation = parts["train"], parts["test"]
        record["eval"] = {"split_from": "train", "ratio": config.eval_ratio, "rows": len(evaluation)}
    record["train_rows_used"] = len(train)
    return train, evaluation, record


def _dataset(path: Path, kind: str) -> Any:
    if kind == "grpo":
        from datasets import Dataset, Features, Json, List

        features = Features({"prompt": List(Json()), "tools": List(Json()), "reference": List(Json())})
        stat = path.stat()
        return Dataset.from_generator(
            _grpo_rows, features=features, gen_kwargs={"path": str(path), "stamp": f"{stat.st_mtime_ns}:{stat.st_size}"}
        )
    dataset = load_dataset(path, "sft" if kind == "sft" else "dpo")  # reward rows have the DPO shape
    return dataset.remove_columns([c for c in ("source", "kind") if c in dataset.column_names])


def _grpo_rows(path: str, stamp: str) -> Iterator[dict[str, Any]]:
    """GRPO prompts with their reference calls; an SFT row gives the turns before its last answer."""
    for row in read_rows(Path(path)):
        if "prompt" in row:
            yield {
                "prompt": template_roles(row["prompt"]),
                "tools": row.get("tools") or [],
                "reference": row.get("reference") or [],
            }
        else:
            yield from _call_points(template_roles(row["messages"]), row.get("tools") or [])


def _call_points(messages: list[dict[str, Any]], tools: list[Any]) -> Iterator[dict[str, Any]]:
    """An SFT conversation's prompts: one before each assistant turn that calls tools, the calls its
    reference; a conversation without calls gives its last turn, whose reference is "no call"."""
    points = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("tool_calls")]
    for index in points or [len(messages) - 1]:
        yield {"prompt": messages[:index], "tools": tools, "reference": messages[index].get("tool_calls") or []}


def _conversation_problem(row: dict[str, Any], key: str, ends_with: str | None, empty_ok: bool = False) -> str | None:
    messages = row.get(key)
    if not isinstance(messages, list) or (not messages and not empty_ok):
        return f"{key} must be a non-empty list of messages" if key in row else f"has no {key!r}"
    for index, message in enumerate(messages):
        problem = _message_problem(message)
        if problem:
            return f"{key}[{index}] {problem}"
    if ends_with and messages[-1].get("role") != ends_with:
        return f"{key} must end with the {ends_with}'s message, not the {messages[-1].get('role')}'s"
    return None


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "is not a message object"
    role = message.get("role")
    if role not in ROLES:
        return f"has role {role!r} (not {', '.join(ROLES)})"
    if not isinstance(message.get("content"), (str, type(None))):
        return "has content that is not text"
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return f"tool_calls[{index}] has no function name"
        if not isinstance(function.get("arguments"), (dict, str)):
            return f"tool_calls[{index}] has arguments that are not an object"
    return None


def _tools_problem(tools: Any) -> str | None:
    if not isinstance(tools, list):
        return "tools must be a list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance((tool.get("function") or {}).get("name"), str):
            return f"tools[{index}] is not a function spec ({{'type': 'function', 'function': {{'name': …}}}})"
    return None
