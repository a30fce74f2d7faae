"""The server's settings, one dataclass: the command's options take their help and defaults from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from agent_tracer.errors import ConfigError
from trainer.models import DEFAULT_MODEL

ENGINES = ("transformers", "vllm")


@dataclass
class ServeConfig:
    """The server's settings; `agent-tracer serve` makes an option of each but `model`, its argument."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "What to serve: a training run's folder (its LoRA adapter merged into its base), a merged "
            "folder, any Hugging Face model folder, a .gguf file, a hub id, or smollm2 (embedded)."
        },
    )
    model_name: str | None = field(
        default=None,
        metadata={
            "help": "The name clients ask for and answers carry in `model` [default: the folder's or file's name]."
        },
    )
    engine: str = field(
        default="transformers",
        metadata={
            "help": "transformers: this process, on the CPU or one GPU, with batching; vllm: vLLM's own OpenAI "
            "server (GPU; pip install vllm).",
            "choices": ENGINES,
        },
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; 0.0.0.0 exposes the server."})
    port: int = field(default=8001, metadata={"help": "Port to listen on.", "type": click.IntRange(0, 65535)})
    max_batch: int = field(
        default=8,
        metadata={
            "help": "Most requests generated together in one batch (vLLM: --max-num-seqs).",
            "type": click.IntRange(min=1),
        },
    )
    max_queue: int = field(
        default=64,
        metadata={
            "help": "Most requests waiting for a batch; beyond it clients get 503 with Retry-After.",
            "type": click.IntRange(min=0),
        },
    )
    max_tokens: int = field(
        default=1024,
        metadata={
            "help": "An answer's token limit when the request sets none (the context still caps it).",
            "type": click.IntRange(min=1),
        },
    )
    device: str = field(
        default="auto", metadata={"help": "Where the model runs: auto (a GPU if there is one), cpu, cuda, cuda:1."}
    )
    guided_tool_calls: bool = field(
        default=True,
        metadata={
            "help": "Hold each tool call the model opens to the request's tool schemas, so it always parses "
            "(llguidance; the text before a call stays free). vLLM guides only tool_choice required/named."
        },
    )

    tensor_parallel_size: int = field(
        default=1,
        metadata={
            "help": "vLLM: GPUs one replica's weights are split over (--tensor-parallel-size).",
            "type": click.IntRange(min=1),
        },
    )
    pipeline_parallel_size: int = field(
        default=1,
        metadata={
            "help": "vLLM: stages the layers are split into, one set of GPUs each (--pipeline-parallel-size).",
            "type": click.IntRange(min=1),
        },
    )
    data_parallel_size: int = field(
        default=1,
        metadata={
            "help": "vLLM: copies of the model behind this one server (--data-parallel-size).",
            "type": click.IntRange(min=1),
        },
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata={
            "help": "vLLM: share of each GPU's memory it may take, weights and KV cache (default vLLM's, 0.9).",
            "type": click.FloatRange(0, 1, min_open=True),
        },
    )
    max_model_len: int | None = field(
        default=None,
        metadata={"help": "vLLM: context length to serve (default: the model's).", "type": click.IntRange(min=1)},
    )
    vllm_args: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "vLLM: more server arguments, as typed on its command line (repeatable): "
            "--vllm-arg='--enable-prefix-caching --max-num-batched-tokens 8192'.",
            "flag": "--vllm-arg",
            "multiple": True,
        },
    )

    VLLM_ONLY = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "gpu_memory_utilization",
                 "max_model_len", "vllm_args")  # fmt: skip

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (known: {', '.join(ENGINES)})")
        if self.engine != "vllm":
            given = [name for name in self.VLLM_ONLY if getattr(self, name) not in (None, 1, ())]
            if given:
                flag = "--vllm-arg" if given[0] == "vllm_args" else "--" + given[0].replace("_", "-")
                raise ConfigError(
                    f"{flag} is a vLLM setting: add --engine vllm (the transformers engine uses one device)"
                )

    @property
    def served_name(self) -> str:
        """--model-name, else the name of the folder or file served, else the name as given."""
        if self.model_name:
            return self.model_name
        path = Path(self.model).expanduser()
        if path.is_dir():
            return path.resolve().name
        return path.stem if path.is_file() else self.model
