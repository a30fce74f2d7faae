"""The five stages of the quickstart, each a function of the run's `Context`, in order:

    capture   BFCL ground truth imported as the frontier's successful runs; the base model served
              on loopback; the example agent attempts tasks through agent-tracer's interceptor
    curate    SFT rows from the successful runs; DPO pairs from the base model's failures
    train     LoRA SFT (preset sft-cpu), then DPO (preset dpo-cpu) on top of it
    evaluate  base and tuned served side by side, asked the held-out tasks; the report written
    swap      `agent-tracer proxy --routes`: the agent's model name → tuned, a stand-in frontier
              behind it; the agent runs once more through it

Each stage calls what the matching CLI command calls (`trainer.data`, `trainer.train`,
`trainer.serve`, `trainer.evaluate`, the proxy itself), so what the quickstart shows is what the
commands do. Stages talk through `say` only; the trainers' own logs go to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_tracer.formats.imports import counted
from trainer.quickstart.budget import Budget
from trainer.quickstart.tasks import TaskPlan

Say = Callable[[str], None]
PLACEHOLDER_KEY = "not-needed"
"""What the agent's SDK sends as its API key: local servers ignore it, the proxy never stores it."""


@dataclass
class Context:
    """What the stages share: settings in, and what each stage leaves for the next."""

    folder: Path
    budget: Budget
    say: Say
    model: str = ""
    plan: TaskPlan | None = None
    sft_rows: int = 0
    dpo_rows: int = 0
    tuned: Path | None = None
    evaluation: Any = None
    swapped: list[Any] = field(default_factory=list)
    routed: Counter[str] = field(default_factory=Counter)

    @property
    def db(self) -> str:
        return f"sqlite:///{(self.folder / 'agent_tracer.db').resolve()}"

    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)


@contextlib.contextmanager
def served(model: str, name: str, budget: Budget) -> Iterator[str]:
    """`model` served in-process on a free loopback port as `name` (what `agent-tracer serve`
    runs); yields its base URL."""
    from trainer.serve import Engine, create_app, running

    engine = Engine.load(model, max_batch=budget.max_batch, default_max_tokens=budget.max_tokens)
    with running(create_app(engine, name)) as url:
        yield url


@contextlib.contextmanager
def recording(db: str) -> Iterator[None]:
    """agent-tracer capturing every SDK call of this process into `db`, until the block ends (the
    evaluation's own requests must not be recorded as the agent's)."""
    import agent_tracer

    agent_tracer.init(db=db)
    try:
        yield
    finally:
        agent_tracer.uninstrument()


def agent_client(base_url: str, **headers: str) -> Any:
    import openai

    return openai.OpenAI(
        base_url=base_url, api_key=PLACEHOLDER_KEY, max_retries=0, timeout=600, default_headers=headers or None
    )


# -- 1. capture -----------------------------------------------------------------------------------


def capture(ctx: Context) -> None:
    """the base model served on loopback; the example agent attempts BFCL tasks through agent-tracer"""
    from agent_tracer.store import TraceStore
    from agent_tracer.store.models import utcnow
    from trainer.quickstart.agent import AGENT_NAME, attempt, attempt_all
    from trainer.quickstart.tasks import plan_tasks

    budget = ctx.budget
    ctx.plan = plan = plan_tasks(budget)
    ctx.say(f"  tasks: {plan.describe()}")
    if budget.model == "tiny":
        from trainer.tiny import save_tiny_model

        ctx.model = save_tiny_model(ctx.path("tiny-model"))
        ctx.say(
            f"  model: a 2-layer Llama made on the spot in {ctx.model} (--tiny): it writes nonsense, "
            "but every stage runs on it for real"
        )
    else:
        ctx.model = budget.model
    with TraceStore(ctx.db) as store:
        imported_at = utcnow()
        store.write([record for task in plan.train for record in task.example.records(imported_at)])
    ctx.say(
        f"  imported the ground truth of the {len(plan.train)} train tasks (BFCL {', '.join(budget.categories)}) "
        "as successful runs: these stand in for the runs a frontier model would have made (offline, there "
        "is no frontier model to ask)"
    )
    with served(ctx.model, "base", budget) as url, recording(ctx.db):
        ctx.say(
            f"  serving the base model ({budget.model}) at {url}; the agent (openai SDK, @trace_agent) "
            f"attempts {len(plan.capture)} of the train tasks"
        )
        attempts = attempt_all(attempt, [task.case for task in plan.capture], agent_client(url), budget)
    won = sum(run.grade.success for run in attempts)
    ctx.say(
        f"  {AGENT_NAME}: {len(attempts)} runs recorded in {ctx.db}, {won} succeeded, {len(attempts) - won} "
        "failed (each judged against BFCL's ground truth by its AST rules, and recorded with record_outcome)"
    )


# -- 2. curate ------------------------------------------------------------------------------------


def curate(ctx: Context) -> None:
    """SFT rows from the successful runs; DPO pairs from the base model's failed attempts against them"""
    from agent_tracer.errors import ConfigError
    from agent_tracer.store import TraceStore
    from trainer.data import PreferenceConfig, Selection, SFTConfig, build_dpo, build_sft

    seed = ctx.budget.seed
    with TraceStore(ctx.db) as store:
        sft = build_sft(
            store,
            Selection(outcome="success"),
            SFTConfig(
                out=str(ctx.path("data", "sft.jsonl")), model=ctx.model, max_length=ctx.budget.max_length, seed=seed
            ),
        )
        ctx.sft_rows = sft.summary.splits["train"]
        ctx.say(f"  sft: {_rows(sft.summary)} from the successful runs → {sft.paths['train']}")
        try:
            dpo = build_dpo(
                store,
                Selection(),
                PreferenceConfig(out=str(ctx.path("data", "dpo.jsonl")), sources=["traces"], seed=seed),
            )
        except ConfigError as exc:  # the base model failed nothing: there is nothing to prefer against
            ctx.say(f"  dpo: no pairs ({exc}); DPO will be skipped")
            return
    ctx.dpo_rows = dpo.summary.splits["train"]
    ctx.say(
        f"  dpo: {_rows(dpo.summary)}, each a failed attempt of the base model against the ground truth "
        f"of the same question → {dpo.paths['train']}"
    )


def _rows(summary: Any) -> str:
    return ", ".join(f"{count:,} {split} rows" for split, count in summary.splits.items())


# -- 3. train -------------------------------------------------------------------------------------


def train(ctx: Context) -> None:
    """LoRA SFT with the CPU preset, then a short DPO on top of it"""
    from trainer.train.config import preset_values, resolve
    from trainer.train.preference import train_dpo
    from trainer.train.sft import train_sft

    budget = ctx.budget
    runs: list[tuple[str, Callable[..., dict[str, Any]], str, int, str]] = [
        ("sft", train_sft, ctx.model, budget.sft_steps, "sft.jsonl")
    ]
    if ctx.dpo_rows:
        runs.append(("dpo", train_dpo, str(ctx.path("runs", "sft")), budget.dpo_steps, "dpo.jsonl"))
    for kind, function, model, steps, data in runs:
        out = ctx.path("runs", kind)
        config = resolve(
            kind,
            preset_values(f"{kind}-cpu"),
            {
                "model": model,
                "data": str(ctx.path("data", data)),
                "out": str(out),
                "max_steps": steps,
                "max_length": budget.max_length,
                "seed": budget.seed,
            },
        )
        ctx.say(f"  {kind}: preset {kind}-cpu, {counted(steps, 'step')} from {_short(model, ctx.folder)} …")
        with contextlib.redirect_stdout(sys.stderr):  # the trainers' own logs
            summary = function(config, overwrite=True)
        ctx.say(
            f"  {kind}: {counted(summary['steps'], 'step')} in {summary['seconds']:.0f} s, train loss "
            f"{summary['train_loss']:.3f}; LoRA adapter in {out}"
        )
        ctx.tuned = out


def _short(model: str, folder: Path) -> str:
    path = Path(model)
    return str(path.relative_to(folder)) if path.is_absolute() and path.is_relative_to(folder) else model


# -- 4. evaluate ----------------------------------------------------------------------------------


def evaluate(ctx: Context) -> None:
    """base and tuned served side by side, asked the held-out tasks, graded by BFCL's AST rules"""
    from trainer.evaluate import RunConfig
    from trainer.evaluate import evaluate as run_evaluation

    plan, budget = ctx.plan, ctx.budget
    assert plan is not None and ctx.tuned is not None
    ctx.say(
        f"  {len(plan.held_out)} held-out BFCL {', '.join(budget.categories)} tasks (never trained on) and "
        f"{len(plan.live)} live_simple ones (evaluation only)"
    )
    with served(ctx.model, "base", budget) as base, served(str(ctx.tuned), "tuned", budget) as tuned:
        result = run_evaluation(
            [task.case for task in plan.evaluated],
            {"base": base, "tuned": tuned},
            RunConfig(concurrency=budget.max_batch, max_tokens=budget.max_tokens, timeout=900),
        )
    written = result.write(ctx.path("report"))
    ctx.evaluation = result
    ctx.say(f"  report: {written.get('index.html', ctx.path('report'))}")


# -- 5. swap --------------------------------------------------------------------------------------


def swap(ctx: Context) -> None:
    """agent-tracer proxy --routes: the agent's model name → tuned, a stand-in frontier as fallback"""
    from agent_tracer.formats import HELD_OUT_TAG
    from agent_tracer.proxy.process import ProxyProcess
    from agent_tracer.store import TraceStore
    from trainer.quickstart.agent import AGENT_NAME, AGENT_TAG, attempt_all, attempt_held_out
    from trainer.quickstart.routes import write_routes
    from trainer.quickstart.standin import STANDIN_MODEL, StandinFrontier

    plan, budget = ctx.plan, ctx.budget
    assert plan is not None and ctx.tuned is not None
    answers = [(task.question, task.answer) for task in plan.train + plan.evaluated]
    with contextlib.ExitStack() as stack:
        tuned = stack.enter_context(served(str(ctx.tuned), "tuned", budget))
        standin = stack.enter_context(StandinFrontier(answers)).openai_base_url
        routes = write_routes(ctx.path("routes.yaml"), tuned, standin)
        ctx.say(
            f"  routes: {routes} — model {AGENT_NAME} → tuned at {tuned} (primary), {STANDIN_MODEL} at "
            f"{standin} (fallback: a loopback stand-in that answers BFCL questions with their ground truth)"
        )
        proxy = ProxyProcess(standin.removesuffix("/v1"), ctx.db, "--routes", str(routes))
        stack.callback(proxy.stop)
        ctx.say(
            f"  agent-tracer proxy --routes {routes.name} at {proxy.openai_base_url}; the agent runs "
            f"{len(plan.swap)} held-out tasks through it"
        )
        client = agent_client(
            proxy.openai_base_url, **{"X-Agent-Name": AGENT_NAME, "X-Agent-Tags": f"{AGENT_TAG},{HELD_OUT_TAG}"}
        )
        with recording(ctx.db):
            ctx.swapped = attempt_all(attempt_held_out, [task.case for task in plan.swap], client, budget)
    for run in ctx.swapped:
        answered = "tuned" if run.route == "primary" else STANDIN_MODEL
        outcome = "success" if run.grade.success else f"failure: {run.grade.reason}"
        ctx.say(f"    {run.task_id:<24} answered by the {run.route} ({answered}): {outcome}")
    with TraceStore(ctx.db) as store:
        routed = [call for call in store.calls(limit=None) if call.route]
    refused = Counter(call.fallback_reason for call in routed if call.route == "primary" and call.fallback_reason)
    ctx.routed = Counter(call.route or "" for call in routed if call.route == "fallback" or not call.fallback_reason)
    ctx.say(
        f"  the proxy recorded {len(routed)} routed calls: {ctx.routed['primary']} answered by the primary "
        f"(tuned), {ctx.routed['fallback']} by the fallback ({STANDIN_MODEL})"
        + (
            f" after it refused the primary's answer ({', '.join(f'{why} {n}' for why, n in refused.items())})"
            if refused
            else ""
        )
    )


STAGES: list[tuple[str, Callable[[Context], None]]] = [
    ("capture", capture),
    ("curate", curate),
    ("train", train),
    ("evaluate", evaluate),
    ("swap", swap),
]
