"""Verifiable rewards for GRPO: a sampled answer scored against the row's reference tool calls.

`tool_match` gives each answer a score in [0, 1]:
- the reference makes no call (the question fits none of the tools): 1 for an answer with no call
  and nothing malformed, else 0;
- otherwise 0 for an answer with a malformed call or no call; else, for each reference call, the
  best of the answer's calls scores 0.5 for the right name and 0.5 × the share of the reference's
  arguments it gives with equal values (0.5 when the reference has none); the sum is divided by
  the larger of the two call counts, so missing and extra calls both cost.
Values are compared as JSON: 2 equals 2.0, strings are compared without surrounding spaces.
"""

from __future__ import annotations

import json
from typing import Any

from trainer.data.negatives import canonical
from trainer.tool_calls import parse_reply


def tool_match(completions: list[Any], reference: list[Any], **_: Any) -> list[float]:
    """TRL's reward-function signature: one score per completion; `reference` is the dataset
    column of the same name (each a JSON list of OpenAI-style calls)."""
    return [score(_text(completion), _calls(expected)) for completion, expected in zip(completions, reference)]


def score(answer: str, expected: list[dict[str, Any]]) -> float:
    reply = parse_reply(answer)
    if not expected:
        return 1.0 if not reply.calls and reply.well_formed else 0.0
    if not reply.calls or not reply.well_formed:
        return 0.0
    total = sum(max(_call_score(call, want) for call in reply.calls) for want in expected)
    return total / max(len(expected), len(reply.calls))


def _call_score(call: dict[str, Any], want: dict[str, Any]) -> float:
    if call["name"] != want["name"]:
        return 0.0
    arguments = want["arguments"]
    if not arguments:
        return 1.0
    equal = sum(
        1 for key, value in arguments.items() if key in call["arguments"] and _same(call["arguments"][key], value)
    )
    return 0.5 + 0.5 * equal / len(arguments)


def _same(given: Any, wanted: Any) -> bool:
    if isinstance(given, str) and isinstance(wanted, str):
        return given.strip() == wanted.strip()
    if isinstance(given, bool) or isinstance(wanted, bool):
        return given is wanted
    if isinstance(given, (int, float)) and isinstance(wanted, (int, float)):
        return float(given) == float(wanted)
    return canonical(given) == canonical(wanted)


def _text(completion: Any) -> str:
    """A completion as text: TRL passes a string, or a list of messages for conversational prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def _calls(expected: Any) -> list[dict[str, Any]]:
    """Reference calls as `{"name", "arguments"}`, from OpenAI-style calls or a JSON string of them."""
    if isinstance(expected, str):
        expected = json.loads(expected)
    calls = []
    for call in expected or ():
        function = call.get("function", call)
        arguments = function.get("arguments") or {}
        calls.append(
            {"name": function["name"], "arguments": json.loads(arguments) if isinstance(arguments, str) else arguments}
        )
    return calls
