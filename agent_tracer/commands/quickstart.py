"""`agent-tracer quickstart`: the whole loop on embedded defaults, in a fresh folder.

Today it runs the capture stage: the decorator example agent (`examples/decorator_agent.py`)
answers a few questions through a local stand-in for the OpenAI API, every call is recorded into
SQLite, and the recorded traces are shown. The later stages (curate, train, evaluate, swap) join as
they land.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import click

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "decorator_agent.py"


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("agent-tracer-quickstart"), show_default=True,
              help="Folder for the trace store and everything the run writes.")
def quickstart(folder: Path) -> None:
    """Run the loop on embedded defaults: no network, no API key."""
    if not EXAMPLE.exists():
        raise click.ClickException(
            f"quickstart runs {EXAMPLE.relative_to(EXAMPLE.parents[1])} from a source checkout; "
            "install with `pip install -e .` from the repository"
        )
    folder.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{(folder / 'agent_tracer.db').resolve()}"
    click.secho("[1/1] capture: the example agent against a local stand-in API", bold=True)
    runpy.run_path(str(EXAMPLE), run_name="agent_tracer_quickstart")["main"](["--db", db])

    from agent_tracer.commands.traces import traces

    click.secho("\nrecorded traces:", bold=True)
    click.get_current_context().invoke(traces.get_command(click.get_current_context(), "list"), db=db)
    click.echo(f"\nstore: {db}\nnext:  agent-tracer traces show ID --db {db}")
