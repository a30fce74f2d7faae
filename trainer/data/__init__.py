"""Training data from the trace store: select traces, curate them, and write SFT, DPO and reward rows
that TRL consumes as they are (`rows.py` describes the shapes).

    from agent_tracer.store import TraceStore
    from trainer.data import Selection, SFTConfig, build_sft

    result = build_sft(TraceStore(), Selection(outcome="success", min_rating=4), SFTConfig(out="sft.jsonl"))
    print(result.summary.render())
    train = result.dataset()["train"]            # a datasets.Dataset
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BuildResult": "sft",
    "EmptySelection": "select",
    "PreferenceConfig": "preferences",
    "SFTConfig": "sft",
    "Selection": "select",
    "build_dpo": "preferences",
    "build_reward": "preferences",
    "build_sft": "sft",
}
"""Name → the module it comes from, imported when the name is first asked for: every submodule
import goes through this package, and the builds would cost each a half second (numpy, the
negatives), a reader process started on its own included."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trainer.data.{_EXPORTS[name]}"), name)
