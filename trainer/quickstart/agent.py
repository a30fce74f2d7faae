"""The quickstart's example agent: it answers a BFCL task with one model call through the official
openai SDK, and judges its own answer against BFCL's ground truth.

Traced as any agent is, with two lines: `agent_tracer.init(db=…)` (the stage's) and
`@agent_tracer.trace_agent`. Each run's outcome goes onto its trace with `record_outcome`:
"success" when the calls match BFCL's AST rules (`trainer.evaluate.grade`), else "failure" with the
reason as the comment. The model name it asks for, `AGENT_MODEL`, is what the routes file swaps.
BFCL's functions are not real, so the agent runs no tool: the task is the call.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai

import agent_tracer
from agent_tracer.formats import HELD_OUT_TAG
from trainer.evaluate.cases import Case
from trainer.evaluate.grade import Grade, Reply, grade
from trainer.quickstart.budget import Budget

AGENT_NAME = "bfcl-agent"
AGENT_MODEL = "bfcl-agent"
"""The model name the agent sends: any name to a served model, a route to the proxy."""
AGENT_TAG = "quickstart"


@dataclass
class Attempt:
    task_id: str
    grade: Grade
    route: str | None
    """Who answered behind the proxy (its `x-agent-route` header); None without a proxy."""


@agent_tracer.trace_agent(name=AGENT_NAME, tags=[AGENT_TAG])
def attempt(question: str, case: Case, client: openai.OpenAI, max_tokens: int) -> Attempt:
    """One traced run: ask, judge the answer against the ground truth, record the outcome."""
    return _run(case, client, max_tokens)


@agent_tracer.trace_agent(name=AGENT_NAME, tags=[AGENT_TAG, HELD_OUT_TAG])
def attempt_held_out(question: str, case: Case, client: openai.OpenAI, max_tokens: int) -> Attempt:
    """`attempt` on a task kept for evaluation: tagged held-out, so no dataset ever takes the run."""
    return _run(case, client, max_tokens)


def _run(case: Case, client: openai.OpenAI, max_tokens: int) -> Attempt:
    raw = client.chat.completions.with_raw_response.create(
        model=AGENT_MODEL,
        messages=case.messages,  # type: ignore[arg-type]  # chat-format dicts, not the SDK's TypedDicts
        tools=case.tools,  # type: ignore[arg-type]  # the same
        temperature=0,
        max_tokens=max_tokens,
    )
    message = raw.parse().choices[0].message
    reply = Reply.from_message(
        message.content,
        [(call.function.name, call.function.arguments) for call in message.tool_calls or () if call.type == "function"],
    )
    result = grade(case, reply)
    agent_tracer.record_outcome(
        outcome="success" if result.success else "failure", rating=5 if result.success else 1, comment=result.reason
    )
    return Attempt(case.id, result, raw.headers.get("x-agent-route"))


def attempt_all(
    agent: Callable[..., Attempt], cases: list[Case], client: openai.OpenAI, budget: Budget
) -> list[Attempt]:
    """Run `agent` on every case, `budget.max_batch` runs at a time (the served model batches
    them); Ctrl-C cancels the runs not started."""
    pool = ThreadPoolExecutor(max_workers=budget.max_batch, thread_name_prefix=AGENT_NAME)
    try:
        runs = [pool.submit(agent, question_of(case), case, client, budget.max_tokens) for case in cases]
        return [run.result() for run in runs]
    finally:
        pool.shutdown(cancel_futures=True)


def question_of(case: Case) -> str:
    return next(m["content"] for m in reversed(case.messages) if m["role"] == "user")
