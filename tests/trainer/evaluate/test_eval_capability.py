"""The general-capability check: the shipped questions, letters read from answers, and
`agent-tracer eval --capability` comparing a tuned endpoint that forgot six answers with its base."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from trainer.evaluate.capability import answer_letter, shipped_questions
from trainer.evaluate.stats import mcnemar_exact


def test_the_shipped_set():
    questions = shipped_questions()
    assert 40 <= len(questions) <= 60 and len({q.id for q in questions}) == len(questions)
    assert all(len(q.choices) == 4 and q.answer in "ABCD" for q in questions)
    counts = Counter(q.answer for q in questions)
    assert max(counts.values()) - min(counts.values()) <= 1  # one letter always answered scores 25%


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        (" (c) ", "C"),
        ("D.", "D"),
        ("A. Au", "A"),
        ("The answer is B.", "B"),
        ("answer: d", "D"),
        ("Option C", "C"),
        ("He disliked it", None),
        ("E", None),
        ("", None),
        ("I am not sure.", None),
    ],
)
def test_answer_letter(text, letter):
    assert answer_letter(text) == letter


def test_cli_capability_alone(scripted, tmp_path):
    questions = shipped_questions()
    asked = {q.case().messages[-1]["content"]: q for q in questions}
    styles = ["{}", "({})", "The answer is {}.", "{}. because"]
    base = scripted({text: dict(content=styles[i % 4].format(q.answer)) for i, (text, q) in enumerate(asked.items())})
    wrong = {q.id: "ABCD"[("ABCD".index(q.answer) + 1) % 4] for q in questions[:6]}
    tuned = scripted({text: dict(content=wrong.get(q.id, q.answer)) for text, q in asked.items()})
    report = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--capability",
            "--endpoint",
            f"tuned={tuned.openai_base_url}",
            "--endpoint",
            f"base={base.openai_base_url}",
            "--report",
            str(report),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    n = len(questions)
    tuned_rate, p = f"{(n - 6) / n:.1%}", f"{mcnemar_exact(0, 6):.3g}"
    assert f"tuned {(n - 6) / n:.1%}" in result.stdout and f"only base right 6, p = {p}" in result.stdout
    markdown = (report / "report.md").read_text()
    section = markdown.split("## General capability")[1]
    assert f"| tuned | {tuned_rate} |" in section and "| base | 100.0% |" in section and f"| {p} |" in section
    assert f"<td>tuned</td><td>{tuned_rate}</td>" in (report / "index.html").read_text()
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * n and all(row["case_id"].startswith("capability:") for row in rows)
    assert tuned.requests[-1]["json"]["max_tokens"] == 32


def test_lm_eval_needs_the_harness(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--capability",
            "lm-eval:hellaswag",
            "--endpoint",
            "a=http://127.0.0.1:9/v1",
            "--report",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --capability lm-eval:hellaswag needs the lm-evaluation-harness: pip install lm-eval"
    ]
