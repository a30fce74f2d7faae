"""Supervised fine-tuning: TRL's `SFTTrainer` with a LoRA adapter, the loss on the assistant's
tokens only (its text, its tool calls and its end-of-turn token; never the system prompt, the
user's turns or the tool results), through the chat template `trainer.chat_template` chose."""

from __future__ import annotations

from typing import Any

from agent_tracer.errors import ConfigError
from trainer.train.config import SFTRunConfig
from trainer.train.run import Start, lora, metrics_callback


def train_sft(config: SFTRunConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run SFT; returns run.json's summary."""
    start = Start.begin(config, resume, overwrite)
    trainer = sft_trainer(start)
    return start.finish(trainer, {"rows_cut": rows_cut(len(start.train), trainer.train_dataset, config)})


def rows_cut(rows: int, tokenized: Any, config: SFTRunConfig) -> int | None:
    """Of the `rows` training rows, how many TRL cut at `max_length` tokens: it keeps their start,
    so they lose their last answers, and drops those left with no assistant token at all. None
    when packing, where every sequence is full by design. An error when no row is left."""
    if config.packing:
        return None
    if not len(tokenized):
        raise ConfigError(
            f"no training row has an assistant turn within the first {config.max_length} tokens: raise --max-length"
        )
    import pyarrow.compute as pc

    full = 0  # counted on the Arrow lengths: `tokenized["input_ids"]` would make every token a Python int
    for batch in tokenized.select_columns(["input_ids"]).with_format("arrow").iter(batch_size=4096):
        full += pc.sum(pc.greater_equal(pc.list_value_length(batch["input_ids"]), config.max_length)).as_py() or 0
    return rows - len(tokenized) + full


def sft_trainer(start: Start) -> Any:
    """TRL's SFTTrainer for the run, ready to train."""
    from trl import SFTConfig, SFTTrainer

    config = start.config
    assert isinstance(config, SFTRunConfig)  # Start.begin was given train_sft's config
    args = SFTConfig(  # before the model: under ZeRO-3 it then loads straight into its shards
        **start.args(),
        max_length=config.max_length,
        assistant_only_loss=True,
        packing=config.packing,
        padding_free=config.padding_free,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    model = start.hardware.load(config.model)
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=start.train,
        eval_dataset=start.eval,
        processing_class=start.tokenizer,
        peft_config=lora(config, "CAUSAL_LM"),
        callbacks=[metrics_callback(start.out)],
    )
