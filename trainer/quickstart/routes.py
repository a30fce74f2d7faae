"""The routes file the swap stage writes for `agent-tracer proxy --routes`, commented for the user
who opens it: which name is swapped, what answers it, and how to put a real frontier behind it."""

from __future__ import annotations

from pathlib import Path

from trainer.quickstart.agent import AGENT_MODEL
from trainer.quickstart.standin import STANDIN_MODEL

TEMPLATE = """\
# Written by `agent-tracer quickstart`: the agent's model name answered by the tuned model, with a
# fallback behind it. Offline there is no frontier model, so the fallback is a loopback stand-in
# ({standin}) that answers the quickstart's BFCL questions with their ground truth.
# Against a real frontier API, replace the fallback with, e.g.:
#   fallback: {{url: "https://api.openai.com/v1", model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}}
routes:
  {name}:
    mode: fallback
    primary: {{url: "{tuned}", model: tuned}}
    fallback: {{url: "{fallback}", model: {standin}}}
    timeout_s: 600                # a CPU answers slowly; a GPU server wants ~10
"""


def write_routes(path: Path, tuned_url: str, fallback_url: str) -> Path:
    path.write_text(
        TEMPLATE.format(name=AGENT_MODEL, tuned=tuned_url, fallback=fallback_url, standin=STANDIN_MODEL),
        encoding="utf-8",
    )
    return path
