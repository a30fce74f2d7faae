"""Preference pairs from two runs of the same or a similar task: where they part, which was better.

Two runs are aligned by their assistant turns: the first assistant turn at which they differ is
the decision that made one better, so the pair is the better run's context up to that turn (the
prompt), its turn there (chosen) and the worse run's turn at the same point (rejected). Runs whose
answers never differ make no pair. DPO (a successful against a failed run), reward rows from
ratings (a higher against a lower rated run) and from pairwise feedback all pair runs this way.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent_tracer.messages import Message, user_text
from trainer.data.negatives import canonical
from trainer.data.rows import Example, Preference


def diverge(better: Example, worse: Example) -> tuple[list[Message], Message, Message] | None:
    """(prompt, chosen turn, rejected turn) at the first assistant turn where the two differ, the
    prompt being the better run's messages before it; None when they never differ."""
    worse_turns = [m for m in worse.messages if m["role"] == "assistant"]
    ordinal = 0
    for position, message in enumerate(better.messages):
        if message["role"] != "assistant":
            continue
        if ordinal >= len(worse_turns):
            return None
        if _turn_key(message) != _turn_key(worse_turns[ordinal]):
            return better.messages[:position], message, worse_turns[ordinal]
        ordinal += 1
    return None


def preference(better: Example, worse: Example, source: str) -> Preference | None:
    """The pair the two runs make, or None when their answers never differ."""
    parted = diverge(better, worse)
    if parted is None:
        return None
    prompt, chosen, rejected = parted
    return Preference(prompt, [chosen], [rejected], better.tools, source=source, trace_id=better.trace_id)


class WordIndex:
    """Jaccard similarity of word sets (lower-cased), exact, through an inverted index: a query
    scores only the texts that share a word with it. Preference data pairs hundreds to thousands
    of runs, where exact is affordable and an estimate's misses would lose pairs."""

    def __init__(self) -> None:
        self._sizes: list[int] = []
        self._postings: dict[str, list[int]] = defaultdict(list)

    def add(self, text: str) -> int:
        """Index a text; returns its key (0, 1, 2, … in order of adding)."""
        key = len(self._sizes)
        words = set(_WORD.findall(text.lower()))
        self._sizes.append(len(words))
        for word in words:
            self._postings[word].append(key)
        return key

    def query(self, text: str) -> list[tuple[int, float]]:
        """(key, similarity) of every indexed text sharing a word with `text`."""
        words = set(_WORD.findall(text.lower()))
        shared: Counter[int] = Counter()
        for word in words:
            shared.update(self._postings.get(word, ()))
        return [(key, n / (len(words) + self._sizes[key] - n)) for key, n in shared.items()]


@dataclass
class Candidate:
    example: Example
    prompt: str
    """What similarity is measured on: `task_text`."""
    score: float
    """Higher is better: a rating, or 1 for a success and 0 for a failure."""


def match_pairs(
    better: Iterable[Candidate], worse: Iterable[Candidate], *, threshold: float, source: str, min_gap: float = 0.0
) -> Iterator[tuple[Preference | None, str]]:
    """Each worse run paired with the most similar better run of another trace (task similarity
    at least `threshold`, score higher, and by at least `min_gap`): yields (pair, "paired"), or
    (None, why not)."""
    pool = list(better)
    index = WordIndex()
    for candidate in pool:
        index.add(candidate.prompt)
    for loser in worse:
        found = [
            (similarity, key)
            for key, similarity in index.query(loser.prompt)
            if similarity >= threshold
            and pool[key].score > loser.score
            and pool[key].score - loser.score >= min_gap
            and pool[key].example.trace_id != loser.example.trace_id
        ]
        if not found:
            yield None, "no similar better run"
            continue
        _, key = max(found, key=lambda item: (item[0], pool[item[1]].score, -item[1]))
        pair = preference(pool[key].example, loser.example, source)
        yield (pair, "paired") if pair is not None else (None, "answers do not differ")


_WORD = re.compile(r"\w+")


def task_text(example: Example) -> str:
    """The text two runs are compared on: what the user asked (not the shared system prompt, not
    the tool results, which differ between a run that went right and one that went wrong)."""
    return user_text(example.messages)


def same_turn(one: Message, other: Message) -> bool:
    """Whether two assistant turns (in TRL's form) say the same: text, and tool calls by name and arguments."""
    return _turn_key(one) == _turn_key(other)


def _turn_key(message: Message) -> str:
    calls = [[c["function"]["name"], c["function"]["arguments"]] for c in message.get("tool_calls") or ()]
    return canonical([message["content"].strip(), calls])
