"""Mixed-in instruction rows make up exactly the asked share of the train set, are sampled the same
way every time, and a bad line is named with its file and line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent_tracer.errors import ConfigError
from trainer.data.mixin import MixinConfig, mixin_count, parse_line, sample_mixin
from trainer.data.split import TRAIN, plan_split

BAD_LINES = {  # line number in the file -> the reason reported
    3: "not valid JSON",
    6: "a row must be a JSON object, not list",
    9: 'needs "messages", or "prompt" and "completion"',
    12: "has a message with role 'robot'",
    15: "does not end with an assistant message",
    18: '"prompt" must be a list of message objects',
    21: "has a tool call that is not an object",
}


def write_file(path: Path, valid: int) -> Path:
    """`valid` good rows in both forms, the bad lines of BAD_LINES, and a blank line."""
    bad = {
        3: '{"messages": [',
        6: '["not", "an", "object"]',
        9: '{"text": "no conversation here"}',
        12: json.dumps({"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}]}),
        15: json.dumps({"messages": [{"role": "user", "content": "a question and no answer"}]}),
        18: json.dumps({"prompt": 17, "completion": "seventeen"}),
        21: json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "", "tool_calls": ["call it"]},
                ]
            }
        ),
    }
    lines, row = [], 0
    while row < valid or len(lines) < max(bad):
        number = len(lines) + 1
        if number in bad:
            lines.append(bad[number])
        elif number == 4 or row == valid:
            lines.append("   ")
        else:
            if row % 2:
                lines.append(json.dumps({"prompt": f"question {row}", "completion": f"answer {row}"}))
            else:
                lines.append(
                    json.dumps(
                        {
                            "messages": [
                                {"role": "user", "content": f"question {row}"},
                                {"role": "assistant", "content": f"answer {row}"},
                            ]
                        }
                    )
                )
            row += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def questions(result) -> list[str]:
    return [example.messages[0]["content"] for example in result.examples]


def test_the_share_of_the_train_set_is_exact(tmp_path):
    path = write_file(tmp_path / "general.jsonl", valid=200)
    for share, train in [(0.2, 100), (0.1, 90), (0.5, 37), (0.05, 1000)]:
        result = sample_mixin(MixinConfig(str(path), share), train_examples=train)
        assert len(result.examples) == result.wanted == mixin_count(share, train) == round(share / (1 - share) * train)
        if share == 0.2:
            assert len(result.examples) / (train + len(result.examples)) == 0.2


def test_rows_become_mixin_examples_that_only_train(tmp_path):
    path = write_file(tmp_path / "general.jsonl", valid=10)
    result = sample_mixin(MixinConfig(str(path), 0.5), train_examples=10)
    assert len(result.examples) == 10
    example = result.examples[1]  # a prompt/completion row
    assert example.messages == [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "answer 1"}]
    assert all(e.source == "mixin" and e.trace_id is None for e in result.examples)
    plan = plan_split({"t1": "search", "t2": "search"}, None)
    assert {plan.side(e) for e in result.examples} == {TRAIN}


def test_the_sample_is_deterministic_in_file_order_and_uniform(tmp_path):
    path = write_file(tmp_path / "general.jsonl", valid=50)
    config = MixinConfig(str(path), share=0.5, seed=3)
    first = questions(sample_mixin(config, train_examples=10))
    assert first == questions(sample_mixin(config, train_examples=10))
    assert first == sorted(first, key=lambda q: int(q.split()[1]))  # file order
    assert first != questions(sample_mixin(MixinConfig(str(path), share=0.5, seed=4), train_examples=10))
    picked = Counter(
        q
        for seed in range(300)
        for q in questions(sample_mixin(MixinConfig(str(path), share=0.5, seed=seed), train_examples=10))
    )
    assert len(picked) == 50 and min(picked.values()) > 30 and max(picked.values()) < 95  # ~60 each


def test_bad_lines_are_named_with_file_and_line_counted_and_skipped(tmp_path):
    path = write_file(tmp_path / "general.jsonl", valid=30)
    result = sample_mixin(MixinConfig(str(path), share=0.5), train_examples=100)
    assert (result.valid, result.bad) == (30, len(BAD_LINES))
    assert len(result.examples) == 30 and result.wanted == 100  # capped by what the file has
    assert len(result.errors) == len(BAD_LINES)
    for error, (line, reason) in zip(result.errors, sorted(BAD_LINES.items())):
        assert error.startswith(f"{path}:{line}: {reason}"), error


def test_tools_and_conversational_prompt_completion_are_accepted():
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    line = json.dumps(
        {
            "prompt": [{"role": "user", "content": "find x"}],
            "completion": [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "found"},
                {"role": "assistant", "content": "x is here"},
            ],
            "tools": [tool],
        }
    )
    example = parse_line(line)
    assert example.tools == [tool]
    assert example.messages[1]["tool_calls"][0]["function"]["arguments"] == {"q": "x"}
    assert example.messages[2]["name"] == "lookup"


def test_no_share_reads_nothing_and_a_missing_file_is_one_clear_error(tmp_path):
    assert sample_mixin(MixinConfig(str(tmp_path / "absent.jsonl"), share=0.0), train_examples=100).examples == []
    with pytest.raises(ConfigError, match="absent.jsonl"):
        sample_mixin(MixinConfig(str(tmp_path / "absent.jsonl"), share=0.1), train_examples=100)
    with pytest.raises(ConfigError):
        MixinConfig(str(tmp_path / "x.jsonl"), share=1.0)
