"""`agent-tracer quickstart`: capture → curate → train → evaluate → swap, on embedded defaults
(SQLite, SmolLM2, BFCL's non-live questions), in a fresh folder, offline, in minutes.

    budget.py   how much each stage does: the full run, and `--tiny` (a tiny model, seconds)
    tasks.py    BFCL tasks split into train, held-out and live (evaluation only)
    agent.py    the example agent: the openai SDK, @trace_agent, outcomes judged by BFCL's AST rules
    standin.py  the frontier's stand-in for the swap: ground-truth answers on loopback
    routes.py   the routes file the swap writes
    stages.py   the five stages
    closing.py  what is printed at the end: the table, the files, the commands for a real frontier

`run_quickstart(folder, budget, say)` runs them; a stage that fails raises `StageFailed` (its
traceback goes to quickstart.log in the folder), Ctrl-C raises `Stopped`, both naming the stage.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path

from agent_tracer.errors import AgentTracerError
from trainer.quickstart.budget import FULL, TINY, Budget
from trainer.quickstart.closing import closing, duration
from trainer.quickstart.stages import STAGES, Context, Say

MARKER = "quickstart.json"
"""Written first into the folder: what ran, so a later --overwrite knows the folder is ours."""
LOG = "quickstart.log"

__all__ = ["FULL", "TINY", "Budget", "StageFailed", "Stopped", "run_quickstart"]


class StageFailed(AgentTracerError):
    """A stage could not finish; the message names it and says why, in one line."""


class Stopped(AgentTracerError):
    """Ctrl-C during a stage."""


def run_quickstart(folder: Path, budget: Budget, say: Say, *, overwrite: bool = False) -> Context:
    """Run every stage in `folder`, saying a line as each begins and ends; returns the context."""
    prepare(folder, overwrite)
    (folder / MARKER).write_text(json.dumps({"budget": budget.__dict__}, indent=2) + "\n", encoding="utf-8")
    ctx = Context(folder, budget, say)
    started = time.perf_counter()
    name = "setup"
    try:
        for number, (name, stage) in enumerate(STAGES, start=1):
            say(f"[{number}/{len(STAGES)}] {name}: {stage.__doc__}")
            begun = time.perf_counter()
            try:
                stage(ctx)
            except Exception as exc:  # any failure: one line here, the traceback in the log
                (folder / LOG).write_text(traceback.format_exc(), encoding="utf-8")
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StageFailed(f"stage {name} failed: {reason} (traceback in {folder / LOG})") from None
            say(f"      {name} done in {duration(time.perf_counter() - begun)}")
        say(closing(ctx, time.perf_counter() - started))
    except KeyboardInterrupt:
        raise Stopped(f"stopped (Ctrl-C) during {name}; what was done so far is in {folder}") from None
    return ctx


def prepare(folder: Path, overwrite: bool) -> None:
    """An empty folder to work in: made, or emptied with `overwrite` when it holds an earlier
    quickstart; a folder with anything else in it is never touched."""
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise StageFailed(f"{folder} is not empty and holds no quickstart: choose another --dir")
        if not overwrite:
            raise StageFailed(f"{folder} holds an earlier quickstart: --overwrite to run again there, or another --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
