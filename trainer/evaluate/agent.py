"""Multi-turn success: the user's own agent run on each task against each endpoint.

One model call right is not a task done: an agent loops (call a tool, read its result, call
again, answer), and a tuned model that gets each call 95% right can still lose the thread on turn
three. So the agent itself is run, unchanged, on tasks with known outcomes:

    async def agent(task, client, model):         # `model` is optional: the endpoint's model
        ...                                       # any loop on `client`, an openai.AsyncOpenAI
        return answer

    result = AgentEvaluator(agent, tasks, {"tuned": "http://127.0.0.1:8001/v1",
                                           "base": "http://127.0.0.1:8002/v1"},
                            judge=lambda task, answer: task["city"] in answer).run()
    print(result.table())
    result.write("agent-report/")                 # results.jsonl, report.md, index.html

Each task gets a fresh client per endpoint whose transport counts what the agent asked
(`trainer.evaluate.meter`: calls, turns, tokens), so concurrent tasks never mix their counts. A
task succeeds when `judge(task, result)` (sync or async) says so, or, without a judge, when the
result equals the task's expected answer (`task["expected"]` or `task.expected`). An agent that
raises has failed the task; the reason is kept, without the API key. A judge that raises is a
bug in the evaluation and is raised.

Figures per endpoint (`AgentSummary`): the success rate with its Wilson interval, mean turns to
complete (over the tasks done), mean calls and turns per task, task latency (the whole agent
run) p50/p95, tokens and cost per task; endpoints are compared on success task by task with the
exact McNemar test, as the single-call evaluation does (`metrics.compare`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from agent_tracer.endpoints import Endpoint, endpoints_from
from agent_tracer.errors import ConfigError
from agent_tracer.prices import load_prices
from trainer.evaluate.metrics import Comparison, compare, mean
from trainer.evaluate.runner import RunConfig, Target
from trainer.evaluate.stats import Rate, percentile

Agent = Callable[..., Awaitable[Any]]
Judge = Callable[[Any, Any], "bool | Awaitable[bool]"]


@dataclass
class AgentRow:
    """One task × one endpoint."""

    case_id: str
    """The task's id (named as `Row`'s, so rows pair up the same way for the paired test)."""
    endpoint: str
    model: str | None
    success: bool = False
    status: str = "ok"
    """"ok", or "error": the agent raised, or the endpoint was down; `error` says why."""
    error: str | None = None
    result: Any = None
    calls: int = 0
    turns: int = 0
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class AgentSummary:
    name: str
    model: str | None
    tasks: int
    errors: int
    down: str | None
    """Why, when the endpoint answered no call of any task."""
    success: Rate
    turns_to_complete: float | None
    """Mean turns of the tasks done."""
    turns: float | None
    calls: float | None
    latency_ms: dict[str, float | None]
    input_tokens: float | None
    output_tokens: float | None
    cost_per_task: float | None

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "success": self.success.to_dict()}


@dataclass
class AgentEvaluation:
    tasks: list[Any]
    endpoints: list[Endpoint]
    rows: list[AgentRow]
    """One per task × endpoint, in task order."""
    summaries: list[AgentSummary]
    comparisons: list[Comparison]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": len(self.tasks),
            "endpoints": [
                {**endpoint.to_dict(), **summary.to_dict()} for endpoint, summary in zip(self.endpoints, self.summaries)
            ],
            "comparisons": [comparison.to_dict() for comparison in self.comparisons],
        }

    def table(self) -> str:
        from trainer.evaluate.agent_report import agent_table

        return agent_table(self)

    def write(self, directory: str | Path) -> dict[str, Path]:
        """results.jsonl, report.md and index.html in `directory`; name → path."""
        from trainer.evaluate.agent_report import AGENT_WRITERS
        from trainer.evaluate.report import write_report

        return write_report(self, Path(directory), 0, AGENT_WRITERS)


class AgentEvaluator:
    """`agent` run on every task against every endpoint (see the module docstring)."""

    def __init__(
        self,
        agent: Agent,
        tasks: Sequence[Any],
        endpoints: Any,
        judge: Judge | None = None,
        *,
        config: RunConfig | None = None,
        prices: str | Path | dict[str, tuple[float, float]] | None = None,
    ) -> None:
        """`endpoints`: {name: base URL}, `Endpoint`s or `NAME=URL,…` strings. `config`: its
        concurrency is tasks in flight per endpoint, its timeout and retries the client's."""
        self.agent, self.tasks, self.judge = agent, list(tasks), judge
        self.endpoints = endpoints_from(endpoints)
        self.config = config or RunConfig()
        self.prices = prices if isinstance(prices, dict) else load_prices(prices)
        if not self.tasks:
            raise ConfigError("no task to run the agent on")
        if judge is None and any(_field(task, "expected") is None for task in self.tasks):
            raise ConfigError("without a judge every task needs an expected answer (task['expected'])")
        self.ids = _ids(self.tasks)
        self._model_parameter = "model" in _parameters(agent)

    def run(self) -> AgentEvaluation:
        return asyncio.run(self.run_async())

    async def run_async(self) -> AgentEvaluation:
        targets = [Target(endpoint, self.config, self.prices) for endpoint in self.endpoints]
        try:
            rows = list(
                await asyncio.gather(
                    *(self._one(index, target) for index in range(len(self.tasks)) for target in targets)
                )
            )
        finally:
            for target in targets:
                await target.client.close()
        by_endpoint = {
            endpoint.name: [row for row in rows if row.endpoint == endpoint.name] for endpoint in self.endpoints
        }
        summaries = [summarise_agent(name, endpoint_rows) for name, endpoint_rows in by_endpoint.items()]
        up = [summary.name for summary in summaries if summary.down is None]
        comparisons = [compare(a, b, by_endpoint[a], by_endpoint[b]) for a, b in combinations(up, 2)]
        return AgentEvaluation(self.tasks, self.endpoints, rows, summaries, comparisons)

    async def _one(self, index: int, target: Target) -> AgentRow:
        from trainer.evaluate.meter import metered_client

        task = self.tasks[index]
        async with target.slots:
            await target.resolve()
            row = AgentRow(self.ids[index], target.endpoint.name, target.model)
            if target.down is not None:
                row.status, row.error = "error", f"endpoint down: {target.down}"
                return row
            client, meter = metered_client(target.endpoint.url, target.key, self.config.timeout, self.config.retries)
            started = time.perf_counter()
            try:
                extra = {"model": target.model} if self._model_parameter else {}
                row.result = await self.agent(task, client, **extra)
            except Exception as exc:  # the agent's own failure is a failed task, kept with its reason
                row.status, row.error = "error", f"{type(exc).__name__}: {target.clean(exc)}"
            finally:
                row.latency_ms = (time.perf_counter() - started) * 1000
                await client.close()
        row.calls, row.turns = meter.calls, meter.turns
        row.input_tokens, row.output_tokens = meter.input_tokens, meter.output_tokens
        if target.price is not None and row.input_tokens is not None and row.output_tokens is not None:
            row.cost = row.input_tokens / 1000 * target.price[0] + row.output_tokens / 1000 * target.price[1]
        if row.status == "ok":
            row.success = await self._judged(task, row.result)
        return row

    async def _judged(self, task: Any, result: Any) -> bool:
        if self.judge is None:
            return bool(result == _field(task, "expected"))
        verdict = self.judge(task, result)
        return bool(await verdict if inspect.isawaitable(verdict) else verdict)


def summarise_agent(name: str, rows: list[AgentRow]) -> AgentSummary:
    done = [row for row in rows if row.success]
    finished = [row for row in rows if row.status == "ok"]
    answered = any(row.turns for row in rows)
    latencies = [row.latency_ms for row in finished if row.latency_ms is not None]
    return AgentSummary(
        name=name,
        model=next((row.model for row in rows if row.model), None),
        tasks=len(rows),
        errors=len(rows) - len(finished),
        down=rows[0].error if rows and not answered and not finished else None,
        success=Rate(len(done), len(rows)),
        turns_to_complete=mean([row.turns for row in done]),
        turns=mean([row.turns for row in rows]),
        calls=mean([row.calls for row in rows]),
        latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        input_tokens=mean([row.input_tokens for row in rows if row.input_tokens is not None]),
        output_tokens=mean([row.output_tokens for row in rows if row.output_tokens is not None]),
        cost_per_task=mean([row.cost for row in rows if row.cost is not None]),
    )


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, dict) else getattr(task, name, None)


def _ids(tasks: list[Any]) -> list[str]:
    """Each task's id (`id`, else its place), made unique."""
    ids, seen = [], set()
    for index, task in enumerate(tasks):
        task_id = str(_field(task, "id") or f"task-{index + 1}")
        while task_id in seen:
            task_id += "~"
        seen.add(task_id)
        ids.append(task_id)
    return ids


def _parameters(agent: Agent) -> Sequence[str]:
    try:
        return list(inspect.signature(agent).parameters)
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return []
