"""Rejected answers for DPO: synthetic corruptions on BFCL and hand-written examples, and wrong calls
written by the fake upstream on loopback, scripted per request, through the real `openai` SDK."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent_tracer.errors import ConfigError
from agent_tracer.loopback import free_port
from agent_tracer.testing import FakeUpstream, Reply
from trainer.data.llm_negatives import INSTRUCTION, LLMConfig, LLMStats, llm_negatives
from trainer.data.negatives import KINDS, SyntheticConfig, SyntheticStats, synthetic_negatives
from trainer.data.rows import Example, Preference

REPO = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------------------------------------
# Examples


def _tool(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": parameters}}


def _answer(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    tool_calls = [
        {"type": "function", "id": f"call_{i}", "function": {"name": name, "arguments": arguments}}
        for i, (name, arguments) in enumerate(calls)
    ]
    return {"role": "assistant", "content": "", "tool_calls": tool_calls}


UNIT = {"type": "string", "enum": ["celsius", "fahrenheit"]}
WEATHER = _tool(
    "get_weather",
    {"city": {"type": "string"}, "unit": UNIT, "days": {"type": "integer"}, "hourly": {"type": "boolean"}},
    ["city"],
)
TIME = _tool("get_time", {"city": {"type": "string"}, "timezone": {"type": "string"}}, ["city", "timezone"])
PING = _tool("ping", {}, [])


def weather_example(question: str = "What's the weather in Paris and London for the next 3 days?") -> Example:
    answer = _answer(
        ("get_weather", {"city": "Paris", "unit": "celsius", "days": 3, "hourly": False}),
        ("get_weather", {"city": "London", "unit": "celsius", "days": 3}),
    )
    return Example(
        [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": question}, answer],
        [WEATHER, TIME],
    )


def _bfcl_dir() -> Path:
    bfcl_eval = pytest.importorskip("bfcl_eval")
    return Path(bfcl_eval.__file__).parent / "data"


def _objects(schema: Any) -> Any:
    """BFCL's schemas say "dict" where JSON schema says "object"."""
    if isinstance(schema, dict):
        return {k: ("object" if k == "type" and v == "dict" else _objects(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_objects(item) for item in schema]
    return schema


def _first_acceptable(values: list[Any]) -> Any:
    """BFCL lists the acceptable values of each argument ("" where it may be left out)."""
    value = next(v for v in values if v != "")
    if isinstance(value, dict):  # a nested object lists acceptable values per key too
        return {k: _first_acceptable(v) for k, v in value.items() if any(x != "" for x in v)}
    return value


def bfcl_examples(name: str) -> list[Example]:
    data = _bfcl_dir()
    questions = [json.loads(line) for line in (data / name).read_text().splitlines()]
    truths = (data / "possible_answer" / name).read_text().splitlines()
    answers = {row["id"]: row["ground_truth"] for row in map(json.loads, truths)}
    examples = []
    for question in questions:
        calls = [
            (tool, {k: _first_acceptable(v) for k, v in arguments.items() if any(x != "" for x in v)})
            for call in answers[question["id"]]
            for tool, arguments in call.items()
        ]
        tools = [{"type": "function", "function": _objects(function)} for function in question["function"]]
        examples.append(Example([*question["question"][0], _answer(*calls)], tools, trace_id=question["id"]))
    return examples


@pytest.fixture(scope="module")
def bfcl() -> list[Example]:
    return bfcl_examples("BFCL_v4_simple_python.json") + bfcl_examples("BFCL_v4_parallel_multiple.json")


# ------------------------------------------------------------------------------------------------
# What each kind makes


_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "float": (int, float),
    "boolean": bool,
    "array": (list, tuple),
    "tuple": (list, tuple),
    "object": dict,
}


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), "null"
    )


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    if schema.get("enum"):
        return value in schema["enum"]
    wanted = _TYPES.get(schema.get("type"))
    if wanted is None:
        return True
    return isinstance(value, wanted) and not (isinstance(value, bool) and schema.get("type") != "boolean")


def check_preference(example: Example, preference: Preference) -> None:
    """The rejected answer is the chosen one with one call wrong in the way its kind says."""
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in example.tools}
    assert preference.source == "synthetic" and preference.kind in KINDS
    assert preference.prompt == example.messages[:-1]
    assert preference.chosen == [example.messages[-1]] and preference.tools == example.tools
    (chosen,), (rejected,) = preference.chosen, preference.rejected
    assert len(rejected["tool_calls"]) == len(chosen["tool_calls"])
    changed = [i for i, (a, b) in enumerate(zip(chosen["tool_calls"], rejected["tool_calls"])) if a != b]
    assert len(changed) == 1, (preference.kind, chosen, rejected)
    good, bad = chosen["tool_calls"][changed[0]], rejected["tool_calls"][changed[0]]
    assert bad["id"] == good["id"]
    good, bad = good["function"], bad["function"]
    parameters = schemas.get(good["name"], {})
    if preference.kind == "wrong_tool":
        assert bad["name"] in schemas and bad["name"] != good["name"]
        target = schemas[bad["name"]]
        assert set(target.get("required", ())) <= set(bad["arguments"])
        assert all(_fits(v, target["properties"][k]) for k, v in bad["arguments"].items())
    elif preference.kind == "invented_tool":
        assert bad["name"] not in schemas and bad["arguments"] == good["arguments"]
    elif preference.kind == "missing_argument":
        assert bad["name"] == good["name"]
        (dropped,) = set(good["arguments"]) - set(bad["arguments"])
        assert dropped in parameters["required"]
        assert bad["arguments"] == {k: v for k, v in good["arguments"].items() if k != dropped}
    elif preference.kind == "wrong_type":
        assert bad["name"] == good["name"] and bad["arguments"].keys() == good["arguments"].keys()
        retyped = [k for k in good["arguments"] if _json_type(good["arguments"][k]) != _json_type(bad["arguments"][k])]
        assert len(retyped) == 1
        assert [k for k in good["arguments"] if good["arguments"][k] != bad["arguments"][k]] == retyped
    elif preference.kind == "wrong_argument":
        assert bad["name"] == good["name"] and bad["arguments"].keys() == good["arguments"].keys()
        (key,) = [k for k in good["arguments"] if json.dumps(good["arguments"][k]) != json.dumps(bad["arguments"][k])]
        assert _json_type(good["arguments"][key]) == _json_type(bad["arguments"][key])
        if key in parameters.get("properties", {}) and parameters["properties"][key].get("enum"):
            assert bad["arguments"][key] in parameters["properties"][key]["enum"]
    elif preference.kind == "unasked_argument":
        assert bad["name"] == good["name"]
        (added,) = set(bad["arguments"]) - set(good["arguments"])
        assert {k: v for k, v in bad["arguments"].items() if k != added} == good["arguments"]
        schema = parameters["properties"][added]
        assert added not in parameters.get("required", ())
        assert _fits(bad["arguments"][added], schema) and bad["arguments"][added] != schema.get("default")
    elif preference.kind == "malformed_json":
        assert bad["name"] == good["name"] and isinstance(bad["arguments"], str)
        with pytest.raises(ValueError):
            json.loads(bad["arguments"])
        # Nor does the whole call as the chat template renders it.
        with pytest.raises(ValueError):
            json.loads('{"name": "%s", "arguments": %s}' % (bad["name"], bad["arguments"]))


def test_every_kind_on_bfcl_does_what_it_says(bfcl: list[Example]) -> None:
    stats = SyntheticStats()
    by_id = {example.trace_id: example for example in bfcl}
    preferences = list(synthetic_negatives(bfcl, SyntheticConfig(per_example=len(KINDS)), stats))
    for preference in preferences:
        check_preference(by_id[preference.trace_id], preference)
    assert stats.examples == len(bfcl) == 600
    assert set(stats.made) == set(KINDS)
    assert sum(stats.made.values()) == len(preferences)
    # Every simple_python example offers one tool: no wrong tool there, and each is counted.
    assert stats.skipped[("wrong_tool", "only one tool is offered")] == 400
    assert stats.made["wrong_tool"] == 200
    assert stats.made["malformed_json"] == stats.made["invented_tool"] == 600
    # Rows go into a `datasets.Dataset` of DPO rows as they are.
    from datasets import Dataset

    from trainer.data.rows import dataset_features

    rows = Dataset.from_list([p.row() for p in preferences[:50]], features=dataset_features("dpo"))
    assert rows[0]["kind"] == preferences[0].kind


def test_default_mix_is_two_kinds_per_example_and_balanced(bfcl: list[Example]) -> None:
    stats = SyntheticStats()
    preferences = list(synthetic_negatives(bfcl, SyntheticConfig(seed=7), stats))
    assert len(preferences) == 2 * len(bfcl)
    per_example = Counter(p.trace_id for p in preferences)
    assert set(per_example.values()) == {2}
    assert all(len({p.kind for p in preferences if p.trace_id == t}) == 2 for t in list(per_example)[:50])
    # wrong_tool applies to a third of the examples, unasked_argument to the few whose answers here
    # leave a parameter out (bfcl_examples gives every one BFCL has a value for); the others each
    # get a fair share.
    for kind in KINDS:
        assert stats.made[kind] > {"wrong_tool": 40, "unasked_argument": 5}.get(kind, 150), stats.made


def test_hand_written_parallel_calls() -> None:
    example = weather_example()
    stats = SyntheticStats()
    kinds = Counter()
    for seed in range(20):
        for preference in synthetic_negatives([example], SyntheticConfig(per_example=len(KINDS), seed=seed), stats):
            check_preference(example, preference)
            kinds[preference.kind] += 1
    assert kinds == {kind: 20 for kind in KINDS}
    assert not stats.skipped and not stats.unusable


def test_wrong_argument_values_are_plausible() -> None:
    stats = SyntheticStats()
    seen: dict[str, set[str]] = {}
    for seed in range(40):
        config = SyntheticConfig(kinds=("wrong_argument",), seed=seed)
        (preference,) = synthetic_negatives([weather_example()], config, stats)
        chosen, rejected = preference.chosen[0]["tool_calls"], preference.rejected[0]["tool_calls"]
        for good, bad in zip(chosen, rejected):
            for key, value in bad["function"]["arguments"].items():
                if value != good["function"]["arguments"][key]:
                    seen.setdefault(key, set()).add(json.dumps(value))
    assert seen["unit"] == {'"fahrenheit"'}  # the enum's other member
    assert seen["hourly"] == {"true"}  # flipped
    assert seen["days"] <= {"2", "4", "6", "30"}  # shifted
    # A city from the sibling call or a word of the request: never gibberish.
    assert seen["city"] and {json.loads(c) for c in seen["city"]} <= {"London", "Paris", "Weather", "Next", "Days"}


def test_unasked_arguments_are_filled_with_anything_but_their_default() -> None:
    flight = _tool(
        "book_flight",
        {
            "origin": {"type": "string"},
            "cabin": {"type": "string", "enum": ["economy", "business"], "default": "economy"},
            "bags": {"type": "integer", "default": 1},
            "refundable": {"type": "boolean", "default": False},
            "note": {"type": "string"},
            "stops": {"type": "array", "items": {"type": "string"}},
        },
        ["origin"],
    )
    question = {"role": "user", "content": "Book me a flight from London to Paris."}
    example = Example([question, _answer(("book_flight", {"origin": "London"}))], [flight])
    seen: dict[str, set[str]] = {}
    for seed in range(40):
        (preference,) = synthetic_negatives([example], SyntheticConfig(kinds=("unasked_argument",), seed=seed))
        check_preference(example, preference)
        ((key, value),) = [
            (k, v) for k, v in preference.rejected[0]["tool_calls"][0]["function"]["arguments"].items() if k != "origin"
        ]
        seen.setdefault(key, set()).add(json.dumps(value))
    assert seen["cabin"] == {'"business"'} and seen["refundable"] == {"true"}
    assert seen["bags"] <= {"2", "10"} and seen["note"] <= {'"London"', '"Paris"'}
    assert "stops" not in seen  # no telling what a list would hold
    # A parameter the question names was asked about, even where the answer leaves it out.
    named = Example(
        [
            {"role": "user", "content": "Book me a flight from London, any cabin, no note."},
            _answer(("book_flight", {"origin": "London", "stops": []})),
        ],
        [flight],
    )
    assert {
        next(iter(set(p.rejected[0]["tool_calls"][0]["function"]["arguments"]) - {"origin", "stops"}))
        for seed in range(20)
        for p in synthetic_negatives([named], SyntheticConfig(kinds=("unasked_argument",), seed=seed))
    } == {"bags", "refundable"}
    asked = Example(
        [question, _answer(("book_flight", {"origin": "London", "stops": []}))],
        [_tool("book_flight", {"origin": {"type": "string"}, "stops": {"type": "array"}}, ["origin"])],
    )
    stats = SyntheticStats()
    assert list(synthetic_negatives([asked], SyntheticConfig(kinds=("unasked_argument",)), stats)) == []
    assert stats.skipped == {("unasked_argument", "no optional parameter the user does not name is left out"): 1}


def test_names_are_mixed_up_and_lone_words_left_alone() -> None:
    flight = _tool(
        "book_flight",
        {"origin": {"type": "string"}, "destination": {"type": "string"}, "cabin": {"type": "string"}},
        ["origin", "destination"],
    )
    question = {"role": "user", "content": "Book me a flight from London to Paris, economy please."}
    example = Example(
        [question, _answer(("book_flight", {"origin": "London", "destination": "Paris", "cabin": "economy"}))], [flight]
    )
    changed = set()
    for seed in range(20):
        (preference,) = synthetic_negatives([example], SyntheticConfig(kinds=("wrong_argument",), seed=seed))
        arguments = preference.rejected[0]["tool_calls"][0]["function"]["arguments"]
        changed.add(json.dumps(arguments, sort_keys=True))
    assert changed == {
        json.dumps({"cabin": "economy", "destination": "Paris", "origin": "Paris"}, sort_keys=True),
        json.dumps({"cabin": "economy", "destination": "London", "origin": "London"}, sort_keys=True),
    }
    lone = Example([question, _answer(("book_flight", {"cabin": "economy"}))], [flight])
    stats = SyntheticStats()
    assert list(synthetic_negatives([lone], SyntheticConfig(kinds=("wrong_argument",)), stats)) == []
    assert stats.skipped == {("wrong_argument", "no argument has another plausible value"): 1}


def test_kinds_that_cannot_apply_are_skipped_and_counted() -> None:
    ping = Example([{"role": "user", "content": "Is it up?"}, _answer(("ping", {}))], [PING])
    text = Example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], [PING])
    stats = SyntheticStats()
    preferences = list(synthetic_negatives([ping, text], SyntheticConfig(per_example=len(KINDS)), stats))
    assert sorted(p.kind for p in preferences) == ["invented_tool", "malformed_json"]
    for preference in preferences:
        check_preference(ping, preference)
    assert stats.skipped == {
        ("wrong_tool", "only one tool is offered"): 1,
        ("wrong_argument", "the call has no arguments"): 1,
        ("missing_argument", "no required argument is given"): 1,
        ("wrong_type", "the call has no arguments"): 1,
        ("unasked_argument", "no optional parameter the user does not name is left out"): 1,
    }
    assert stats.unusable == {"does not end with a tool call": 1}
    assert stats.examples == 2 and stats.made == {"invented_tool": 1, "malformed_json": 1}


def test_a_skipped_kind_gives_way_to_the_next() -> None:
    ping = Example([{"role": "user", "content": "Is it up?"}, _answer(("ping", {}))], [PING])
    for seed in range(10):
        assert len(list(synthetic_negatives([ping], SyntheticConfig(seed=seed)))) == 2


def test_invented_names_never_collide() -> None:
    # Every variant the name would give but one is an offered tool.
    taken = [
        "fetch_weather",
        "find_weather",
        "search_weather",
        "lookup_weather",
        "retrieve_weather",
        "calculate_weather",
        "compute_weather",
        "create_weather",
        "list_weather",
        "getWeather",
    ]
    tools = [WEATHER, *(_tool(name, {}, []) for name in taken)]
    example = Example([{"role": "user", "content": "Weather?"}, _answer(("get_weather", {"city": "Paris"}))], tools)
    names = set()
    for seed in range(10):
        (preference,) = synthetic_negatives([example], SyntheticConfig(kinds=("invented_tool",), seed=seed))
        names.add(preference.rejected[0]["tool_calls"][0]["function"]["name"])
    assert names == {"get_weathers"}


def test_unknown_kinds_and_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="wrong_colour"):
        SyntheticConfig(kinds=("wrong_tool", "wrong_colour"))
    with pytest.raises(ConfigError, match="per_example"):
        SyntheticConfig(per_example=0)


# ------------------------------------------------------------------------------------------------
# Determinism


def _rows(preferences: Any) -> list[str]:
    return [json.dumps(p.row(), sort_keys=True) for p in preferences]


def test_same_seed_same_rows_other_seed_other_choices(bfcl: list[Example]) -> None:
    batch = bfcl[::10]
    first = _rows(synthetic_negatives(batch, SyntheticConfig(seed=1)))
    assert first == _rows(synthetic_negatives(batch, SyntheticConfig(seed=1)))
    other = _rows(synthetic_negatives(batch, SyntheticConfig(seed=2)))
    assert len(other) == len(first) and len(set(first) - set(other)) > len(first) // 3


def test_rows_do_not_depend_on_order(bfcl: list[Example]) -> None:
    batch = bfcl[::10]
    assert sorted(_rows(synthetic_negatives(batch))) == sorted(_rows(synthetic_negatives(batch[::-1])))


_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_negatives import bfcl_examples, weather_example
from trainer.data.negatives import SyntheticConfig, synthetic_negatives
examples = bfcl_examples("BFCL_v4_parallel_multiple.json")[:40] + [weather_example()]
for p in synthetic_negatives(examples, SyntheticConfig(seed=3, per_example=3)):
    print(json.dumps(p.row(), sort_keys=True))
"""


def test_rows_do_not_depend_on_hash_randomisation() -> None:
    script = _SCRIPT.format(tests=str(Path(__file__).parent))
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 41 * 3


# ------------------------------------------------------------------------------------------------
# Negatives written by an LLM


WRONG = {"name": "get_weather", "arguments": {"city": "Lyon", "unit": "celsius"}}
SCRIPT: dict[str, Reply] = {
    "good": Reply(json.dumps(WRONG)),
    "fenced": Reply(
        "Here is a subtle mistake:\n```json\n"
        '{"name": "get_time", "arguments": {"city": "Paris", "timezone": "UTC"}}\n```\n'
        "It asks for the time, not the weather."
    ),
    "string_arguments": Reply(
        json.dumps({"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "fahrenheit"})})
    ),
    "garbage": Reply("I'm sorry, I cannot help with making mistakes."),
    "same": Reply('{"arguments": {"unit": "celsius", "city": "Paris", "days": null}, "name": "get_weather"}'),
    "error": Reply(status=500, error="boom"),
    "html": Reply(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    "slow": Reply(json.dumps(WRONG), delay=0.8),
}


def _case(body: dict[str, Any]) -> str:
    """The case a request names in its last message as "[case=…]"."""
    return re.search(r"\[case=(\w+)\]", body["messages"][-1]["content"]).group(1)


@pytest.fixture
def server() -> Any:
    """Answers chat completions with `SCRIPT[case]`."""
    with FakeUpstream(reply=lambda body: SCRIPT[_case(body)]) as server:
        yield server


def case_example(case: str) -> Example:
    answer = _answer(("get_weather", {"city": "Paris", "unit": "celsius"}))
    return Example(
        [{"role": "user", "content": f"Weather in Paris, in celsius? [case={case}]"}, answer],
        [WEATHER, TIME],
        trace_id=case,
    )


def test_llm_answers_become_preferences_or_counted_failures(
    server: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_WRITER_KEY", "sk-test")
    cases = ["good", "fenced", "garbage", "same", "error", "string_arguments", "html", "slow"]
    config = LLMConfig(
        base_url=server.openai_base_url,
        model="wrong-writer",
        api_key_env="WRONG_WRITER_KEY",
        temperature=0.3,
        concurrency=3,
        timeout=0.5,
        max_retries=1,
    )
    stats = LLMStats()
    done = []
    examples = [case_example(case) for case in cases]
    preferences = list(llm_negatives(examples, config, stats, progress=done.append))

    assert [p.trace_id for p in preferences] == ["good", "fenced", "string_arguments"]  # input order
    by_case = {p.trace_id: p for p in preferences}
    for preference in preferences:
        example = examples[cases.index(preference.trace_id)]
        assert preference.source == preference.kind == "llm"
        assert preference.prompt == example.messages[:-1] and preference.chosen == [example.messages[-1]]
        assert preference.tools == example.tools
        assert preference.rejected[0]["tool_calls"][0]["id"] == "call_0"
    assert by_case["good"].rejected[0]["tool_calls"][0]["function"] == WRONG
    assert by_case["fenced"].rejected[0]["tool_calls"][0]["function"] == {
        "name": "get_time",
        "arguments": {"city": "Paris", "timezone": "UTC"},
    }
    assert by_case["string_arguments"].rejected[0]["tool_calls"][0]["function"]["arguments"] == {
        "city": "Paris",
        "unit": "fahrenheit",
    }

    assert stats.examples == len(cases) and stats.made == 3 and sum(done) == len(cases)
    assert stats.failed == {
        "not JSON": 1,
        "same as the chosen call": 1,
        "HTTP 500": 1,
        "not a chat completion": 1,
        "timeout": 1,
    }
    asked = Counter(_case(request["json"]) for request in server.requests)
    assert asked["error"] == asked["slow"] == 2  # the SDK retried once
    body = next(request["json"] for request in server.requests if _case(request["json"]) == "good")
    assert body["model"] == "wrong-writer" and body["temperature"] == 0.3
    assert body["messages"][0] == {"role": "system", "content": INSTRUCTION}
    assert json.dumps(WEATHER) in body["messages"][1]["content"]
    correct = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
    assert correct in body["messages"][1]["content"]


def test_llm_replaces_the_one_parallel_call_it_names(server: FakeUpstream) -> None:
    example = weather_example("Weather in Paris and London for 3 days? [case=good]")
    config = LLMConfig(base_url=server.openai_base_url, model="m", api_key_env=None, max_retries=0)
    seen = set()
    for seed in range(8):
        config.seed = seed
        (preference,) = llm_negatives([example], config)
        body = server.requests[-1]["json"]
        named = int(re.search(r"take the place of call (\d+) only", body["messages"][1]["content"]).group(1)) - 1
        chosen, rejected = preference.chosen[0]["tool_calls"], preference.rejected[0]["tool_calls"]
        assert [i for i in range(2) if chosen[i] != rejected[i]] == [named]
        assert rejected[named]["function"] == WRONG
        seen.add(named)
    assert seen == {0, 1}


def test_an_endpoint_that_is_down_does_not_stop_the_run() -> None:
    port = free_port()  # nothing listens there
    config = LLMConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=None, max_retries=0, concurrency=2
    )
    stats = LLMStats()
    text = Example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    examples = [case_example("good") for _ in range(5)] + [text]
    assert list(llm_negatives(examples, config, stats)) == []
    assert stats.failed == {"connection error": 5, "does not end with a tool call": 1} and stats.examples == 6


def test_a_missing_api_key_fails_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        llm_negatives([], config)
