"""`agent-tracer quickstart`: the whole loop on embedded defaults, in a fresh folder, offline.

capture → curate → train → evaluate → swap, with SQLite, the embedded SmolLM2 and BFCL's non-live
questions, in minutes on a CPU (README.md shows a run). `--tiny` runs every stage on a tiny model
made on the spot, in well under a minute (what CI runs). The stages live in `trainer.quickstart`,
imported only here, inside the command: they need the `train` extra (torch), which the capture side
never imports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("agent-tracer-quickstart"),
    show_default=True,
    help="Folder for the trace store, datasets, runs, report and routes file.",
)
@click.option(
    "--tiny",
    is_flag=True,
    help="A tiny model made on the spot, a handful of tasks, a few training steps: every stage for real in seconds.",
)
@click.option("--overwrite", is_flag=True, help="Start again in a folder that holds an earlier quickstart.")
def quickstart(folder: Path, tiny: bool, overwrite: bool) -> None:
    """Run the loop on embedded defaults: no network, no API key.

    The example agent's BFCL runs are captured, curated into SFT and DPO rows, a LoRA adapter is
    trained, base and tuned are evaluated on held-out tasks, and the tuned model is swapped in
    behind `agent-tracer proxy --routes` with a fallback."""
    missing = [name for name in ("torch", "trl", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"quickstart trains a model and needs {', '.join(missing)}: "
            "pip install torch && pip install 'agent-tracer[train]'"
        )
    from trainer.quickstart import FULL, TINY, StageFailed, Stopped, run_quickstart

    try:
        run_quickstart(folder, TINY if tiny else FULL, click.echo, overwrite=overwrite)
    except StageFailed as exc:
        raise click.ClickException(str(exc)) from None
    except Stopped as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(130) from None
