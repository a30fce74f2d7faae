"""The model's text → content and tool calls: the same answer whether the text comes whole or a
character at a time, and nothing shown early that turns out to be part of a call."""

from __future__ import annotations

import json

import pytest

from trainer.serve.engine import _StopFilter
from trainer.serve.reply import Assembler
from trainer.tool_calls import parse_reply

CALL = '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-17"}}\n</tool_call>'
TEXTS = [
    "Order A-17 has shipped.",
    f"  Let me look.\n{CALL}\n",
    f"First {CALL} then {CALL} done",
    'Oops <tool_call>{"name": 3}</tool_call> and a < b, <tool',
    f'{CALL}<tool_call>\n{{"name": "cut", "arguments": {{"a": 1}}}}',  # an unclosed last block with whole JSON
    f'{CALL}<tool_call>\n{{"name": "cut", "argu',
]


def assemble(pieces, parse_tools=True):
    assembler = Assembler(parse_tools)
    outputs = [assembler.feed(piece) for piece in pieces] + [assembler.finish()]
    calls = [call for parts in outputs for call in parts.calls]
    return (
        "".join(parts.text for parts in outputs),
        [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls],
        [c["index"] for c in calls],
    )


@pytest.mark.parametrize("text", TEXTS)
def test_whole_or_char_by_char_the_answer_is_the_same_and_agrees_with_parse_reply(text):
    whole = assemble([text])
    assert assemble(list(text)) == whole
    parsed = parse_reply(text)
    content, calls, indexes = whole
    assert calls == [(call["name"], call["arguments"]) for call in parsed.calls] and indexes == list(range(len(calls)))
    if parsed.well_formed:
        assert content == parsed.content
    else:
        assert "<tool_call>" in content  # the malformed block, as written


def test_text_that_may_open_a_call_is_held_back_until_it_is_known():
    assembler = Assembler(parse_tools=True)
    assert assembler.feed("Checking <tool").text == "Checking"
    assert assembler.feed('_call>\n{"name"').text == ""
    parts = assembler.feed(': "lookup_order", "arguments": {}}</tool_call> now')
    assert [call["function"]["name"] for call in parts.calls] == [
        "lookup_order"
    ] and parts.text == "  now"  # the space held before the call, and the one after


def test_without_tools_the_text_passes_through_as_written():
    assert assemble([" a <tool_call>{}</tool_call> "], parse_tools=False) == (" a <tool_call>{}</tool_call> ", [], [])


def test_stop_strings_cut_the_text_across_pieces():
    stops = _StopFilter(("STOP", "\n\n"))
    assert stops.push("Hello ST") == ("Hello ", False)
    assert stops.push("OP there") == ("", True)
    stops = _StopFilter(("STOP",))
    assert stops.push("a ST") == ("a ", False) and stops.push("ar") == ("STar", False) and stops.flush() == ""
