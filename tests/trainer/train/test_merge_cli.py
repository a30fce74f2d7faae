"""`agent-tracer train …` as a user runs it (CliRunner), and `train merge`: full weights whose
outputs are the base model's with the adapter applied."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from agent_tracer.cli import main

FLAGS = [
    "--batch-size",
    "2",
    "--grad-accum",
    "1",
    "--lora-r",
    "8",
    "--lora-alpha",
    "16",
    "--max-length",
    "2048",
    "--eval-ratio",
    "0",
    "--logging-steps",
    "1",
]


def test_train_sft_from_the_command_line_then_merge(sft_file, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, merged = tmp_path / "runs" / "sft", tmp_path / "runs" / "merged"
    config_file = tmp_path / "mine.yaml"
    config_file.write_text("learning_rate: 0.01\nmax_steps: 5\nlora_dropout: 0.0\n")
    result = CliRunner().invoke(
        main,
        [
            "train",
            "sft",
            "--data",
            sft_file,
            "--model",
            tiny_model_dir,
            "--out",
            str(run),
            "--config",
            str(config_file),
            "--max-steps",
            "3",
            *FLAGS,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "preset: sft-cpu (--preset to choose another)" in result.output
    assert f"sft run in {run}: 3 steps" in result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # preset (sft-cpu: warmup 0.1), then the file (learning rate, dropout), then the flags (steps, rank)
    assert (
        saved["warmup_ratio"],
        saved["learning_rate"],
        saved["lora_dropout"],
        saved["max_steps"],
        saved["lora_r"],
    ) == (0.1, 0.01, 0.0, 3, 8)

    result = CliRunner().invoke(main, ["train", "merge", str(run), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert f"into {merged}" in result.output
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        full = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        adapted = PeftModel.from_pretrained(base, run)(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(ids).logits
    assert torch.allclose(full, adapted, atol=1e-5)
    assert not torch.allclose(full, plain, atol=1e-3)  # the adapter did change the model
    assert (merged / "chat_template.jinja").exists() and list(merged.glob("*.safetensors"))


def test_command_line_errors_are_one_clear_line(sft_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "sft", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Error: a sft run needs --data" in result.output
    result = runner.invoke(
        main, ["train", "sft", "--data", sft_file, "--out", str(tmp_path / "run"), "--model", "./missing-folder"]
    )
    assert result.exit_code == 1
    assert "Error: no model at ./missing-folder: not a folder or a .gguf file" in result.output
    result = runner.invoke(main, ["train", "dpo", "--data", sft_file, "--out", str(tmp_path / "dpo")])
    assert result.exit_code == 1 and "are not dpo rows" in result.output and "line 1: has no 'chosen'" in result.output
    result = runner.invoke(main, ["train", "sft", "--preset", "nope", "--data", sft_file, "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no preset 'nope'; the presets are: dpo, dpo-cpu" in result.output
    result = runner.invoke(main, ["train", "merge", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "is not a training run with an adapter" in result.output


def test_presets_are_listed_and_each_is_a_valid_config(tmp_path):
    from trainer.train.config import preset_values, presets, resolve

    result = CliRunner().invoke(main, ["train", "presets"])
    assert result.exit_code == 0
    for name in ("sft", "sft-cpu", "dpo", "dpo-cpu", "reward", "reward-cpu", "grpo", "grpo-cpu"):
        assert name in presets() and f"\n{name} " in "\n" + result.output
        values = preset_values(name)
        resolve(values["kind"], values, {"data": "d.jsonl", "out": str(tmp_path)})
    sft = preset_values("sft")  # the field's values for agent tuning, as the issue names them
    assert (
        sft["lora_r"],
        sft["lora_alpha"],
        sft["lora_dropout"],
        sft["epochs"],
        sft["learning_rate"],
        sft["warmup_ratio"],
        sft["weight_decay"],
        sft["batch_size"],
        sft["grad_accum"],
        sft["max_length"],
    ) == (64, 128, 0.05, 3, 2e-5, 0.1, 0.01, 4, 4, 4096)
    shown = CliRunner().invoke(main, ["train", "presets", "--show", "dpo"]).output
    assert yaml.safe_load(shown)["beta"] == 0.1 and yaml.safe_load(shown)["loss_type"] == "sigmoid"


def test_json_output(sft_file, tiny_model_dir, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "train",
            "sft",
            "--data",
            sft_file,
            "--model",
            tiny_model_dir,
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "1",
            "--json",
            *FLAGS,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # the training logs went to stderr
    assert summary["steps"] == 1 and summary["tokens"] > 0
