"""Training on preference pairs: DPO on the policy itself (TRL's `DPOTrainer`), or a reward model,
a score head taught to rank the chosen answer above the rejected one (TRL's `RewardTrainer`).

With a LoRA adapter DPO needs no second model: the reference is the same weights with the adapter
switched off, which is the starting model (an SFT run's merged weights). Without one (`lora_r`
0), the starting model is loaded a second time as the frozen reference."""

from __future__ import annotations

from typing import Any

from trainer.train.config import DPORunConfig, RewardRunConfig
from trainer.train.run import Start, lora, metrics_callback


def train_dpo(config: DPORunConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run DPO; returns run.json's summary."""
    from trl import DPOConfig, DPOTrainer

    start = Start.begin(config, resume, overwrite)
    args = DPOConfig(**start.args(), max_length=config.max_length, beta=config.beta, loss_type=[config.loss_type])
    model = start.hardware.load(config.model)  # after the args: see sft_trainer
    reference = None if config.lora_r else start.hardware.load(config.model)
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=start.train,
        eval_dataset=start.eval,
        processing_class=start.tokenizer,
        peft_config=lora(config, "CAUSAL_LM"),
        callbacks=[metrics_callback(start.out)],
    )
    return start.finish(trainer)


def train_reward(config: RewardRunConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train a reward model; returns run.json's summary."""
    from trl import RewardConfig, RewardTrainer

    start = Start.begin(config, resume, overwrite)
    args = RewardConfig(**start.args(), max_length=config.max_length)
    model = start.hardware.load(config.model, head="score")  # after the args: see sft_trainer
    model.config.pad_token_id = start.tokenizer.pad_token_id  # the score is read at the last non-pad token
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=start.train,
        eval_dataset=start.eval,
        processing_class=start.tokenizer,
        peft_config=lora(config, "SEQ_CLS"),
        callbacks=[metrics_callback(start.out)],
    )
    return start.finish(trainer)
