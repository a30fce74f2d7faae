"""Folding a run's LoRA adapter into its base model: one folder of full safetensors weights, with
the run's tokenizer and chat template, that transformers and vLLM load like any model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from agent_tracer.errors import ConfigError
from trainer.train.config import read_yaml


def merge(run: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the merged model of the run folder `run` into `out`; returns what was written."""
    from trainer.models import load_model, load_tokenizer, run_base

    run, out = Path(run), Path(out)
    base = run_base(str(run))
    if base is None:
        raise ConfigError(f"{run} is not a training run with an adapter (no adapter_config.json and config.yaml)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty: --overwrite to replace it")
    kind = read_yaml(run / "config.yaml").get("kind")
    model = load_model(str(run), head="score" if kind == "reward" else "causal-lm")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    load_tokenizer(str(run)).save_pretrained(partial)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    return {
        "run": str(run),
        "out": str(out),
        "kind": kind,
        "base": base,
        "parameters": sum(p.numel() for p in model.parameters()),
        "safetensors_mb": round(size / 2**20, 1),
    }
