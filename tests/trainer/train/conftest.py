"""Training fixtures: a tiny Llama saved as a model folder, with the offline tokenizer, and rows of
each kind a run takes, written as the dataset command writes them."""

from __future__ import annotations

import json

import pytest

LOOKUP = {"type": "function", "function": {
    "name": "lookup_order", "description": "The status of an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

QUESTIONS = [("What is the status of order A-17?", "A-17"), ("Where is my parcel B-42?", "B-42"),
             ("Has order C-99 shipped?", "C-99"), ("Is order D-1 late?", "D-1")]


def conversation(question: str, order: str) -> list[dict]:
    return [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": order}}}]},
        {"role": "tool", "name": "lookup_order", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": f"Order {order} has shipped."},
    ]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def sft_file(tmp_path):
    rows = [{"messages": conversation(q, o), "tools": [LOOKUP, WEATHER]} for q, o in QUESTIONS * 3]
    return write_jsonl(tmp_path / "sft.jsonl", rows)


@pytest.fixture
def preference_file(tmp_path):
    rows = []
    for question, order in QUESTIONS * 3:
        messages = conversation(question, order)
        wrong = {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": order}}}]}
        rows.append({"prompt": messages[:2], "chosen": [messages[2]], "rejected": [wrong], "tools": [LOOKUP, WEATHER],
                     "source": "synthetic", "kind": "wrong_tool"})
    return write_jsonl(tmp_path / "dpo.jsonl", rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A folder holding a 2-layer Llama (hidden size 32) and the offline tokenizer: a model any
    `--model` can name, trained in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         initializer_range=0.2)  # layers that matter: LoRA on 0.02-scale ones barely moves the loss
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
