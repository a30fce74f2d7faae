"""A tiny model made on the spot, offline, in about a second: a byte-level BPE tokenizer trained on
a few lines and a 2-layer Llama (hidden size 32) saved as a model folder that any `--model` can
name. The tests train and serve it, and `agent-tracer quickstart --tiny` runs every stage on it,
because the embedded SmolLM2 takes minutes to train and a hub model needs the network.

It writes nonsense, so what it proves is that every stage runs for real, not that tuning helps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS = [
    "What is the status of order A-17? Where is my parcel B-42? The weather in Paris is sunny.",
    '{"name": "lookup_order", "arguments": {"order_id": "A-17"}} {"type": "function", "function": {}}',
    "You answer questions about orders. Echo: shipped delayed delivered unknown order 0123456789",
    "<tool_call> </tool_call> <tools> </tools> <tool_response> </tool_response> # Tools system user",
]
"""What the tokenizer's merges are learnt from; any other text still encodes, byte by byte."""


def build_tokenizer(chat_template: str | None = None) -> Any:
    """A byte-level BPE tokenizer (any text encodes, nothing unknown) with ChatML's special tokens;
    `chat_template` defaults to the built-in tool-calling one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from trainer.chat_template import TOOL_CALLING_TEMPLATE

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=special[1:],
    )
    tokenizer.chat_template = chat_template or TOOL_CALLING_TEMPLATE
    return tokenizer


def save_tiny_model(folder: str | Path, tokenizer: Any = None) -> str:
    """Save a 2-layer Llama and its tokenizer (`build_tokenizer()` unless given) into `folder`;
    returns the folder as a string, ready for `--model`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,
    )  # layers that matter: LoRA on 0.02-scale ones barely moves the loss
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
