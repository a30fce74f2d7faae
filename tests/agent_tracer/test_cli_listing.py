"""`agent-tracer --help` lists the commands from `SUBCOMMANDS` alone: every command with its own
summary, and no command module (nor what one pulls in) imported to do it."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from agent_tracer.cli import SUBCOMMANDS, main

HEAVY = ("sqlalchemy", "sqlmodel", "torch", "transformers", "opentelemetry", "aiohttp", "numpy", "httpx")


def test_the_listing_shows_every_command_with_its_summary():
    listing = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    commands = listing.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in commands if line.strip()] == sorted(SUBCOMMANDS)
    for name, (_, summary) in SUBCOMMANDS.items():
        assert any(line.split(None, 1) == [name, summary] for line in commands), name


def test_each_summary_is_the_first_line_of_its_commands_docstring():
    group = click.Group(name="fresh", commands={})  # the commands themselves, imported here on purpose
    for name, (target, summary) in SUBCOMMANDS.items():
        module, attribute = target.split(":")
        command = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert isinstance(command, click.Command)
        assert inspect.cleandoc(command.help or "").splitlines()[0] == summary, name
        group.add_command(command, name)
    from_table = CliRunner().invoke(main, ["--help"], terminal_width=100).output.split("Commands:")[1]
    from_commands = CliRunner().invoke(group, ["--help"], terminal_width=100).output.split("Commands:")[1]
    assert from_table == from_commands


def test_the_listing_imports_no_command_and_no_heavy_library():
    code = (
        "import json, sys\n"
        "from agent_tracer.cli import main\n"
        "main(['--help'], standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.splitlines()[-1])
    ours = [name for name in loaded if name.split(".")[0] in ("agent_tracer", "trainer", "integrations")]
    assert sorted(ours) == ["agent_tracer", "agent_tracer.cli", "agent_tracer.errors"]
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_a_subcommands_help_still_loads_its_command():
    result = CliRunner().invoke(main, ["traces", "--help"])
    assert result.exit_code == 0 and "Recorded agent runs and their LLM calls." in result.output
    assert "list" in result.output and "export" in result.output


@pytest.mark.parametrize("command", ["proxy", "ui", "collect"])
def test_a_servers_help_loads_no_server(command):
    """`agent-tracer proxy --help` read the proxy's app, and aiohttp under it, before it printed
    (0.58 s, against 0.15 s for the others): a server's --help reads only its options."""
    code = (
        "import json, sys\n"
        "from agent_tracer.cli import main\n"
        f"main([{command!r}, '--help'], standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert not [name for name in loaded if name.split(".")[0] in ("aiohttp", "uvicorn", "starlette", "torch")]


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("ui", "listening on 0.0.0.0 serves trace contents beyond this machine: add --require-key"),
        ("collect", "listening on 0.0.0.0 takes traces from beyond this machine: add --require-key"),
    ],
)
def test_a_server_beyond_loopback_without_keys_is_refused_before_it_starts(command, refusal):
    beyond = CliRunner().invoke(main, [command, "--host", "0.0.0.0"])
    assert beyond.exit_code == 2 and refusal in beyond.output
    lone_file = CliRunner().invoke(main, [command, "--key-file", "keys.txt"])
    assert lone_file.exit_code == 2 and "--key-file is only used with --require-key" in lone_file.output
