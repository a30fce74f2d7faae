"""Evaluation: eval cases sent to endpoints side by side, graded (BFCL-style AST matching of tool
calls, answer and format checks), summarised with intervals and paired tests, and reported.

    cases.py       the case format; cases from JSONL, BFCL files and the store's held-out traces
    ast_match.py   tool calls against expected calls, by BFCL's AST rules
    grade.py       one reply against its case
    endpoints.py   prices per 1K tokens (`--endpoint NAME=URL,…` itself: `agent_tracer.endpoints`)
    runner.py      async, streamed requests, bounded concurrency, endpoints that are down
    metrics.py     rates, latency, tokens, cost per endpoint; per tool; endpoint against endpoint
    stats.py       Wilson intervals, exact McNemar, percentiles
    report.py      results.jsonl, report.md, the table printed; the tables as cells for both
    html.py        index.html: one self-contained page, charts inline (charts.py: matplotlib, Agg)
    capability.py  the shipped multiple-choice questions: what narrow fine-tuning cost (--capability)
    agent.py       AgentEvaluator: the user's own agent run per task, multi-turn success
    meter.py       the transport counting an agent's calls, turns and tokens
    agent_report.py  the agent evaluation's report
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentEvaluation": "agent",
    "AgentEvaluator": "agent",
    "Case": "cases",
    "Endpoint": "endpoints",
    "Evaluation": "evaluation",
    "RunConfig": "runner",
    "evaluate": "evaluation",
    "evaluate_async": "evaluation",
    "load_cases": "cases",
}
"""Name → its module, imported when first asked for (the openai SDK only when evaluating)."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trainer.evaluate.{_EXPORTS[name]}"), name)
