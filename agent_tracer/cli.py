"""The `agent-tracer` command line: a click group whose subgroups load on first use.

A command group lives in its own module and is named in `SUBCOMMANDS` below with its one-line
summary; nothing is imported until the group is run, so `agent-tracer --help` stays fast (it
lists the summaries) and torch is imported only by the trainer commands that need it.
"""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collect": (
        "agent_tracer.commands.collect:collect",
        "Receive OpenTelemetry (OTLP/HTTP) trace exports into the trace store.",
    ),
    "cost": (
        "trainer.commands.cost:cost",
        "Savings per 1K tokens, break-even tokens and days, monthly savings, and the fine-tuning cost.",
    ),
    "dataset": (
        "trainer.commands.dataset:dataset",
        "Training data from the recorded traces: SFT, DPO and reward rows in TRL's formats.",
    ),
    "eval": (
        "trainer.commands.eval:eval_command",
        "Send eval cases to each endpoint, grade the answers, report the metrics side by side.",
    ),
    "proxy": (
        "agent_tracer.commands.proxy:proxy",
        "Record every model call that passes through: point an agent's base_url here.",
    ),
    "quickstart": (
        "agent_tracer.commands.quickstart:quickstart",
        "Run the loop on embedded defaults: no network, no API key.",
    ),
    "serve": (
        "trainer.commands.serve:serve",
        "Serve MODEL (default: smollm2) behind OpenAI's Chat Completions API.",
    ),
    "routes": (
        "agent_tracer.commands.routes:routes",
        "Check and show a routes file for `agent-tracer proxy --routes FILE`.",
    ),
    "traces": (
        "agent_tracer.commands.traces:traces",
        "Recorded agent runs and their LLM calls.",
    ),
    "ui": (
        "agent_tracer.commands.ui:ui",
        "Browse, read and review the recorded runs in a web browser.",
    ),
    "train": (
        "trainer.commands.train:train",
        "Fine-tune a model on a dataset file: SFT, DPO, a reward model or GRPO, with LoRA (TRL + PEFT).",
    ),
}
"""Command name → ("module:attribute" of its click command or group, the first line of its
docstring). `agent-tracer --help` lists the commands from this table alone, importing none of them;
a test holds each line equal to the command's own."""


class LazyGroup(click.Group):
    """A click group that imports each subcommand from `SUBCOMMANDS` when it is first run, and
    lists them by the summaries in the table."""

    def __init__(
        self, *args: object, lazy_subcommands: dict[str, tuple[str, str]] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            target = self.lazy_subcommands[cmd_name][0]
            module_name, attribute = target.split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's command list, with a command not yet imported standing in by its summary."""
        commands = [
            (name, self.commands.get(name) or click.Command(name, help=self.lazy_subcommands[name][1]))
            for name in self.list_commands(ctx)
        ]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
@click.version_option(package_name="agent-tracer", prog_name="agent-tracer")
def main() -> None:
    """Record an AI agent's LLM calls, curate them, fine-tune a small model and swap it in."""


if __name__ == "__main__":
    main()
