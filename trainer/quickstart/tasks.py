"""The quickstart's BFCL tasks, split so that nothing evaluated was trained on.

Each task is one BFCL question with its ground truth, in the two shapes the stages need: an eval
`Case` (messages, tools, every acceptable value, for grading) and an import `Example` (the
question answered by its ground-truth calls, which goes into the store as a successful run).

    train     ground truth imported as the frontier's successful runs: the SFT rows
    capture   some of the train tasks, attempted by the base model: its failures make DPO pairs
    held_out  other tasks of the same non-live categories: evaluation and the swap, never trained on
    live      BFCL's live_simple questions (user-contributed): evaluation only, never trained on
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from agent_tracer.formats.bfcl import open_bfcl
from agent_tracer.formats.examples import Example
from agent_tracer.formats.imports import ImportOptions
from trainer.evaluate.cases import Case, load_cases
from trainer.quickstart.agent import question_of
from trainer.quickstart.budget import Budget

LIVE_CATEGORY = "live_simple"


@dataclass
class Task:
    case: Case
    example: Example

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def question(self) -> str:
        """The user's question: what the stand-in frontier recognises a task by."""
        return question_of(self.case)

    @property
    def answer(self) -> dict[str, Any]:
        """The ground-truth assistant message (tool calls with their first acceptable values)."""
        return self.example.messages[-1]


@dataclass
class TaskPlan:
    train: list[Task]
    capture: list[Task]
    held_out: list[Task]
    live: list[Task]
    swap: list[Task]
    """Held-out tasks the agent runs once more, through the proxy."""

    @property
    def evaluated(self) -> list[Task]:
        return self.held_out + self.live

    def describe(self) -> str:
        return (
            f"{len(self.train)} train tasks ({len(self.capture)} attempted by the base model), "
            f"{len(self.held_out)} held-out, {len(self.live)} {LIVE_CATEGORY} (evaluation only)"
        )


def category_tasks(category: str) -> list[Task]:
    """Every question of a BFCL category (`bfcl:<category>`, from the installed bfcl-eval)."""
    reader = open_bfcl(f"bfcl:{category}", ImportOptions(strict=True))
    examples = {}
    with open(reader.path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                example = reader.parse(json.loads(line), number, line)
                assert not isinstance(example, list)  # one question a line outside multi-turn categories
                examples[example.meta["id"]] = example
    return [Task(case, examples[case.id]) for case in load_cases(f"bfcl:{category}")]


def plan_tasks(budget: Budget) -> TaskPlan:
    """The tasks of each part, drawn at random (seeded) from the budget's categories; the train
    and held-out parts never share a task, and live_* ones are only ever evaluated."""
    pool = [task for category in budget.categories for task in category_tasks(category)]
    rng = random.Random(budget.seed)
    rng.shuffle(pool)
    wanted = budget.train_tasks + budget.eval_tasks
    if len(pool) < wanted:
        raise ValueError(f"BFCL {', '.join(budget.categories)} hold {len(pool)} tasks, fewer than the {wanted} asked")
    train, held_out = pool[: budget.train_tasks], pool[budget.train_tasks : wanted]
    live = rng.sample(category_tasks(LIVE_CATEGORY), budget.live_tasks) if budget.live_tasks else []
    return TaskPlan(train, train[: budget.capture_tasks], held_out, live, held_out[: budget.swap_tasks])
