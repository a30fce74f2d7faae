"""Which rows a run trains and evaluates on."""

from __future__ import annotations

import shutil

from trainer.train.config import resolve
from trainer.train.inputs import load


def test_the_datasets_own_eval_file_is_used(sft_file, tmp_path):
    shutil.copy(sft_file, tmp_path / "sft.eval.jsonl")  # as `agent-tracer dataset sft --out sft.jsonl` writes it
    train, evaluation, record = load(resolve("sft", {"data": sft_file, "out": "o"}), "sft")
    assert len(train) == len(evaluation) == 12
    assert record["eval"]["path"] == str(tmp_path / "sft.eval.jsonl")
    train, evaluation, record = load(resolve("sft", {"data": sft_file, "out": "o", "eval_data": sft_file}), "sft")
    assert record["eval"]["path"] == sft_file


def test_grpo_prompts_from_sft_rows_stop_before_each_tool_call(sft_file):
    train, _, _ = load(resolve("grpo", {"data": sft_file, "out": "o", "eval_ratio": 0}), "grpo")
    row = train[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["reference"][0]["function"] == {"name": "lookup_order", "arguments": {"order_id": "A-17"}}
    assert len(train) == 12 and [t["function"]["name"] for t in row["tools"]] == ["lookup_order", "get_weather"]
