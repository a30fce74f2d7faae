"""The tool-match reward's scores, and how a run's settings are layered, checked and shown in --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.errors import ConfigError
from trainer.train.config import resolve
from trainer.train.rewards import score, tool_match

LOOKUP = {"type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17", "n": 2}'}}


def call(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


@pytest.mark.parametrize(
    "answer, expected",
    [
        (call("lookup_order", '{"order_id": "A-17", "n": 2.0}'), 1.0),  # equal as JSON values
        (call("lookup_order", '{"order_id": " A-17 "}'), 0.75),  # one argument of two
        (call("lookup_order", "{}"), 0.5),  # the right tool, no arguments
        (call("get_weather", '{"order_id": "A-17", "n": 2}'), 0.0),  # the wrong tool
        (call("lookup_order", '{"order_id": "A-17", "n": 2}') + call("lookup_order", "{}"), 0.5),  # an extra call
        ("Order A-17 has shipped.", 0.0),  # no call
        ('<tool_call>{"name": "lookup_order", "arguments": {"order_id": </tool_call>', 0.0),  # malformed
    ],
)
def test_tool_match_scores(answer, expected):
    assert tool_match([answer], [[LOOKUP]]) == [pytest.approx(expected)]


def test_when_no_call_is_right_only_an_answer_without_one_scores():
    assert score("That is not something I can look up.", []) == 1.0
    assert score(call("lookup_order", "{}"), []) == 0.0


def test_conversational_completions_and_json_references():
    completion = [{"role": "assistant", "content": call("lookup_order", '{"order_id": "A-17", "n": 2}')}]
    assert tool_match([completion], ['[{"name": "lookup_order", "arguments": {"order_id": "A-17", "n": 2}}]']) == [1.0]


def test_layers_later_win_and_values_are_coerced(tmp_path):
    config = resolve(
        "sft",
        {"kind": "sft", "lora_r": 64, "epochs": 3},
        {"lora-r": "16", "lora_targets": "q_proj,v_proj"},
        {"data": "d.jsonl", "out": "o", "packing": "true"},
    )
    assert (config.lora_r, config.epochs, config.lora_targets, config.packing) == (16, 3.0, ["q_proj", "v_proj"], True)


@pytest.mark.parametrize(
    "layer, message",
    [
        ({"lora_rank": 8}, "unknown sft setting 'lora_rank'; known: "),
        ({"kind": "dpo"}, "a dpo config cannot configure a sft run"),
        ({"epochs": "three"}, "epochs must be a float, got 'three'"),
        ({"bf16": "maybe"}, "bf16 must be one of auto, on, off, got 'maybe'"),
        ({"beta": 0.1}, "unknown sft setting 'beta'"),
    ],
)
def test_bad_settings_say_what_is_wrong(layer, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        resolve("sft", {"data": "d.jsonl", "out": "o"}, layer)


def test_a_config_file_that_is_not_a_mapping(tmp_path):
    from trainer.train.config import read_yaml

    (tmp_path / "c.yaml").write_text("- lora_r: 8\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping of settings, not a list"):
        read_yaml(tmp_path / "c.yaml")


def test_help_gives_the_defaults_a_run_gets():
    text = " ".join(CliRunner().invoke(main, ["train", "sft", "--help"], terminal_width=200).output.split())
    assert (
        "Peak learning rate. [default: 2e-05 (preset sft), 0.0003 (sft-cpu)]" in text
    )  # what this machine's preset sets shows too
    assert "AdamW weight decay. [default: 0.01]" in text  # both presets agree
    assert "(0: once an epoch). [default: 0]" in text  # no preset sets it: the config's own
