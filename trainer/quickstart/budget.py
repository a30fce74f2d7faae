"""How much the quickstart does: tasks per stage, training steps, answer lengths. Two budgets: the
full run on the embedded SmolLM2 fits 15 minutes on a 2-core CPU, where the training step counts
decide the time (BENCHMARKS.md, "The quickstart's budget"); `--tiny` passes every stage in seconds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    model: str = field(default="smollm2", metadata={"help": "The base model; `tiny`: one made on the spot."})
    categories: tuple[str, ...] = field(
        default=("simple_python", "multiple"),
        metadata={"help": "BFCL non-live categories the tasks come from (train and held-out alike)."},
    )
    train_tasks: int = field(
        default=160,
        metadata={"help": "Tasks whose ground truth is imported as the frontier's successful runs (SFT rows)."},
    )
    capture_tasks: int = field(
        default=16,
        metadata={"help": "Of the train tasks, how many the base model attempts (its failures make DPO pairs)."},
    )
    eval_tasks: int = field(default=16, metadata={"help": "Held-out non-live tasks, never trained on."})
    live_tasks: int = field(default=4, metadata={"help": "live_simple tasks, evaluation only."})
    swap_tasks: int = field(default=6, metadata={"help": "Held-out tasks the agent runs through the proxy."})
    sft_steps: int = field(default=20, metadata={"help": "LoRA SFT steps (preset sft-cpu)."})
    dpo_steps: int = field(default=3, metadata={"help": "DPO steps on top of the SFT run (preset dpo-cpu)."})
    max_length: int = field(default=1024, metadata={"help": "Tokens per training row."})
    max_tokens: int = field(default=128, metadata={"help": "Longest answer asked of a served model."})
    max_batch: int = field(default=8, metadata={"help": "Requests a served model generates together."})
    seed: int = 0


FULL = Budget()
TINY = Budget(
    model="tiny",
    train_tasks=12,
    capture_tasks=4,
    eval_tasks=4,
    live_tasks=2,
    swap_tasks=2,
    sft_steps=2,
    dpo_steps=1,
    max_length=4096,
    max_tokens=8,
    max_batch=4,
)
"""The tiny model's byte-level tokenizer makes a BFCL row about 1,500 tokens, hence the longer rows."""
