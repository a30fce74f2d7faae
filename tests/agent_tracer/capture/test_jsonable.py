"""`records.jsonable`: its copy of plain JSON data is what the JSON round trip gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_tracer.records import MAX_VALUE_CHARS, jsonable


def _round_trip(value: Any) -> Any:
    text = json.dumps(value, default=repr, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"… [{len(text) - MAX_VALUE_CHARS} more characters]"
    return json.loads(text)


class _Odd:
    def __repr__(self) -> str:
        return "<odd>"


@pytest.mark.parametrize(
    "value",
    [
        {"city": "Paris", "days": 3, "metric": True, "ratio": 0.5, "none": None},
        [1, "two", (3, 4), {"five": [6]}],
        ("a", "b"),
        {},
        [],
        {"nested": {"deeper": {"text": 'é ☃ "quoted" \n'}}},
        {1: "int key", "s": "str key"},
        {"object": _Odd()},
        {"big": 2**80},
        {"long": "x" * 20_000},
        ["y" * 10_000] * 3,
        {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["bottom"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
    ],
)
def test_jsonable_equals_the_round_trip(value: Any) -> None:
    copied = jsonable(value)
    assert copied == _round_trip(value)
    if isinstance(value, dict | list) and isinstance(copied, dict | list):
        assert copied is not value  # a copy: the caller may change its value afterwards
