"""DPO and reward rows from captured runs, and TRL's own data preparation taking them."""

from __future__ import annotations

import copy
import json

import pytest

from agent_tracer.errors import ConfigError
from trainer.data.negatives import KINDS
from trainer.data.output import read_rows
from trainer.data.preferences import PreferenceConfig, build_dpo, build_reward
from trainer.data.select import Selection


def dpo(store, tmp_path, **config):
    return build_dpo(
        store, Selection(), PreferenceConfig(out=str(tmp_path / "dpo.jsonl"), **{"eval_ratio": 0.0, **config})
    )


def test_a_failed_run_is_paired_with_a_successful_run_of_the_same_task(captured_store, tmp_path):
    result = dpo(captured_store, tmp_path, sources=["traces"])
    [pair] = list(read_rows(result.paths["train"]))
    assert pair["source"] == "traces"
    assert [m["role"] for m in pair["prompt"]] == ["system", "user"]
    assert pair["prompt"][1]["content"] == "What is the status of order A-17?"
    [chosen], [rejected] = pair["chosen"], pair["rejected"]
    assert chosen["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": {"order_id": "x"}}
    assert "tool_calls" not in rejected and rejected["content"].startswith("Echo: What is the status")
    step = next(s for s in result.summary.steps if s.name == "pair runs")
    assert (step.rows_in, step.rows_out) == (1, 1)


def test_synthetic_negatives_for_each_successful_call_are_labelled(captured_store, tmp_path):
    result = dpo(captured_store, tmp_path, sources=["synthetic"], per_example=2)
    pairs = list(read_rows(result.paths["train"]))
    # 6 successful runs; the parallel one calls twice in one turn: 6 calls to contradict, 2 kinds each
    assert len(pairs) == 12 and {p["source"] for p in pairs} == {"synthetic"}
    assert result.summary.sources == {"synthetic": 12}
    for pair in pairs:
        assert pair["kind"] in {
            "wrong_tool",
            "wrong_argument",
            "missing_argument",
            "wrong_type",
            "malformed_json",
            "invented_tool",
        }
        assert pair["chosen"] != pair["rejected"] and pair["prompt"][-1]["role"] == "user"


def test_pairs_are_redacted_deduplicated_and_split_by_trace(captured_store, tmp_path):
    result = dpo(captured_store, tmp_path, sources=["traces", "synthetic"], eval_ratio=0.3)
    text = result.paths["train"].read_text() + (
        result.paths["eval"].read_text() if result.paths["eval"].exists() else ""
    )
    assert "jane.doe@example.com" not in text and "[EMAIL]" in text
    manifest = json.loads(result.paths["manifest"].read_text())
    assert manifest["eval_traces"] and manifest["splits"]["eval"] > 0
    assert manifest["sources"] == {"traces": 1, "synthetic": 12}


def test_reward_rows_from_ratings_and_pairwise_feedback(captured_store, tmp_path):
    [better] = captured_store.traces(
        name="orders-agent", outcome="success", min_rating=5, has_tool_calls=True, limit=1, order="oldest"
    )
    [worse] = captured_store.traces(name="claude-agent")
    captured_store.record_feedback(better.id, label=f"better_than:{worse.id[:12]}")
    result = build_reward(
        captured_store,
        Selection(),
        PreferenceConfig(out=str(tmp_path / "reward.jsonl"), sources=["ratings", "feedback"], eval_ratio=0.0),
    )
    pairs = list(read_rows(result.paths["train"]))
    by_source = {pair["source"]: pair for pair in pairs}
    assert result.summary.sources == {"ratings": 1, "feedback": 1}
    assert by_source["ratings"]["prompt"][1]["content"] == "What is the status of order A-17?"
    assert by_source["feedback"]["prompt"][1]["content"] == better.task


def test_unknown_sources_and_a_missing_endpoint_are_config_errors(captured_store, tmp_path):
    with pytest.raises(ConfigError, match="sources must be some of corrections, traces, synthetic, llm"):
        dpo(captured_store, tmp_path, sources=["ratings"])
    with pytest.raises(ConfigError, match="--llm-url and --llm-model"):
        dpo(captured_store, tmp_path, sources=["llm"])


@pytest.fixture
def tiny_model(tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def test_trl_prepares_and_trains_a_step_on_the_dpo_rows(captured_store, tmp_path, tiny_tokenizer, tiny_model):
    from trl import DPOConfig, DPOTrainer

    # Every kind that applies, so a malformed_json one is always among them: which 2 kinds a call
    # gets is seeded by the row, and the fake API's call ids are random.
    dataset = dpo(captured_store, tmp_path, sources=["traces", "synthetic"], per_example=len(KINDS)).dataset()["train"]
    assert any(
        isinstance(c["function"]["arguments"], str)  # malformed_json rejected answers stay strings
        for row in dataset
        for m in row["rejected"]
        for c in m.get("tool_calls") or ()
    )
    args = DPOConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        max_length=1024,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = DPOTrainer(
        model=tiny_model,
        ref_model=copy.deepcopy(tiny_model),
        args=args,
        train_dataset=dataset,
        processing_class=tiny_tokenizer,
    )
    first = trainer.train_dataset[0]
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(first)
    prompt = tiny_tokenizer.decode(first["prompt_ids"])
    assert "<tools>" in prompt and "lookup_order" in prompt  # the tools went through the chat template
    trainer.train()
    assert trainer.state.global_step == 1


def test_trl_prepares_the_reward_rows(captured_store, tmp_path, tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    [better] = captured_store.traces(name="orders-agent", outcome="success", min_rating=5, limit=1, order="oldest")
    [worse] = captured_store.traces(name="claude-agent")
    captured_store.record_feedback(better.id, label=f"better_than:{worse.id}")
    dataset = build_reward(
        captured_store,
        Selection(),
        PreferenceConfig(out=str(tmp_path / "reward.jsonl"), sources=["ratings", "feedback"], eval_ratio=0.0),
    ).dataset()["train"]
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=len(tiny_tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=tiny_tokenizer.pad_token_id,
        )
    )
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        max_length=1024,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tiny_tokenizer)
    assert {"chosen_ids", "rejected_ids"} <= set(trainer.train_dataset[0])
    trainer.train()
    assert trainer.state.global_step == 1
