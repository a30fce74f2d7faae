"""DPO, reward-model and GRPO runs: each completes real TRL steps on the tiny Llama and leaves an
adapter that loads; DPO and GRPO start from an SFT run's folder, as the pipeline does."""

from __future__ import annotations

import json

import pytest

from agent_tracer.errors import ConfigError
from trainer.train.config import resolve
from trainer.train.grpo import train_grpo
from trainer.train.preference import train_dpo, train_reward
from trainer.train.sft import train_sft

FAST = {
    "batch_size": 2,
    "grad_accum": 1,
    "logging_steps": 1,
    "lora_r": 8,
    "lora_alpha": 16,
    "max_length": 2048,
    "eval_ratio": 0,
    "max_steps": 2,
}


def test_dpo_from_an_sft_run_trains_and_leaves_a_loadable_adapter(sft_file, preference_file, tiny_model_dir, tmp_path):
    from peft import PeftModel

    from trainer.models import load_model

    train_sft(resolve("sft", {"data": sft_file, "out": str(tmp_path / "sft"), "model": tiny_model_dir, **FAST}))
    summary = train_dpo(
        resolve("dpo", {"data": preference_file, "out": str(tmp_path / "dpo"), "model": str(tmp_path / "sft"), **FAST})
    )
    assert summary["steps"] == 2 and summary["train_loss"] > 0
    logged = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/chosen" in line for line in logged)  # DPO's own metrics reached the run's log
    base = load_model(str(tmp_path / "sft"))  # the SFT model: base with the SFT adapter merged in
    assert isinstance(PeftModel.from_pretrained(base, tmp_path / "dpo"), PeftModel)


def test_a_reward_model_learns_a_score_head(preference_file, tiny_model_dir, tmp_path):
    import torch

    from trainer.models import load_model, load_tokenizer

    out = tmp_path / "rm"
    summary = train_reward(
        resolve("reward", {"data": preference_file, "out": str(out), "model": tiny_model_dir, **FAST})
    )
    assert summary["steps"] == 2
    model, tokenizer = load_model(str(out), head="score"), load_tokenizer(str(out))
    with torch.no_grad():
        scores = model(**tokenizer(["Order A-17 has shipped.", "no"], return_tensors="pt", padding=True)).logits
    assert scores.shape == (2, 1)


def test_grpo_with_the_tool_match_reward_from_sft_rows(sft_file, tiny_model_dir, tmp_path):
    out = tmp_path / "grpo"
    summary = train_grpo(
        resolve(
            "grpo",
            {
                "data": sft_file,
                "out": str(out),
                "model": tiny_model_dir,
                **FAST,
                "batch_size": 2,
                "grad_accum": 2,
                "num_generations": 4,
                "max_completion_length": 8,
                "eval_ratio": 0.25,
            },
        )
    )
    assert summary["steps"] == 2
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/tool_match/mean" in line for line in logged)
    assert any("eval_reward" in line for line in logged)  # evaluation sampled whole groups too
    assert (out / "adapter_model.safetensors").exists()


def test_grpo_with_a_trained_reward_model(sft_file, preference_file, tiny_model_dir, tmp_path):
    train_reward(
        resolve("reward", {"data": preference_file, "out": str(tmp_path / "rm"), "model": tiny_model_dir, **FAST})
    )
    summary = train_grpo(
        resolve(
            "grpo",
            {
                "data": sft_file,
                "out": str(tmp_path / "grpo"),
                "model": tiny_model_dir,
                **FAST,
                "batch_size": 4,
                "num_generations": 4,
                "max_completion_length": 8,
                "reward": str(tmp_path / "rm"),
            },
        )
    )
    assert summary["steps"] == 2


def test_grpo_groups_must_fill_the_batch(sft_file, tmp_path):
    with pytest.raises(ConfigError, match=r"must be a multiple of num_generations \(4\)"):
        resolve("grpo", {"data": sft_file, "out": str(tmp_path), "batch_size": 2, "grad_accum": 1})
