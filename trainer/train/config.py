"""What a training run is told: one dataclass per kind of run, with help text on every field.

The values come, each layer over the one before, from the dataclass defaults, a shipped preset
(`agent-tracer train presets`), the user's YAML file (`--config`), and the command's flags. The
defaults are the values the field uses for agent tuning on a GPU (LoRA r=64 on every projection,
lr 2e-5, cosine, 3 epochs); the `-cpu` presets make a small model finish in minutes on a laptop.
The same dataclasses give the CLI its flags (`trainer/commands/train.py`), so no setting is spelled
out twice, and the resolved config is written into the run folder as YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agent_tracer.errors import ConfigError

KINDS = ("sft", "dpo", "reward", "grpo")
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SWITCH = ("auto", "on", "off")
"""Settings the hardware decides unless told: `auto` turns them on where they work."""


@dataclass
class TrainConfig:
    """Settings every kind of run shares."""

    data: str = field(default="", metadata={"help": "Training rows (JSONL, as `agent-tracer dataset` writes them)."})
    out: str = field(default="", metadata={"help": "Run folder: adapter, tokenizer, config, metrics, checkpoints."})
    model: str = field(
        default="smollm2",
        metadata={
            "help": "Base model: `smollm2` (embedded), a hub id, a local folder, a .gguf file, or an "
            "earlier run folder (its adapter is merged in first)."
        },
    )
    eval_data: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation rows; default: the dataset's `.eval.jsonl` beside --data when there is one, "
            "else an --eval-ratio share of --data."
        },
    )
    eval_ratio: float = field(default=0.1, metadata={"help": "Share of --data held out when there is no eval file."})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training rows."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps (-1: run the epochs)."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "Learning-rate schedule after warm-up."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of the steps spent warming up."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    batch_size: int = field(default=4, metadata={"help": "Rows per device per forward pass."})
    grad_accum: int = field(default=4, metadata={"help": "Forward passes per optimiser step."})
    max_length: int = field(default=4096, metadata={"help": "Tokens per row; longer rows are cut."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (0: train every weight, no adapter)."})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_targets: list[str] = field(
        default_factory=lambda: list(PROJECTIONS),
        metadata={"help": "Modules that get adapters (comma-separated): attention and MLP projections."},
    )
    load_in_4bit: bool = field(
        default=False,
        metadata={
            "help": "QLoRA: hold the base model's weights in 4 bits (bitsandbytes NF4), so a large model "
            "trains its adapter on one GPU. Needs a CUDA GPU and `pip install bitsandbytes`."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, shuffling and the eval split."})
    bf16: str = field(
        default="auto",
        metadata={
            "help": "bfloat16 compute: auto (on a GPU that has it, and on CPUs with AVX512-BF16 or AMX), on, off.",
            "choices": SWITCH,
        },
    )
    gradient_checkpointing: str = field(
        default="auto",
        metadata={
            "help": "Recompute activations instead of keeping them: auto (on a GPU), on, off.",
            "choices": SWITCH,
        },
    )
    liger: str = field(
        default="auto", metadata={"help": "Liger kernels: auto (on a GPU when installed), on, off.", "choices": SWITCH}
    )
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Batch rows of similar length together, so little of each batch is padding."},
    )
    logging_steps: int = field(default=10, metadata={"help": "Log loss and learning rate every this many steps."})
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every this many steps (0: once an epoch)."})
    save_steps: int = field(default=200, metadata={"help": "Checkpoint every this many steps (for --resume)."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept; older ones are deleted."})

    kind: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in ("eval_ratio", "warmup_ratio"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "max_length", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lora_r < 0 or (self.lora_r and not self.lora_targets):
            raise ConfigError("lora_r must be 0 (no adapter) or positive, with lora_targets")
        if self.load_in_4bit and not self.lora_r:
            raise ConfigError("load_in_4bit needs a LoRA adapter (lora_r above 0): 4-bit weights do not train")
        for name in ("bf16", "gradient_checkpointing", "liger"):
            if getattr(self, name) not in SWITCH:
                raise ConfigError(f"{name} must be one of {', '.join(SWITCH)}, got {getattr(self, name)!r}")


@dataclass
class SFTRunConfig(TrainConfig):
    """Supervised fine-tuning on conversations, the loss on what the assistant writes."""

    kind: typing.ClassVar[str] = "sft"
    packing: bool = field(
        default=False,
        metadata={
            "help": "Pack several rows into each sequence (with FlashAttention only, so rows never see each other)."
        },
    )
    padding_free: bool = field(
        default=False, metadata={"help": "Concatenate the batch without padding (with --packing; FlashAttention only)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.padding_free and not self.packing:
            raise ConfigError("padding_free needs packing on: without it TRL cannot hold rows to max_length")


@dataclass
class DPORunConfig(TrainConfig):
    """Direct preference optimisation on chosen/rejected pairs, usually from an SFT run."""

    kind: typing.ClassVar[str] = "dpo"
    beta: float = field(default=0.1, metadata={"help": "How far the policy may move from the reference model."})
    loss_type: str = field(default="sigmoid", metadata={"help": "DPO loss: sigmoid (the paper's), ipo, hinge, …"})


@dataclass
class RewardRunConfig(TrainConfig):
    """A reward model: a scalar head trained to score the chosen answer above the rejected one."""

    kind: typing.ClassVar[str] = "reward"


@dataclass
class GRPORunConfig(TrainConfig):
    """Group relative policy optimisation: sample answers to each prompt, score them, move towards
    the better ones."""

    kind: typing.ClassVar[str] = "grpo"
    reward: str = field(
        default="tool-match",
        metadata={
            "help": "`tool-match` (the tool name and arguments against the row's reference call) or the "
            "folder of a reward-model run."
        },
    )
    num_generations: int = field(default=4, metadata={"help": "Answers sampled per prompt (the group)."})
    max_completion_length: int = field(default=256, metadata={"help": "Tokens per sampled answer."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the answers."})
    beta: float = field(default=0.0, metadata={"help": "KL penalty towards the reference model (0: none)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ConfigError("num_generations must be at least 2: GRPO compares each answer with its group")
        if (self.batch_size * self.grad_accum) % self.num_generations:
            raise ConfigError(
                f"batch_size x grad_accum ({self.batch_size} x {self.grad_accum}) must be a multiple "
                f"of num_generations ({self.num_generations}): each step takes whole groups"
            )


CONFIGS: dict[str, type[TrainConfig]] = {
    c.kind: c for c in (SFTRunConfig, DPORunConfig, RewardRunConfig, GRPORunConfig)
}


def presets() -> dict[str, Path]:
    """Shipped preset name → its YAML file."""
    folder = resources.files("trainer.train") / "presets"
    return {Path(str(item)).stem: Path(str(item)) for item in folder.iterdir() if str(item).endswith(".yaml")}


def preset_values(name: str) -> dict[str, Any]:
    """A preset's values, with its `kind`."""
    files = presets()
    if name not in files:
        raise ConfigError(f"no preset {name!r}; the presets are: {', '.join(sorted(files))}")
    return read_yaml(files[name])


def default_preset(kind: str, gpu: bool) -> str | None:
    """The preset a run of `kind` starts from when none is named: the GPU one or the CPU one."""
    name = kind if gpu else f"{kind}-cpu"
    return name if name in presets() else None


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a YAML mapping of settings, not a {type(values).__name__}")
    return values


def resolve(kind: str, *layers: dict[str, Any]) -> TrainConfig:
    """The config of a `kind` run from layers of values, later ones winning. A layer's `kind`, where
    it has one, must be this run's; unknown keys are errors that list the known ones."""
    config_class = CONFIGS[kind]
    known = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key == "kind":
                if value != kind:
                    raise ConfigError(f"a {value} config cannot configure a {kind} run")
                continue
            if key not in known:
                raise ConfigError(f"unknown {kind} setting {key!r}; known: {', '.join(sorted(known))}")
            values[key] = _coerce(known[key], value)
    for required in ("data", "out"):
        if not values.get(required):
            raise ConfigError(f"a {kind} run needs --{required}")
    return config_class(**values)


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return {"kind": config.kind, **dataclasses.asdict(config)}


def _coerce(spec: dataclasses.Field[Any], value: Any) -> Any:
    """A YAML or flag value as the field's type: a comma-separated string for a list, a number
    written as a string, 'true'/'false' for a bool."""
    kind = field_type(spec)
    if value is None:
        return None
    if spec.metadata.get("choices") == SWITCH and isinstance(value, bool):  # YAML reads `on` / `off` as booleans
        return "on" if value else "off"
    try:
        if kind is list:
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise ValueError(value)
            return value.lower() in ("true", "yes", "1", "on")
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{spec.name} must be a {kind.__name__}, got {value!r}") from None


def field_type(spec: dataclasses.Field[Any]) -> type:
    """The field's type without `| None` (annotations are strings under `from __future__ import annotations`)."""
    hint = _HINTS[spec.name]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


_HINTS = {name: hint for config_class in CONFIGS.values() for name, hint in typing.get_type_hints(config_class).items()}
