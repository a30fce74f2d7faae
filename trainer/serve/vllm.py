"""`--engine vllm`: vLLM's own OpenAI server, started with what this server would have served.

vLLM batches continuously on a GPU and parses `<tool_call>{json}</tool_call>` blocks with its
`hermes` tool parser, the format the built-in chat template teaches. It is given:
  - the model: a merged or plain folder, or a hub id, as it is; the embedded `smollm2` as its
    converted folder; a training run's folder as its base with the run's LoRA adapter
    (`--enable-lora --lora-modules NAME=RUN`), so the served name asks for the tuned model;
  - the chat template the transformers engine would use (the run's, or the built-in tool-calling
    one for a model whose own ignores tools), written to a file under the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path

from agent_tracer.errors import ConfigError
from trainer.serve.config import ServeConfig

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's --max-lora-rank takes."""


def available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def command(config: ServeConfig) -> list[str]:
    """The command line of vLLM's OpenAI server for `config`."""
    from trainer.models import run_base

    name = config.served_name
    line = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-num-seqs",
        str(config.max_batch),
        "--chat-template",
        template_file(config.model),
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
    ]
    line += scaling(config)
    base = run_base(config.model)
    if base is None:
        return line + ["--model", _weights(config.model), "--served-model-name", name]
    if run_base(base) is not None:
        raise ConfigError(
            f"{config.model} was trained on top of another run ({base}); vLLM takes one adapter on a "
            f"plain base: merge it first (agent-tracer train merge {config.model} --out FOLDER)"
        )
    return line + [
        "--model",
        _weights(base),
        "--served-model-name",
        f"{name}-base",
        "--enable-lora",
        "--lora-modules",
        f"{name}={config.model}",
        "--max-lora-rank",
        str(_lora_rank(config.model)),
    ]


def scaling(config: ServeConfig) -> list[str]:
    """vLLM's scaling flags for the settings given (its defaults left to it), then the user's own
    `--vllm-arg`s as they are."""
    line = []
    for flag, value, default in (
        ("--tensor-parallel-size", config.tensor_parallel_size, 1),
        ("--pipeline-parallel-size", config.pipeline_parallel_size, 1),
        ("--data-parallel-size", config.data_parallel_size, 1),
        ("--gpu-memory-utilization", config.gpu_memory_utilization, None),
        ("--max-model-len", config.max_model_len, None),
    ):
        if value != default:
            line += [flag, str(value)]
    return line + [arg for given in config.vllm_args for arg in shlex.split(given)]


def run(config: ServeConfig) -> None:
    """Replace this process with vLLM's server; `ConfigError` when vLLM is not installed."""
    if not available():
        raise ConfigError(
            "--engine vllm needs vLLM, which is not installed here: pip install vllm (on a machine "
            "with a GPU), or serve with --engine transformers"
        )
    line = command(config)
    print(
        f"agent-tracer serve: {config.model} as {config.served_name!r} on vllm at "
        f"http://{config.host}:{config.port}/v1 ({' '.join(line[1:4])} …)",
        file=sys.stderr,
        flush=True,
    )
    os.execv(line[0], line)


def template_file(model: str) -> str:
    """A file holding the chat template the transformers engine would render `model`'s prompts with."""
    from trainer.chat_template import use_tool_template
    from trainer.models import cache_dir, load_tokenizer

    tokenizer = load_tokenizer(model)
    use_tool_template(tokenizer)
    template = tokenizer.chat_template
    path = cache_dir() / "chat_templates" / f"{hashlib.sha256(template.encode()).hexdigest()[:16]}.jinja"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template, encoding="utf-8")
    return str(path)


def _weights(model: str) -> str:
    """What vLLM's --model takes for a model name of ours."""
    from trainer.models import EMBEDDED, cached_model

    if model in EMBEDDED:
        return cached_model(model)[0]
    if model.endswith(".gguf"):
        raise ConfigError(
            f"{model}: serve a .gguf file with --engine transformers; vLLM here takes Hugging Face folders and hub ids"
        )
    return model


def _lora_rank(run: str) -> int:
    """The smallest --max-lora-rank that holds the run's adapter."""
    rank = json.loads((Path(run) / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16)
    return next((allowed for allowed in LORA_RANKS if allowed >= rank), LORA_RANKS[-1])
