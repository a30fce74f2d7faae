"""Token-aware truncation: make an example fit the target model's context as the trainer will see it.

Length is measured the way training tokenizes: the target model's tokenizer with its chat template
(or the built-in tool-calling one, see `trainer.chat_template`), tools included. An example that is
too long keeps its system prompt and drops its oldest turns: whole turns, each from a user message
up to the next one, so an assistant's tool call is never separated from its result and the
conversation still opens with a user turn. The last turn holds the answer being trained; an
example whose last turn alone does not fit is dropped (counted), since cutting inside it would
train on a call without its context or an answer without its question. Every example is measured,
so the summary's token-length percentiles are the trainer's.
"""

from __future__ import annotations

from typing import Any

from trainer.data.rows import Example


class Truncator:
    """Callable on an `Example`: (the example, its tokens) when it fits in `max_length` tokens, a
    shorter copy without its oldest turns, or (None, tokens) when even its last turn is too long.
    Without `max_length` it only measures."""

    def __init__(self, tokenizer: Any, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 16:
            raise ValueError(f"max_length must be at least 16 tokens, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncated = 0
        self.too_long = 0

    def length(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """Tokens of the conversation rendered with the chat template, tools included."""
        text = self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, example: Example) -> tuple[Example | None, int]:
        tokens = self.length(example.messages, example.tools)
        if self.max_length is None or tokens <= self.max_length:
            return example, tokens
        system, turns = split_turns(example.messages)
        # Keep the most recent turns: the fewest dropped that fits (length only grows with turns kept).
        low, high = 1, len(turns) - 1  # drop at least one turn, at most all but the last
        best: tuple[list[dict[str, Any]], int] | None = None
        while low <= high:
            dropped = (low + high) // 2
            messages = system + [m for turn in turns[dropped:] for m in turn]
            length = self.length(messages, example.tools)
            if length <= self.max_length:
                best, high = (messages, length), dropped - 1
            else:
                low = dropped + 1
        if best is None:
            self.too_long += 1
            return None, tokens
        self.truncated += 1
        return Example(best[0], example.tools, example.trace_id, example.source), best[1]


def split_turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The leading system messages, and the rest cut into turns, each starting at a user message
    (the first one at whatever comes first)."""
    start = 0
    while start < len(messages) and messages[start]["role"] == "system":
        start += 1
    turns: list[list[dict[str, Any]]] = []
    for message in messages[start:]:
        if message["role"] == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return messages[:start], turns
