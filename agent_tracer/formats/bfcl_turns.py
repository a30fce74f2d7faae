"""BFCL's multi-turn categories as single-turn examples: one per turn whose ground truth is one call
that the turn's own words fully give.

A multi-turn question (`multi_turn_base` and its variants) is a conversation with stateful APIs (a
file system, a trading bot, a travel agency…): each turn is a user message, and its ground truth
is the list of Python calls that carry it out (`mv(source='a.txt', destination='temp')`). Replaying
the conversation needs BFCL's executable APIs; what can be taken as it stands is the turn that
needs one call and says every value of it. Those turns are plain single-turn tool-calling questions,
in users' words, with values to copy out of longer text (tweets, messages, addresses, file names):
the kind of data the single-turn non-live categories have little of.

Which turns become examples:
- the ground truth is exactly one call, `name(arg=literal, …)` (positional arguments, which do not
  say their parameter, and computed values are skipped, as in the exec categories);
- every value is in the turn's text: each string (and each string in a list or dict) appears in it,
  case and runs of spaces aside, and each number appears as a number. A value from an earlier call's
  result (an order id, a file the conversation found) would teach a model to invent values, so
  that turn is skipped; a boolean flag is a reading of the request and always kept;
- the called function is offered at that turn (miss_func withholds some until a later turn).

Tools: the called function and up to `OTHERS` more from the conversation's API classes, chosen and
ordered by the turn's id (the same on every import), as BFCL's `multiple` category offers a few.
All of a conversation's functions run to 3,000-7,000 tokens of schema (SmolLM2's tokenizer), over a small model's
training length, where they would be cut. Each turn is counted: `skipped_turns` in the notes.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from agent_tracer.errors import CodecError, ConfigError
from agent_tracer.formats.bfcl import FORMAT, bfcl_tool, python_call
from agent_tracer.formats.examples import Example, tool_call
from agent_tracer.formats.imports import ExampleReader, ImportOptions

FUNCTION_DOCS = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}
"""API class → its function docs in bfcl_eval's `multi_turn_func_doc/` (bfcl_eval's own mapping)."""
OTHERS = 3
"""Functions offered besides the called one."""

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class TurnReader(ExampleReader):
    """The usable turns of a multi-turn category's conversations; `notes()` also counts the turns
    skipped."""

    def __init__(self, path: Path, options: ImportOptions, category: str, answers: dict[str, tuple[str, Any]]) -> None:
        super().__init__(path, self._examples, options)
        self.category = category
        self.answers = answers
        beside = [
            folder / "multi_turn_func_doc" for folder in list(path.parents)[:3]
        ]  # data/, or from unused_datasets/question/
        self.docs = next((folder for folder in beside if folder.is_dir()), beside[0])
        self.functions: dict[str, list[dict[str, Any]]] = {}
        self.skipped_turns = 0
        self.held_out = 0  # no multi-turn category is live: nothing is kept for evaluation only

    def _examples(self, item: Any, number: int, line: str) -> list[Example]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("question"), list)
        ):
            raise CodecError("not a BFCL multi-turn question (an object with an id and a list of turns)")
        question_id = item["id"]
        if question_id not in self.answers:
            raise CodecError(f"no ground truth for {question_id!r} in the answer file")
        _, truth = self.answers[question_id]
        if not isinstance(truth, list) or len(truth) != len(item["question"]):
            raise CodecError(f"{question_id}: the ground truth does not have one list of calls per turn")
        offered = [doc for name in item.get("involved_classes") or [] for doc in self._docs(name)]
        excluded = set(item.get("excluded_function") or [])
        withheld = item.get("missed_function") or {}
        examples = []
        for turn, (messages, calls) in enumerate(zip(item["question"], truth)):
            later = {name for at, names in withheld.items() if int(at) > turn for name in names}
            functions = [doc for doc in offered if doc["name"] not in excluded | later]
            answer = self._answer(messages, calls, functions)
            if answer is None:
                self.skipped_turns += 1
                continue
            called, arguments = answer
            turn_id = f"{question_id}_turn_{turn}"
            chooser = random.Random(turn_id)
            others = [doc for doc in functions if doc is not called]
            tools = [called, *chooser.sample(others, min(OTHERS, len(others)))]
            chooser.shuffle(tools)
            examples.append(
                Example(
                    key=f"{FORMAT}:{turn_id}",
                    messages=[
                        messages[0],
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [tool_call("call_0", called["name"], arguments)],
                        },
                    ],
                    tools=[bfcl_tool({key: value for key, value in doc.items() if key != "response"}) for doc in tools],
                    name=f"{FORMAT}:{self.category}",
                    tags=[FORMAT, self.category],
                    meta={
                        "format": FORMAT,
                        "id": turn_id,
                        "category": self.category,
                        "file": self.path.name,
                        "line": number,
                        "turn": turn,
                    },
                    raw_request=json.dumps(messages, ensure_ascii=False),
                    raw_response=json.dumps(
                        {"id": turn_id, "ground_truth": calls}, ensure_ascii=False
                    ),  # an answer line
                )
            )
        return examples

    @staticmethod
    def _answer(
        messages: Any, calls: Any, functions: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The turn's one call as (the called function's doc, arguments), or None when the turn
        cannot stand alone."""
        if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict):
            return None
        text = messages[0].get("content")
        if messages[0].get("role") != "user" or not isinstance(text, str):
            return None
        if not isinstance(calls, list) or len(calls) != 1 or not isinstance(calls[0], str):
            return None
        try:
            ((name, params),) = python_call(calls[0]).items()
        except CodecError:
            return None
        arguments = {param: values[0] for param, values in params.items()}
        called = next((doc for doc in functions if doc["name"] == name), None)
        if called is None or not said(arguments.values(), text):
            return None
        return called, arguments

    def _docs(self, api: str) -> list[dict[str, Any]]:
        if api not in self.functions:
            if api not in FUNCTION_DOCS:
                raise CodecError(f"an API class with no function docs: {api!r}")
            path = self.docs / FUNCTION_DOCS[api]
            if not path.is_file():
                raise ConfigError(f"no function docs for BFCL's {api}: {path} does not exist")
            with open(path, encoding="utf-8") as handle:
                try:
                    docs = [json.loads(line) for line in handle if line.strip()]
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}: not JSON lines ({exc})") from None
            if not all(isinstance(doc, dict) and isinstance(doc.get("name"), str) for doc in docs):
                raise ConfigError(f"{path}: a function doc without a name")
            self.functions[api] = docs
        return self.functions[api]

    def notes(self) -> dict[str, Any]:
        return {
            **super().notes(),
            "category": self.category,
            "held_out": self.held_out,
            "skipped_turns": self.skipped_turns,
        }

    def remarks(self) -> list[str]:
        return [*super().remarks(), f"skipped {self.skipped_turns} turns that are not one call their words give"]


def said(values: Any, text: str) -> bool:
    """Does `text` give every value: each string in it (case and runs of spaces aside), each number
    as a number, recursively into lists and dicts? Booleans and None always pass."""
    words = " ".join(text.split()).lower()
    numbers = {float(found) for found in _NUMBER.findall(text.replace(",", ""))}

    def given(value: Any) -> bool:
        if value is None or isinstance(value, bool):
            return True
        if isinstance(value, str):
            return " ".join(value.split()).lower() in words
        if isinstance(value, (int, float)):
            return float(value) in numbers
        if isinstance(value, (list, tuple)):
            return all(given(item) for item in value)
        if isinstance(value, dict):
            return all(given(item) for item in value.values())
        return False

    return all(given(value) for value in values)
