"""Personal data and secrets out of the training rows: what a fine-tuned model must never learn to say.

Every string a model sees is redacted: each message's content (system, user, assistant, tool
results) and every string inside tool-call arguments, however deeply nested, with the rules of
`agent_tracer.masking` (the same ones the capture side can apply before storage): a typed
placeholder ([EMAIL], [CARD], …) for each find, so the model still learns that an email address
goes there. `redaction` builds the built-in rules and a user's own ("NAME=REGEX", as
`agent-tracer dataset … --redact-rule` takes them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from agent_tracer.masking import (  # noqa: F401 (the rules' names, as the dataset side has always had them)
    CARD,
    EMAIL,
    IPV4,
    PHONE,
    RedactionConfig,
    Redactor,
    RegexRule,
    default_redactors,
    luhn_valid,
    parse_rules,
)
from agent_tracer.messages import Message
from agent_tracer.redact import map_strings
from trainer.data.rows import Example
from trainer.data.summary import Step

_CACHED_TEXTS = 256
_CACHED_LENGTH = 16_384


def redaction(rules: Sequence[str], counts: Step) -> Redaction:
    """The built-in rules, then the user's own (`parse_rules`), counted into `counts`."""
    return Redaction([*default_redactors(), *parse_rules(rules)], counts)


class Redaction:
    """Streams examples with every redactor applied to every string a model sees; an example
    nothing was found in passes through as the same object.

    `counts.reasons` holds the replacements per rule name and "rows changed". The last
    `_CACHED_TEXTS` distinct texts (of at most `_CACHED_LENGTH` characters, so the cache stays a
    few MB) and what was found in them are remembered: an agent's system prompt, often the
    longest text of an example, is the same in every one of them."""

    def __init__(self, redactors: Sequence[Redactor] | None = None, counts: Step | None = None) -> None:
        self.redactors = tuple(redactors) if redactors is not None else tuple(default_redactors())
        self.counts = counts if counts is not None else Step("redact")
        self._replaced = 0
        self._cached = functools.lru_cache(maxsize=_CACHED_TEXTS)(self._apply_all)

    def __call__(self, examples: Iterable[Example]) -> Iterator[Example]:
        for example in examples:
            self.counts.rows_in += 1
            self.counts.rows_out += 1
            yield self.example(example)

    def example(self, example: Example) -> Example:
        before = self._replaced
        messages = [self._message(message) for message in example.messages]
        if self._replaced == before:
            return example
        self.counts.reasons["rows changed"] += 1
        return replace(example, messages=messages)

    def text(self, text: str) -> str:
        if not text:
            return text
        text, found = (self._cached if len(text) <= _CACHED_LENGTH else self._apply_all)(text)
        for name, replaced in found:
            self.counts.reasons[name] += replaced
            self._replaced += replaced
        return text

    def _apply_all(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        found = []
        for redactor in self.redactors:
            text, replaced = redactor(text)
            if replaced:
                found.append((redactor.name, replaced))
        return text, tuple(found)

    def _message(self, message: Message) -> Message:
        redacted = {**message, "content": self.text(message["content"])}
        if message.get("tool_calls"):
            redacted["tool_calls"] = [
                {
                    **call,
                    "function": {
                        **call["function"],
                        "arguments": map_strings(call["function"]["arguments"], self.text),
                    },
                }
                for call in message["tool_calls"]
            ]
        return redacted
