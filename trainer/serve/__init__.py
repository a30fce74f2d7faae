"""`agent-tracer serve`: an OpenAI-compatible server for a tuned model.

    config.py    the settings (`ServeConfig`), which the command's options are made from
    engine.py    transformers on the CPU (or one GPU): a request queue, batched generation
    reply.py     the model's text → content and `tool_calls` (the `<tool_call>` blocks it was taught)
    protocol.py  Chat Completions requests, answers, stream chunks and errors, as OpenAI writes them
    app.py       the ASGI app (Starlette) and ways to run it: `serve`, or `running` in a thread
    vllm.py      `--engine vllm`: vLLM's own OpenAI server started with the same model and template

torch and transformers are imported only when an engine is built.
"""

from trainer.serve.app import create_app, running, serve
from trainer.serve.config import ServeConfig
from trainer.serve.engine import Engine, Sampling

__all__ = ["Engine", "Sampling", "ServeConfig", "create_app", "running", "serve"]
