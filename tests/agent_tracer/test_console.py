"""`console.config_options`: click options from a settings dataclass, as proxy, serve, eval and train use it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import click
from click.testing import CliRunner

from agent_tracer.console import OrNone, config_options


@dataclass
class Settings:
    port: int = field(default=8000, metadata={"help": "Port.", "type": click.IntRange(0, 65535)})
    guided: bool = field(default=True, metadata={"help": "Guide calls."})
    strict: bool = field(default=False, metadata={"help": "Refuse unknown keys.", "flag": "--strict"})
    level: str = field(default="info", metadata={"help": "Log level.", "choices": ("info", "debug")})
    timeout_s: float | None = field(default=None, metadata={"help": "Seconds.", "flag": "--timeout"})
    temperature: float | None = field(default=0.0, metadata={"help": "T.", "type": OrNone(click.FloatRange(min=0))})
    tags: list[str] = field(default_factory=list, metadata={"help": "A tag.", "multiple": True, "type": str})


def command(*names: str, **kwargs: object) -> click.Command:
    @click.command()
    @config_options(Settings, *names, **kwargs)
    def show(**values: object) -> None:
        click.echo(json.dumps(values, sort_keys=True))

    return show


def run(cmd: click.Command, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(cmd, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_defaults_types_and_flags_come_from_the_fields():
    cmd = command()
    assert run(cmd) == {
        "guided": True,
        "level": "info",
        "port": 8000,
        "strict": False,
        "tags": [],
        "temperature": 0.0,
        "timeout_s": None,
    }
    given = run(
        cmd,
        "--port",
        "9",
        "--no-guided",
        "--strict",
        "--level",
        "debug",
        "--timeout",
        "2.5",
        "--temperature",
        "none",
        "--tags",
        "a",
        "--tags",
        "b",
    )
    assert given == {
        "guided": False,
        "level": "debug",
        "port": 9,
        "strict": True,
        "tags": ["a", "b"],
        "temperature": None,
        "timeout_s": 2.5,
    }
    refused = CliRunner().invoke(cmd, ["--port", "70000"])
    assert refused.exit_code == 2 and "70000 is not in the range 0<=x<=65535" in refused.output
    refused = CliRunner().invoke(cmd, ["--temperature", "-1"])
    assert refused.exit_code == 2 and "(or none: the server's default)" in refused.output


def test_help_shows_defaults_and_only_the_named_fields_in_their_order():
    text = CliRunner().invoke(command("level", "port", "guided", "strict"), ["--help"], terminal_width=200).output
    assert text.index("--level") < text.index("--port") < text.index("--guided") < text.index("--strict")
    assert "--timeout" not in text and "--tags" not in text
    assert "default: 8000" in text and "[default: guided]" in text and "[default: info]" in text
    assert "--strict  " in text and "--no-strict" not in text


def test_layered_options_default_to_none_and_say_what_a_run_gets():
    cmd = command(layered=lambda spec: "from the preset" if spec.name == "port" else "")
    assert all(value in (None, []) for value in run(cmd).values())
    assert run(cmd, "--guided")["guided"] is True and run(cmd, "--no-guided")["guided"] is False
    text = CliRunner().invoke(cmd, ["--help"], terminal_width=200).output
    assert "Port.  [default: from the preset]" in text and "default: 8000" not in text
