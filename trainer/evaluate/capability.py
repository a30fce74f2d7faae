"""General capability: did narrow fine-tuning cost the model what it knew before?

A model tuned on one agent's tool calls can get better at them and worse at everything else (the
"alignment tax", catastrophic forgetting). The tuned endpoint's tool-call rates cannot show that;
a few dozen plain questions asked of every endpoint side by side can: a drop against the base
model, with the paired exact McNemar test saying whether it is more than noise.

The shipped set (`capability.jsonl`, package data) holds 48 multiple-choice questions, four
options each, in three kinds: general knowledge (gk…), arithmetic (ar…) and reading (rd…), the
right letters spread evenly over A-D so that always answering one letter scores 25%. Each is
asked on its own, the model told to answer with the letter only; the answer counts when the
first letter it gives as an answer (`answer_letter`) is the right one. 48 questions tell a 90%
model from a 60% one, not a 90% from an 85% one: it is a tripwire, not a benchmark.

`lm-eval:TASK` names an EleutherAI lm-evaluation-harness task instead; that needs `pip install
lm-eval` and is run through its own harness (not wired here yet), so it is refused with a line
saying so.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from agent_tracer.endpoints import Endpoint
from agent_tracer.errors import ConfigError
from trainer.evaluate.cases import Case
from trainer.evaluate.grade import Grade
from trainer.evaluate.metrics import Summary, summarise
from trainer.evaluate.runner import Row, RunConfig, run_cases

SHIPPED = "builtin"
"""The spec of the shipped question set (`--capability` with no value)."""
LM_EVAL = "lm-eval:"
INSTRUCTION = "Answer the multiple-choice question with the letter of the right option only."
ANSWER_TOKENS = 32
"""The answer's token limit when the run sets none: a letter, or a short sentence around it."""

_LETTERS = "ABCDEFGH"
_BARE = re.compile(r"^\W*\(?([A-H])\)?(?:[.):\s]|$)")
_SAID = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-H])\b\)?", re.IGNORECASE)


@dataclass
class Question:
    id: str
    question: str
    choices: list[str]
    answer: str
    """The right option's letter."""

    def case(self) -> Case:
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(_LETTERS, self.choices))
        return Case(
            id=f"capability:{self.id}",
            source="capability",
            messages=[
                {"role": "system", "content": INSTRUCTION},
                {"role": "user", "content": f"{self.question}\n\n{options}\n\nAnswer with one letter."},
            ],
        )


@dataclass
class Capability:
    """The capability check's questions, rows (one per question × endpoint) and summary."""

    source: str
    cases: list[Case]
    rows: list[Row]
    summary: Summary


def shipped_questions() -> list[Question]:
    text = resources.files("trainer.evaluate").joinpath("capability.jsonl").read_text(encoding="utf-8")
    return [Question(**json.loads(line)) for line in text.splitlines() if line.strip()]


def answer_letter(text: str, options: int = 4) -> str | None:
    """The option letter an answer gives: a bare letter ("B", "(b)", "B. Paris") or one named
    ("The answer is B"); None when it gives none of the first `options` letters."""
    stripped = text.strip()
    found = _BARE.match(stripped.upper()) or _SAID.search(stripped)
    letter = found.group(1).upper() if found else None
    return letter if letter is not None and letter in _LETTERS[:options] else None


def letter_grade(question: Question, row: Row) -> Grade:
    """The answer right or not; an answer without a letter is not well-formed either."""
    letter = answer_letter(row.reply.content if row.reply else "", len(question.choices))
    if letter is None:
        return Grade(
            answer=False,
            well_formed=False,
            success=False,
            reason="no option letter in the answer",
            error_kind="no_letter",
        )
    right = letter == question.answer
    return Grade(
        answer=right,
        success=right,
        reason=None if right else f"answered {letter}, not {question.answer}",
        error_kind=None if right else "wrong_option",
    )


def check_spec(spec: str) -> str:
    """The spec when it can be run here; a `ConfigError` of one line when it cannot."""
    if spec == SHIPPED:
        return spec
    if spec.startswith(LM_EVAL) and spec[len(LM_EVAL) :]:
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            raise ConfigError(f"--capability {spec} needs the lm-evaluation-harness: pip install lm-eval") from None
        raise ConfigError(
            f"--capability {spec}: lm-eval tasks are not wired in yet; run lm_eval against the "
            "endpoint directly, or use --capability for the shipped set"
        )
    raise ConfigError(f"--capability {spec!r}: give nothing (the shipped set) or lm-eval:TASK")


async def run_capability(
    spec: str, endpoints: Sequence[Endpoint], config: RunConfig, prices: dict[str, tuple[float, float]]
) -> Capability:
    """Every question to every endpoint, graded by its letter, summarised like the cases."""
    check_spec(spec)
    questions = shipped_questions()
    cases = [question.case() for question in questions]
    by_id = {case.id: question for case, question in zip(cases, questions)}
    config = dataclasses.replace(config, max_tokens=config.max_tokens or ANSWER_TOKENS)
    rows = await run_cases(cases, endpoints, config, prices)
    for row in rows:
        if row.reply is not None:
            row.grade = letter_grade(by_id[row.case_id], row)
    summary = summarise(cases, [endpoint.name for endpoint in endpoints], rows)
    return Capability(f"{len(questions)} shipped questions", cases, rows, summary)
