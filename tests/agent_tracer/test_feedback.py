"""Corrections as feedback: what `feedback_row` keeps, and the one-line refusals."""

from __future__ import annotations

import pytest

from agent_tracer.errors import ConfigError
from agent_tracer.feedback import correction_message, feedback_row


def test_a_correction_is_kept_as_an_assistant_message_in_the_canonical_shape():
    assert correction_message("Shipped.") == {"role": "assistant", "content": "Shipped."}
    short = {"tool_calls": [{"name": "lookup", "arguments": {"id": "A1"}}, {"name": "ping"}]}
    assert correction_message(short) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "function": {"name": "lookup", "arguments": '{"id": "A1"}'}},
            {"type": "function", "function": {"name": "ping", "arguments": "{}"}},
        ],
    }
    canonical = {
        "role": "assistant",
        "content": "Looking it up.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"id":"A1"}'}}
        ],
    }
    assert correction_message(canonical) == {**canonical, "tool_calls": [{**canonical["tool_calls"][0]}]}
    row = feedback_row("A" * 32, correction="Shipped.", source="cli")
    assert row["trace_id"] == "a" * 32 and row["correction"] == {"role": "assistant", "content": "Shipped."}
    assert feedback_row("a" * 32, outcome="failure")["correction"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("  ", "a correction needs the answer's text or tool calls"),
        ({"content": None, "tool_calls": []}, "a correction needs the answer's text or tool calls"),
        (5, "a correction must be the answer's text or a message object, not int"),
        ({"role": "user", "content": "x"}, "a correction is the assistant's answer, not a 'user' message"),
        ({"content": "x", "name": "bob"}, "a correction holds only content, role, tool_calls, not name"),
        ({"content": ["x"]}, "a correction's content must be text, not list"),
        ({"tool_calls": {"name": "a"}}, "a correction's tool_calls must be a list, not dict"),
        ({"tool_calls": ["lookup"]}, "tool call 1 must be an object with a name and arguments, not str"),
        ({"tool_calls": [{"arguments": {}}]}, "tool call 1 needs a tool name"),
        ({"tool_calls": [{"name": "a", "arguments": "{not json"}]}, "tool call 1 (a): arguments must be a JSON object"),
        ({"tool_calls": [{"name": "a", "arguments": [1]}]}, "tool call 1 (a): arguments must be a JSON object"),
        ({"tool_calls": [{"name": "a", "id": 7}]}, "tool call 1 (a): id must be text"),
    ],
)
def test_a_correction_that_is_not_an_answer_is_refused_in_one_line(value, message):
    with pytest.raises(ConfigError) as info:
        feedback_row("a" * 32, correction=value)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
