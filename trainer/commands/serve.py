"""`agent-tracer serve`: an OpenAI-compatible server for a tuned model (settings in `serve/config.py`).

    agent-tracer serve runs/merged --port 8001
    agent-tracer serve runs/sft --model-name tuned          # a run folder: its adapter merged on loading
    agent-tracer serve runs/sft --engine vllm               # vLLM's server, where vLLM is installed (GPU)
    agent-tracer serve runs/merged --engine vllm --tensor-parallel-size 4 --port 8002   # one replica on 4 GPUs
    OPENAI_BASE_URL=http://127.0.0.1:8001/v1 python my_agent.py

The model is loaded before anything listens, so a model that cannot be had is a one-line error.
"""

from __future__ import annotations

import click

from agent_tracer.console import config_options
from trainer.serve.config import ServeConfig


@click.command()
@click.argument("model", default=ServeConfig.model)
@config_options(
    ServeConfig,
    "model_name",
    "engine",
    "host",
    "port",
    "max_batch",
    "max_queue",
    "max_tokens",
    "device",
    "guided_tool_calls",
    *ServeConfig.VLLM_ONLY,
)
def serve(model: str, **settings: object) -> None:
    """Serve MODEL (default: smollm2) behind OpenAI's Chat Completions API.

    MODEL is a training run's folder, a merged folder, a Hugging Face folder or hub id, a .gguf file
    or smollm2. Tools go into the prompt through the model's chat template; the <tool_call> blocks
    it writes come back as tool_calls. POST /v1/chat/completions (plain and streamed),
    GET /v1/models, GET /healthz.
    """
    from agent_tracer.errors import AgentTracerError

    try:
        config = ServeConfig(model=model, **settings)  # type: ignore[arg-type]
        if config.engine == "vllm":
            from trainer.serve import vllm

            vllm.run(config)
            return
        from trainer.serve import Engine

        engine = Engine.load(
            config.model,
            device=config.device,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
            default_max_tokens=config.max_tokens,
            guide_tool_calls=config.guided_tool_calls,
        )
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(describe(config, engine), err=True)
    from trainer.serve import create_app
    from trainer.serve import serve as run_server

    try:
        run_server(create_app(engine, config.served_name), config.host, config.port)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down
        pass


def describe(config: ServeConfig, engine: object) -> str:
    """The start-up line: what is served, under which name, on what, where."""
    return (
        f"agent-tracer serve: {config.model} as {config.served_name!r} on transformers "
        f"({engine.device}, batches of up to {config.max_batch}, context {engine.context_length} tokens, "  # type: ignore[attr-defined]
        f"tool calls {'guided' if engine.guidance is not None else 'unguided'}) "  # type: ignore[attr-defined]
        f"at http://{config.host}:{config.port}/v1"
    )
