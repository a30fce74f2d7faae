"""`evaluate(cases, endpoints)`: the cases sent to every endpoint, graded and summarised.

    from trainer.evaluate import evaluate

    result = evaluate("bfcl:simple_python", {"tuned": "http://127.0.0.1:8001/v1",
                                             "base": "http://127.0.0.1:8002/v1"})
    print(result.table())                  # the short table the CLI prints
    result.write("report/")                # results.jsonl, report.md, index.html and its charts

`capability=True` also asks every endpoint the shipped general-capability questions
(`trainer.evaluate.capability`), reported as their own metric.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent_tracer.endpoints import Endpoint, endpoints_from
from agent_tracer.prices import load_prices
from trainer.evaluate.capability import SHIPPED, Capability, check_spec, run_capability
from trainer.evaluate.cases import Case, load_cases
from trainer.evaluate.metrics import Summary, summarise
from trainer.evaluate.runner import Row, RunConfig, run_cases


@dataclass
class Evaluation:
    cases: list[Case]
    endpoints: list[Endpoint]
    rows: list[Row]
    """One per case × endpoint, in case order."""
    summary: Summary
    config: RunConfig = field(default_factory=RunConfig)
    capability: Capability | None = None
    """The general-capability check, when asked for."""

    def to_dict(self) -> dict[str, Any]:
        """The summary with what was evaluated, JSON-ready (for `--json`)."""
        summary = self.summary.to_dict()
        summary["endpoints"] = [
            {**endpoint.to_dict(), **figures} for endpoint, figures in zip(self.endpoints, summary["endpoints"])
        ]
        out = {"cases": len(self.cases), "config": asdict(self.config), **summary}
        if self.capability is not None:
            out["capability"] = {"source": self.capability.source, **self.capability.summary.to_dict()}
        return out

    def table(self) -> str:
        from trainer.evaluate.report import stdout_table

        return stdout_table(self)

    def write(self, directory: str | Path, worst: int = 5) -> dict[str, Path]:
        """The report files in `directory` (see `trainer.evaluate.report.WRITERS`); name → path."""
        from trainer.evaluate.report import write_report

        return write_report(self, Path(directory), worst)


async def evaluate_async(
    cases: Any,
    endpoints: Any,
    config: RunConfig | None = None,
    prices: str | Path | dict[str, tuple[float, float]] | None = None,
    on_row: Callable[[Row], None] | None = None,
    capability: bool | str = False,
) -> Evaluation:
    """`evaluate` inside a running event loop."""
    case_list = load_cases(cases) if cases or not capability else []  # the capability check alone
    endpoint_list = endpoints_from(endpoints)
    config = config or RunConfig()
    table = prices if isinstance(prices, dict) else load_prices(prices)
    spec = check_spec(SHIPPED if capability is True else capability) if capability else None
    rows = await run_cases(case_list, endpoint_list, config, table, on_row)
    summary = summarise(case_list, [endpoint.name for endpoint in endpoint_list], rows)
    check = await run_capability(spec, endpoint_list, config, table) if spec else None
    return Evaluation(case_list, endpoint_list, rows, summary, config, check)


def evaluate(
    cases: Any,
    endpoints: Any,
    config: RunConfig | None = None,
    prices: str | Path | dict[str, tuple[float, float]] | None = None,
    on_row: Callable[[Row], None] | None = None,
    capability: bool | str = False,
) -> Evaluation:
    """Send every case to every endpoint and grade the answers.

    `cases`: `Case`s, case dicts, or case-file specs (a JSONL path, a BFCL file, `bfcl:<category>`;
    see `trainer.evaluate.cases`). `endpoints`: {name: base URL}, `Endpoint`s or `NAME=URL,…`
    strings (see `agent_tracer.endpoints`). `prices`: a price file or a {model: (input,
    output)} table, USD per 1K tokens, over the defaults. `on_row` is told of each row as it ends.
    `capability`: True (or "builtin") adds the shipped general-capability check; "lm-eval:TASK"
    names an lm-evaluation-harness task (see `trainer.evaluate.capability`)."""
    return asyncio.run(evaluate_async(cases, endpoints, config, prices, on_row, capability))
