"""GRPO: for each prompt, sample a group of answers, score them, and move the policy towards the
answers that beat their group's mean (TRL's `GRPOTrainer`, with a LoRA adapter).

The score is `tool-match` (`rewards.py`: the answer's tool calls against the row's reference call),
or a reward-model run (`train reward`), which scores the rendered prompt and answer. Prompts are
rendered here with the run's chat template and each row's own tools, since TRL's trainer renders
a dataset's prompts without them.
"""

from __future__ import annotations

import json
from typing import Any

from trainer.train.config import GRPORunConfig
from trainer.train.run import Start, lora, metrics_callback


def train_grpo(config: GRPORunConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run GRPO; returns run.json's summary."""
    from trl import GRPOConfig, GRPOTrainer

    from trainer.models import load_model, load_tokenizer
    from trainer.train.rewards import tool_match

    start = Start.begin(config, resume, overwrite)
    if config.reward == "tool-match":
        rewards: list[Any] = [tool_match]
        reward_tokenizers = None
    else:
        rewards = [load_model(config.reward, head="score", dtype=start.hardware.dtype)]
        reward_tokenizers = [load_tokenizer(config.reward)]
    groups = -(-config.batch_size // config.num_generations)  # evaluation, too, samples whole groups
    args = GRPOConfig(
        **{**start.args(), "per_device_eval_batch_size": groups * config.num_generations},
        num_generations=config.num_generations,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        beta=config.beta,
    )
    model = start.hardware.load(config.model)  # after the args: see sft_trainer
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=rendered(start.train, start.tokenizer),
        eval_dataset=rendered(start.eval, start.tokenizer) if start.eval is not None else None,
        processing_class=start.tokenizer,
        reward_processing_classes=reward_tokenizers,
        peft_config=lora(config, "CAUSAL_LM"),
        callbacks=[metrics_callback(start.out)],
    )
    return start.finish(trainer)


def rendered(dataset: Any, tokenizer: Any) -> Any:
    """Rows of `{"prompt": text ending in the assistant's header, "reference": JSON of the calls}`."""

    def render(row: dict[str, Any]) -> dict[str, Any]:
        text = tokenizer.apply_chat_template(
            row["prompt"], tools=row["tools"] or None, tokenize=False, add_generation_prompt=True
        )
        return {"text": text, "calls": json.dumps(row["reference"])}

    return dataset.map(render, remove_columns=dataset.column_names).rename_columns(
        {"text": "prompt", "calls": "reference"}
    )
