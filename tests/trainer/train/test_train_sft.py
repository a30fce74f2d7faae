"""SFT runs: real TRL/PEFT steps on a tiny Llama, the loss on the assistant's tokens only, a run
folder that holds what it says, resuming, and the errors a user meets first."""

from __future__ import annotations

import json

import pytest

from agent_tracer.errors import ConfigError
from trainer.train.config import resolve
from trainer.train.inputs import DataError
from trainer.train.run import Start
from trainer.train.sft import sft_trainer, train_sft

FAST = {
    "batch_size": 2,
    "grad_accum": 1,
    "logging_steps": 1,
    "lora_r": 8,
    "lora_alpha": 16,
    "max_length": 2048,
    "eval_ratio": 0,
}


def config(sft_file, out, model, **values):
    return resolve("sft", {"data": sft_file, "out": str(out), "model": model, **FAST, **values})


def test_the_loss_is_on_the_assistants_tokens_and_nothing_else(sft_file, tiny_model_dir, tmp_path):
    start = Start.begin(config(sft_file, tmp_path / "run", tiny_model_dir, max_steps=1))
    trainer = sft_trainer(start)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = start.tokenizer.decode(ids[labels != -100])
    untrained = start.tokenizer.decode(ids[labels == -100])
    call = '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-17"}}\n</tool_call><|im_end|>'
    assert trained == call + "Order A-17 has shipped.<|im_end|>"
    for part in (
        "You answer questions about orders.",
        "What is the status of order A-17?",
        '{"status": "shipped"}',
        '"name": "get_weather"',
    ):  # system prompt, user turn, tool result, tool schemas
        assert part in untrained and part not in trained


def test_sft_loss_goes_down_on_a_repeated_batch(sft_file, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    summary = train_sft(
        config(
            sft_file,
            out,
            tiny_model_dir,
            max_steps=30,
            learning_rate=1e-2,
            warmup_ratio=0,
            lr_scheduler="constant",
            save_steps=100,
        )
    )
    losses = [
        line["loss"] for line in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in line
    ]
    assert summary["steps"] == 30 and len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert summary["tokens"] > 0 and summary["tokens_per_second"] > 0


def test_the_run_folder_holds_the_adapter_config_data_record_and_metrics(sft_file, tiny_model_dir, tmp_path):
    import yaml
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    train_sft(config(sft_file, out, tiny_model_dir, max_steps=2, eval_ratio=0.25))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["kind"] == "sft" and saved["lora_r"] == 8 and saved["chat_template"] == "own"
    record = json.loads((out / "dataset.json").read_text())
    assert record["train"]["rows"] == 12 and len(record["train"]["sha256"]) == 64
    assert record["eval"] == {"split_from": "train", "ratio": 0.25, "rows": 3}
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 2 and run["eval_loss"] is not None
    assert any("eval_loss" in json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert "<tool_call>" in (out / "chat_template.jinja").read_text()  # served with the template it learned


def test_resume_continues_from_the_last_checkpoint(sft_file, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train_sft(config(sft_file, out, tiny_model_dir, max_steps=4, save_steps=2))
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    summary = train_sft(config(sft_file, out, tiny_model_dir, max_steps=6, save_steps=2), resume=True)
    assert summary["steps"] == 6
    steps = [
        json.loads(line)["step"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert steps == [1, 2, 3, 4, 5, 6]  # the second part started at step 5, not again at 1


def test_a_run_folder_is_not_replaced_without_being_asked(sft_file, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train_sft(config(sft_file, out, tiny_model_dir, max_steps=1))
    with pytest.raises(ConfigError, match="already holds a run: --resume to continue it, --overwrite to replace it"):
        train_sft(config(sft_file, out, tiny_model_dir, max_steps=1))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_sft(config(sft_file, tmp_path / "other", tiny_model_dir, max_steps=1), resume=True)


def test_bad_rows_are_named_by_line_before_anything_loads(tmp_path, tiny_model_dir):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    lines = [
        good,
        {"messages": [{"role": "bot", "content": "hi"}]},
        good,
        "not json",
        {"messages": [{"role": "user", "content": "hi"}]},
    ]
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    with pytest.raises(DataError) as caught:
        train_sft(config(str(data), tmp_path / "run", "no/such-model-anywhere"))
    message = str(caught.value)
    assert message.startswith("3 of 5 rows are not sft rows")
    assert f"{data} line 2: messages[0] has role 'bot'" in message
    assert f"{data} line 4: not JSON" in message
    assert f"{data} line 5: messages must end with the assistant's message, not the user's" in message
    assert not (tmp_path / "run").exists()


def test_a_model_that_cannot_be_found_is_one_line_with_what_was_tried(sft_file, tmp_path):
    with pytest.raises(ConfigError, match=r"^no model at ./no/such/folder: not a folder or a \.gguf file$"):
        train_sft(config(sft_file, tmp_path / "run", "./no/such/folder"))


def test_rows_cut_at_max_length_are_counted(sft_file, tiny_model_dir, tmp_path):
    summary = train_sft(config(sft_file, tmp_path / "run", tiny_model_dir, max_steps=1, max_length=480))
    assert summary["rows_cut"] == 12  # every row is longer than 480 tokens of the tiny tokenizer
    summary = train_sft(config(sft_file, tmp_path / "run", tiny_model_dir, max_steps=1), overwrite=True)
    assert summary["rows_cut"] == 0
    with pytest.raises(ConfigError, match="no training row has an assistant turn within the first 64 tokens"):
        train_sft(config(sft_file, tmp_path / "run", tiny_model_dir, max_steps=1, max_length=64), overwrite=True)


def test_a_folder_that_is_not_a_run_is_never_emptied(sft_file, tiny_model_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no training run: choose another --out"):
        train_sft(config(sft_file, tmp_path, tiny_model_dir, max_steps=1), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "options", [{"packing": True}, {"packing": True, "padding_free": True}], ids=["packing", "padding_free"]
)
def test_packed_and_padding_free_batches_train_when_asked(sft_file, tiny_model_dir, tmp_path, options):
    """On the CPU (no FlashAttention) they still run, as TRL allows; rows then may see each other,
    which the options' help says: they are for GPUs."""
    import yaml

    out = tmp_path / "run"
    summary = train_sft(config(sft_file, out, tiny_model_dir, max_steps=2, max_length=512, **options))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert summary["steps"] == 2 and all(saved[name] is True for name in options)
    assert (out / "adapter_model.safetensors").exists()


def test_padding_free_without_packing_is_refused_before_training(sft_file, tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="padding_free needs packing on"):
        config(sft_file, tmp_path / "run", tiny_model_dir, padding_free=True)
