"""Training data from the trace store: select traces, curate them, and write SFT, DPO and reward rows
that TRL consumes as they are (`rows.py` describes the shapes).

    from agent_tracer.store import TraceStore
    from trainer.data import Selection, SFTConfig, build_sft

    result = build_sft(TraceStore(), Selection(outcome="success", min_rating=4), SFTConfig(out="sft.jsonl"))
    print(result.summary.render())
    train = result.dataset()["train"]            # a datasets.Dataset
"""

from trainer.data.preferences import PreferenceConfig, build_dpo, build_reward
from trainer.data.select import EmptySelection, Selection
from trainer.data.sft import BuildResult, SFTConfig, build_sft

__all__ = ["BuildResult", "EmptySelection", "PreferenceConfig", "SFTConfig", "Selection", "build_dpo", "build_reward",
           "build_sft"]
