"""A training run's folder and the parts every kind of run shares: the hardware's settings, the
LoRA adapter, TRL's common arguments, metrics, resuming, and what a run leaves behind.

    runs/sft/
      config.yaml          the resolved config (preset, file and flags applied)
      dataset.json         the training and eval files: path, rows, SHA-256
      metrics.jsonl        every logged step: loss, eval loss, learning rate, tokens seen
      run.json             the outcome: steps, losses, tokens/s, seconds, peak memory
      adapter_model.safetensors, adapter_config.json
                           the LoRA adapter (PEFT), with the tokenizer and its chat template
      checkpoints/         the latest checkpoints, for `--resume`

The folder of one run is the `--model` of the next (`train dpo --model runs/sft`): the adapter is
merged into its base, and a new adapter trains on top.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_tracer.errors import AgentTracerError, ConfigError
from trainer.train import launch
from trainer.train.config import TrainConfig, to_dict

CHECKPOINTS = "checkpoints"


class TrainingError(AgentTracerError):
    """A run that could not finish (out of memory, a diverged loss); the message says what to change."""


@dataclass
class Hardware:
    """What the machine offers a run, and the settings that follow from it."""

    device: str
    bf16: bool
    gradient_checkpointing: bool
    liger: bool
    load_in_4bit: bool = False

    @classmethod
    def detect(cls, config: TrainConfig) -> Hardware:
        import importlib.util

        import torch

        gpu = torch.cuda.is_available()
        # CPUs with AVX512-BF16 or AMX multiply in bfloat16 about twice as fast as in float32 (measured
        # by bench/train_throughput.py); elsewhere bf16 on a CPU is emulated, and slower.
        bf16_ok = (
            torch.cuda.is_bf16_supported()
            if gpu
            else any(
                getattr(torch.cpu, probe, lambda: False)()
                for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
            )
        )
        liger_ok = gpu and importlib.util.find_spec("liger_kernel") is not None
        if config.bf16 == "on" and not bf16_ok:
            raise ConfigError(
                "bf16 is on, but this machine has neither a GPU with bfloat16 nor a CPU with AVX512-BF16 or AMX"
            )
        if config.load_in_4bit:
            if not gpu:
                raise ConfigError(
                    "--load-in-4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit weights do not train on a CPU"
                )
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ConfigError("--load-in-4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes")
        if config.liger == "on" and not liger_ok:
            raise ConfigError("liger is on, but Liger kernels need a GPU and `pip install liger-kernel`")
        return cls(
            device=torch.cuda.get_device_name() if gpu else "cpu",
            bf16=config.bf16 == "on" or (config.bf16 == "auto" and bf16_ok),
            gradient_checkpointing=config.gradient_checkpointing == "on"
            or (config.gradient_checkpointing == "auto" and gpu),
            liger=config.liger == "on" or (config.liger == "auto" and liger_ok),
            load_in_4bit=config.load_in_4bit,
        )

    def load(self, name: str, head: str = "causal-lm") -> Any:
        """The model a run trains (or scores or refers to) from `name`, in this hardware's dtype;
        with QLoRA its weights in 4 bits, on this process's GPU."""
        from trainer.models import load_model

        if not self.load_in_4bit:
            return load_model(name, head=head, dtype=self.dtype)
        import torch
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quantized = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if self.bf16 else torch.float16,
        )
        here = {"": launch.local_rank()}
        model = load_model(name, head=head, dtype=self.dtype, quantization_config=quantized, device_map=here)
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=self.gradient_checkpointing)

    @property
    def dtype(self) -> Any:
        """The weights' dtype: bfloat16 on a GPU with bf16 (half the memory); float32 on a CPU, where
        bf16 is autocast, since the CPU's optimiser steps on bfloat16 weights lose small updates."""
        import torch

        return torch.bfloat16 if self.bf16 and self.device != "cpu" else torch.float32


@dataclass
class Start:
    """A run ready to build its trainer: the folder, the hardware, the checked data, the tokenizer."""

    config: TrainConfig
    out: Path
    hardware: Hardware
    train: Any
    eval: Any
    tokenizer: Any
    resume: bool

    @classmethod
    def begin(cls, config: TrainConfig, resume: bool = False, overwrite: bool = False) -> Start:
        """Check the settings and every row, then load the tokenizer; the model is the caller's."""
        from trainer.chat_template import use_training_template
        from trainer.models import load_tokenizer, warm_cache
        from trainer.train import inputs

        hardware = Hardware.detect(config)
        if launch.launched():  # one of several processes: the group is made now, so they can wait on each other
            launch.state(cpu=hardware.device == "cpu")
        train, evaluation, record = inputs.load(config, config.kind)
        with launch.main_first():  # an embedded model is converted once, by the main process
            tokenizer = load_tokenizer(config.model)
            warm_cache(config.model)
        template = use_training_template(tokenizer)
        out = check_folder(config, resume, overwrite)
        if launch.is_main():  # the main process alone writes the run folder
            prepare_folder(config, resume, overwrite)
            write_config(out, config, {"chat_template": template, "device": hardware.device, "bf16": hardware.bf16})
            write_json(out / "dataset.json", record)
        launch.wait_for_everyone()
        return cls(config, out, hardware, train, evaluation, tokenizer, resume)

    def args(self) -> dict[str, Any]:
        return common_args(self.config, self.hardware, self.eval is not None)

    def finish(self, trainer: Any, notes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train, save, and write run.json with `notes` (what the kind of run adds) in it."""
        return execute(trainer, self.out, self.resume, self.tokenizer, notes or {})


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def lora(config: TrainConfig, task_type: str) -> Any:
    """The PEFT LoRA config of the run (None: `lora_r` 0, every weight trains)."""
    if not config.lora_r:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type=task_type,
    )


def common_args(config: TrainConfig, hardware: Hardware, has_eval: bool) -> dict[str, Any]:
    """The arguments of TRL's config classes (all `transformers.TrainingArguments`) that every run sets."""
    checkpointing = _checkpointing_name()
    evaluate = "no" if not has_eval else ("steps" if config.eval_steps else "epoch")
    return dict(
        output_dir=str(Path(config.out) / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        seed=config.seed,
        data_seed=config.seed,
        bf16=hardware.bf16,
        use_cpu=hardware.device == "cpu",
        **{checkpointing: hardware.gradient_checkpointing},
        use_liger_kernel=hardware.liger,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy=evaluate,
        eval_steps=config.eval_steps or None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trained weight (an adapter's, a head's) takes part in each step
    )


def _checkpointing_name() -> str:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (the old name warns)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def check_folder(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """The run folder, checked and not touched: an earlier run there is continued (`resume`),
    replaced (`overwrite`), or an error that says which to choose. A run that failed before its
    first checkpoint is replaced without asking; a folder that is not a run is never emptied."""
    out = Path(config.out)
    if resume:
        if last_checkpoint(out) is None:
            raise ConfigError(f"nothing to resume: {out / CHECKPOINTS} has no checkpoint")
    elif out.is_dir() and any(out.iterdir()):
        if not (out / "config.yaml").exists():
            raise ConfigError(f"{out} is not empty and holds no training run: choose another --out")
        if ((out / "run.json").exists() or last_checkpoint(out)) and not overwrite:
            raise ConfigError(f"{out} already holds a run: --resume to continue it, --overwrite to replace it")
    return out


def prepare_folder(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """The run folder, checked (`check_folder`), emptied when it is replaced, and made."""
    out = check_folder(config, resume, overwrite)
    if not resume:
        if out.is_dir() and any(out.iterdir()):
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
    return out


def last_checkpoint(out: Path) -> str | None:
    """The newest whole checkpoint: a process killed while saving leaves a folder without its
    trainer_state.json (written last), which resuming from would fail on."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    steps = {
        int(found.name.rpartition("-")[2]): found
        for found in folder.glob("checkpoint-*")
        if found.name.rpartition("-")[2].isdigit()
    }
    whole = [steps[step] for step in sorted(steps, reverse=True) if (steps[step] / "trainer_state.json").is_file()]
    return str(whole[0]) if whole else None


def write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)


def write_config(out: Path, config: TrainConfig, extra: dict[str, Any]) -> None:
    import yaml

    values = {**to_dict(config), **extra}
    (out / "config.yaml").write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


def metrics_callback(out: Path) -> Any:
    """A `TrainerCallback` appending each log (loss, eval loss, learning rate, tokens) to metrics.jsonl."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if logs and state.is_world_process_zero:
                line = {"step": state.global_step, "epoch": state.epoch, "tokens": state.num_input_tokens_seen, **logs}
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line, default=float) + "\n")

    return Metrics()


def execute(trainer: Any, out: Path, resume: bool, tokenizer: Any, notes: dict[str, Any]) -> dict[str, Any]:
    """Train (from the last checkpoint when resuming), save the adapter and tokenizer into `out`,
    and write run.json; running out of memory becomes a `TrainingError` naming what to lower."""
    import torch

    started = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        result = trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    except torch.OutOfMemoryError:
        raise TrainingError(
            "out of GPU memory: lower --batch-size (raise --grad-accum to keep the effective "
            "batch), --max-length or --lora-r, or set --gradient-checkpointing on"
        ) from None
    seconds = time.perf_counter() - started
    trainer.save_model(str(out))  # every process takes part (FSDP gathers the weights); the main one writes
    state = trainer.state
    evals = [log["eval_loss"] for log in state.log_history if "eval_loss" in log]
    args = trainer.args
    summary = {
        "processes": args.world_size,
        "strategy": launch.strategy_name(trainer.accelerator.distributed_type),
        "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "steps": state.global_step,
        "epochs": state.epoch,
        "train_loss": result.training_loss,
        "eval_loss": evals[-1] if evals else None,
        "tokens": state.num_input_tokens_seen,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(state.num_input_tokens_seen / seconds, 1) if seconds else None,
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available()
        else None,
        **notes,
    }
    if launch.is_main():
        tokenizer.save_pretrained(str(out))
        write_json(out / "run.json", summary)
    launch.wait_for_everyone()
    return summary
