"""Unused parameters: each tool an SFT example offers gets a few optional parameters borrowed from
the dataset's other tools, and the example's answer, unchanged, leaves them out.

Why: a small tuned model fills in optional parameters nobody asked for (BENCHMARKS.md, "Tools
padded with parameters nobody asks for"). The rows teach it *that* parameters may be left out, but
mostly on tools whose optional parameters the question plainly mentions or plainly does not; a
borrowed parameter is one the question never gives a value for, on a tool where the answer must
still be written, so leaving out what the user did not say is what the loss rewards.

The pool is the optional parameters of the tools of earlier examples, each name once, its schema
as that tool wrote it (description, type, enum, default). A tool is given `count` of them:
names it does not have, and whose words (split at `_`, `-` and camel case) the user's turns do not
contain, so a borrowed `unit` never lands on a question that says which unit. They go in at random
places among the tool's own, so their position does not give them away. The choice is seeded by
the example's trace, the same every build. The first examples, while the pool is still empty,
pass unchanged. An example the borrowed parameters take over the token limit is kept without them
(the truncation step falls back to `Example.plain`) rather than dropped.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterable, Iterator
from typing import Any

from agent_tracer.messages import user_text
from trainer.data.rows import Example
from trainer.data.summary import Step

POOL = 2_000
"""Distinct parameter names kept to borrow from (the first seen)."""
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


class UnusedParams:
    """Streams examples, adding `count` borrowed optional parameters to each tool they offer."""

    def __init__(self, count: int, seed: int = 0, counts: Step | None = None) -> None:
        self.count = count
        self.seed = seed
        self.counts = counts if counts is not None else Step("unused parameters")
        self._pool: dict[str, tuple[dict[str, Any], set[str]]] = {}
        """Parameter name → (its schema, the words of its name)."""

    def __call__(self, examples: Iterable[Example]) -> Iterator[Example]:
        for number, example in enumerate(examples):
            self.counts.rows_in += 1
            self.counts.rows_out += 1
            if not example.tools:
                yield example
                continue
            said = user_words(example.messages)
            pick = random.Random(f"{self.seed}:{example.trace_id}:{number}")
            tools = [self._borrowing(tool, said, pick) for tool in example.tools]
            self._learn(example.tools)
            if tools != example.tools:
                self.counts.reasons["rows given parameters"] += 1
                example = Example(example.messages, tools, example.trace_id, example.source, plain=example)
            yield example

    def _borrowing(self, tool: dict[str, Any], said: set[str], pick: random.Random) -> dict[str, Any]:
        schema = (tool.get("function") or {}).get("parameters")
        if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
            return tool
        own = schema["properties"]
        fits = [name for name, (_, named) in self._pool.items() if name not in own and not named & said]
        chosen = pick.sample(fits, min(self.count, len(fits)))
        if not chosen:
            return tool
        names = list(own)
        for name in chosen:
            names.insert(pick.randint(0, len(names)), name)
        self.counts.reasons["parameters added"] += len(chosen)
        tool = copy.deepcopy(tool)
        tool["function"]["parameters"]["properties"] = {
            name: own[name] if name in own else copy.deepcopy(self._pool[name][0]) for name in names
        }
        return tool

    def _learn(self, tools: list[dict[str, Any]]) -> None:
        for tool in tools:
            schema = (tool.get("function") or {}).get("parameters") or {}
            required = set(schema.get("required") or ())
            for name, spec in (schema.get("properties") or {}).items():
                if len(self._pool) >= POOL:
                    return
                if name not in required and isinstance(spec, dict) and name not in self._pool:
                    self._pool[name] = (spec, words(name))


def user_words(messages: Iterable[dict[str, Any]]) -> set[str]:
    """The words of the user's messages (`words`), their content parts read as text: a parameter
    whose name's words are among them is one the user talked about."""
    return words(user_text(list(messages)))


def words(text: str) -> set[str]:
    """The lower-cased words of `text`, split at non-letters and at camel case humps."""
    return {word.lower() for word in _WORD.findall(text)}
