"""The `agent-tracer` command line: a click group whose subgroups load on first use.

A command group lives in its own module and is named in `SUBCOMMANDS` below; nothing is imported
until the group is run or `--help` lists it, so `agent-tracer --help` stays fast and torch is
imported only by the trainer commands that need it.
"""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS: dict[str, str] = {
    "cost": "trainer.commands.cost:cost",
    "dataset": "trainer.commands.dataset:dataset",
    "eval": "trainer.commands.eval:eval_command",
    "proxy": "agent_tracer.commands.proxy:proxy",
    "quickstart": "agent_tracer.commands.quickstart:quickstart",
    "serve": "trainer.commands.serve:serve",
    "routes": "agent_tracer.commands.routes:routes",
    "traces": "agent_tracer.commands.traces:traces",
    "train": "trainer.commands.train:train",
}
"""Command name → "module:attribute" of its click command or group."""


class LazyGroup(click.Group):
    """A click group that imports each subcommand from `SUBCOMMANDS` when it is first needed."""

    def __init__(self, *args: object, lazy_subcommands: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            module_name, attribute = self.lazy_subcommands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy_subcommands[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
@click.version_option(package_name="agent-tracer", prog_name="agent-tracer")
def main() -> None:
    """Record an AI agent's LLM calls, curate them, fine-tune a small model and swap it in."""


if __name__ == "__main__":
    main()
