"""Borrowed optional parameters: added to the tools a row offers, never to its answer, never ones
the user's words name; seeded, counted, and on from `agent-tracer dataset sft --unused-params`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.formats.bfcl import open_bfcl
from agent_tracer.formats.imports import ImportOptions
from agent_tracer.store import TraceStore
from trainer.data.rows import Example
from trainer.data.select import Selection
from trainer.data.sft import SFTConfig, build_sft
from trainer.data.truncate import Truncator
from trainer.data.unused_params import UnusedParams, words


def tool(name: str, required: dict, optional: dict | None = None) -> dict:
    properties = {**required, **(optional or {})}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name}.",
            "parameters": {"type": "object", "properties": properties, "required": list(required)},
        },
    }


def row(question: str, tools: list[dict], call: dict | None, trace: str) -> Example:
    answer = (
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]}
        if call
        else {"role": "assistant", "content": "No tool fits."}
    )
    return Example([{"role": "user", "content": question}, answer], tools, trace_id=trace)


STRING = {"type": "string", "description": "A text."}
WEATHER = tool(
    "get_weather",
    {"city": STRING},
    {
        "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
        "include_forecast": {"type": "boolean", "default": False},
    },
)
PLAY = tool(
    "play_song",
    {"query": STRING},
    {"deviceId": {"type": "string", "description": "Where to play."}, "volume": {"type": "integer", "default": 50}},
)


def test_words_split_snake_kebab_and_camel_case():
    assert words("include_forecast deviceId HTTPServer max-results v2") == {
        "include",
        "forecast",
        "device",
        "id",
        "http",
        "server",
        "max",
        "results",
        "v",
        "2",
    }


def test_tools_get_others_optional_parameters_the_answer_leaves_out():
    weather = row("Weather in Paris?", [WEATHER], {"name": "get_weather", "arguments": {"city": "Paris"}}, "a")
    play = row("Play Roar by Katy Perry", [PLAY], {"name": "play_song", "arguments": {"query": "Roar"}}, "b")
    step = UnusedParams(2)
    first, second = step([weather, play])

    assert first is weather  # nothing to borrow yet
    properties = second.tools[0]["function"]["parameters"]["properties"]
    borrowed = set(properties) - set(PLAY["function"]["parameters"]["properties"])
    assert len(borrowed) == 2 and borrowed <= {"unit", "include_forecast"}
    assert properties["unit"] == WEATHER["function"]["parameters"]["properties"]["unit"]
    assert second.tools[0]["function"]["parameters"]["required"] == ["query"]  # borrowed ones stay optional
    assert second.messages == play.messages  # the answer still leaves them out
    assert PLAY["function"]["parameters"]["properties"].keys() == {"query", "deviceId", "volume"}  # not mutated
    assert (step.counts.rows_in, step.counts.rows_out) == (2, 2)
    assert step.counts.reasons == {"parameters added": 2, "rows given parameters": 1}


def test_a_parameter_the_question_names_is_not_borrowed_nor_a_required_one():
    weather = row("Weather in Paris?", [WEATHER], {"name": "get_weather", "arguments": {"city": "Paris"}}, "a")
    asks_unit = row(
        "Play Roar, and what unit is the volume in?", [PLAY], {"name": "play_song", "arguments": {"query": "Roar"}}, "b"
    )
    _, out = UnusedParams(5)([weather, asks_unit])
    properties = out.tools[0]["function"]["parameters"]["properties"]
    assert set(properties) == {"query", "deviceId", "volume", "include_forecast"}  # not unit, never city


def test_the_same_rows_get_the_same_parameters_and_the_seed_changes_them():
    rows = [
        row(
            f"Question {n}",
            [tool(f"f{n}", {"x": STRING}, {f"option_{n}_{k}": STRING for k in range(3)})],
            {"name": f"f{n}", "arguments": {"x": "1"}},
            f"t{n}",
        )
        for n in range(20)
    ]

    def built(seed: int) -> list[list[str]]:
        return [list(r.tools[0]["function"]["parameters"]["properties"]) for r in UnusedParams(2, seed)(rows)]

    assert built(0) == built(0)
    assert built(0) != built(1)
    orders = built(0)[1:]
    assert all(len(names) == 6 for names in orders)
    assert len({names.index("x") for names in orders}) > 1  # placed among the tool's own, not always after


def test_dataset_sft_unused_params_on_bfcl_rows(tmp_path):
    db = f"sqlite:///{tmp_path / 'bfcl.db'}"
    with TraceStore(db) as store:
        store.write(list(open_bfcl("bfcl:simple_python", ImportOptions())))
    out = tmp_path / "sft.jsonl"
    built = CliRunner().invoke(
        main,
        [
            "dataset",
            "sft",
            "--db",
            db,
            "--out",
            str(out),
            "--no-progress",
            "--json",
            "--tokenizer",
            "none",
            "--unused-params",
            "1",
        ],
    )
    assert built.exit_code == 0, built.output
    step = next(s for s in json.loads(built.output)["steps"] if s["step"] == "unused parameters")
    assert step["in"] == step["out"] > 300
    assert step["reasons"]["parameters added"] == step["reasons"]["rows given parameters"] >= step["in"] - 5
    for line in out.read_text().splitlines():
        data = json.loads(line)
        (answer,) = data["messages"][-1]["tool_calls"]
        schema = data["tools"][0]["function"]["parameters"]
        assert set(answer["function"]["arguments"]) <= set(schema["properties"])
        assert set(schema["required"]) <= set(answer["function"]["arguments"])


def test_a_question_in_content_parts_is_read_as_its_text():
    styled = tool("style", {"x": STRING}, {"type": STRING, "unit": STRING})
    first = row("Style it", [styled], {"name": "style", "arguments": {"x": "1"}}, "a")
    parts = row("", [PLAY], {"name": "play_song", "arguments": {"query": "Roar"}}, "b")
    parts.messages[0]["content"] = [{"type": "text", "text": "Play Roar; which unit is the volume in?"}]
    _, out = UnusedParams(5)([first, parts])
    assert set(out.tools[0]["function"]["parameters"]["properties"]) == {"query", "deviceId", "volume", "type"}


def test_a_row_the_borrowed_parameters_take_over_the_limit_is_kept_without_them(tmp_path, tiny_tokenizer):
    with TraceStore(f"sqlite:///{tmp_path / 'bfcl.db'}") as store:
        store.write(list(open_bfcl("bfcl:simple_python", ImportOptions()))[:60])

        def build(name: str, **config) -> tuple[dict, list[dict]]:
            out = tmp_path / f"{name}.jsonl"
            result = build_sft(
                store,
                Selection(outcome="success"),
                SFTConfig(out=str(out), eval_ratio=0.0, near_dup=0.0, **config),
                tokenizer=tiny_tokenizer,
            )
            steps = {step.name: step for step in result.summary.steps}
            return steps, [json.loads(line) for line in out.read_text().splitlines()]

        _, plain = build("plain", max_length=100_000)
        limit = max(Truncator(tiny_tokenizer, None).length(r["messages"], r["tools"]) for r in plain)
        steps, padded = build("padded", max_length=limit, unused_params=3)

    kept_plain = steps["truncate"].reasons["kept without unused parameters, too long with them"]
    assert 0 < kept_plain < len(plain)
    assert steps["truncate"].rows_out == len(padded) == len(plain)  # nothing dropped
    assert sum(r["tools"] != p["tools"] for r, p in zip(padded, plain)) == len(plain) - kept_plain - 1  # - the first
    assert all(Truncator(tiny_tokenizer, None).length(r["messages"], r["tools"]) <= limit for r in padded)
