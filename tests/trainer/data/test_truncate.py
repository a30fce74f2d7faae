"""Token-aware truncation keeps the system prompt and the newest whole turns."""

from __future__ import annotations

import pytest

from trainer.data.rows import Example
from trainer.data.truncate import Truncator, split_turns

SYSTEM = {"role": "system", "content": "You answer questions about orders."}


def turn(n: int) -> list[dict]:
    call = {"type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": f"A-{n}"}}}
    return [
        {"role": "user", "content": f"What is the status of order A-{n}? " * 3},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "shipped " * 5, "name": "lookup_order"},
        {"role": "assistant", "content": f"Order A-{n} has shipped."},
    ]


def test_fitting_examples_pass_untouched_and_are_measured(tiny_tokenizer):
    example = Example([SYSTEM, *turn(1)], trace_id="t")
    truncator = Truncator(tiny_tokenizer, max_length=4096)
    kept, tokens = truncator(example)
    assert kept is example
    text = tiny_tokenizer.apply_chat_template(example.messages, tokenize=False)
    assert tokens == len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_oldest_whole_turns_go_first(tiny_tokenizer):
    example = Example([SYSTEM, *turn(1), *turn(2), *turn(3)], trace_id="t")
    measure = Truncator(tiny_tokenizer)
    last_two = measure.length([SYSTEM, *turn(2), *turn(3)], [])
    truncator = Truncator(tiny_tokenizer, max_length=last_two)
    kept, tokens = truncator(example)
    assert kept.messages == [SYSTEM, *turn(2), *turn(3)] and tokens == last_two
    assert kept.trace_id == "t" and truncator.truncated == 1

    kept, _ = Truncator(tiny_tokenizer, max_length=last_two - 1)(example)
    assert kept.messages == [SYSTEM, *turn(3)]  # never a call without its result, never a stray result


def test_an_example_whose_last_turn_does_not_fit_is_dropped(tiny_tokenizer):
    example = Example([SYSTEM, *turn(1), *turn(2)])
    truncator = Truncator(tiny_tokenizer, max_length=Truncator(tiny_tokenizer).length([SYSTEM, *turn(2)], []) - 1)
    kept, tokens = truncator(example)
    assert kept is None and tokens > truncator.max_length and truncator.too_long == 1


def test_turns_start_at_user_messages():
    system, turns = split_turns([SYSTEM, *turn(1), *turn(2)])
    assert system == [SYSTEM] and [t[0]["role"] for t in turns] == ["user", "user"] and len(turns[0]) == 4


def test_a_tiny_limit_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="at least 16"):
        Truncator(tiny_tokenizer, max_length=8)
