"""The whole loop as Python calls: traces → dataset → fine-tune → serve → evaluate base vs tuned.

    python examples/pipeline.py                              # SmolLM2-135M (embedded), the CPU preset: minutes
    python examples/pipeline.py --model PATH --max-steps 2 --traces 20 --cases 4 --max-tokens 16
                                                             # any model folder, a smoke run in seconds

1. BFCL's questions, with their ground-truth calls, go into a trace store as successful runs (as
   `agent-tracer traces import bfcl:simple_python --format bfcl` does): `simple_python` to train
   on, and `live_simple`, which the import tags `held-out` (BFCL's user-contributed questions).
2. The SFT dataset is built from the simple_python traces (`agent-tracer dataset sft`); held-out
   traces never go into a dataset.
3. A LoRA adapter is trained on it (`agent-tracer train sft`, the preset for this machine).
4. The base model and the run folder are served side by side (`agent-tracer serve`).
5. Both answer the held-out live_simple questions (`agent-tracer eval --from-store --split
   held-out`), graded by BFCL's AST rules.

Everything goes into --dir (default ./pipeline): traces.db, sft*.jsonl, runs/sft and report/. You
will see each stage's summary, then a table with a row for `base` and one for `tuned`: success
rate with its 95% interval, tool-call format, tool selection, arguments, well-formed answers,
latency; and the paired test.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent_tracer.errors import AgentTracerError
from agent_tracer.formats.bfcl import open_bfcl
from agent_tracer.formats.bfcl_turns import TurnReader
from agent_tracer.formats.imports import ImportOptions
from agent_tracer.store import TraceStore

if TYPE_CHECKING:
    from trainer.evaluate import Evaluation

TRAIN_ON = "simple_python"
EVALUATE_ON = "live_simple"
"""BFCL categories: live_* questions are tagged held-out on import, so no dataset ever takes them."""


def import_bfcl(store: TraceStore, category: str) -> None:
    """A BFCL category's questions as successful runs in the store; a question whose ground truth
    cannot be read (three exec_* answers are not name(arg=literal) calls) is named and skipped.
    Importing again adds nothing."""
    reader = open_bfcl(f"bfcl:{category}", ImportOptions(warn=lambda why: print(f"skipped {why}", file=sys.stderr)))
    store.write(list(reader))
    held_out = " (tagged held-out: for evaluation only)" if reader.held_out else ""
    skipped = f", {reader.skipped} skipped" if reader.skipped else ""
    what = "turns" if isinstance(reader, TurnReader) else "questions"  # a conversation gives one example a turn
    print(f"imported {reader.examples} BFCL {category} {what}{held_out}{skipped}")


def train(
    store: TraceStore,
    folder: Path,
    args: argparse.Namespace,
    tags: tuple[str, ...] = (TRAIN_ON,),
    settings: dict[str, str] | None = None,
    preset: str | None = None,
    unused_params: int = 0,
) -> Path:
    """Build the dataset from the successful traces with all of `tags` and fine-tune on it, with
    `settings` over `preset` (default: this machine's SFT preset); returns the run folder.
    `unused_params`: borrowed optional parameters added to each tool offered (`SFTConfig`)."""
    from trainer.data import Selection, SFTConfig, build_sft
    from trainer.train.config import default_preset, preset_values, resolve
    from trainer.train.run import gpu_available
    from trainer.train.sft import train_sft

    run = folder / "runs" / "sft"
    overrides = {**(settings or {}), "model": args.model, "data": str(folder / "sft.jsonl"), "out": str(run)}
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    preset = preset or default_preset("sft", gpu_available())
    config = resolve("sft", preset_values(preset), overrides)
    print(f"training: preset {preset}" + "".join(f", {key}={value}" for key, value in (settings or {}).items()))

    # The dataset is measured with the model's own tokenizer, to the length the run trains on.
    dataset = build_sft(
        store,
        Selection(outcome="success", tags=list(tags), max_traces=args.traces),
        SFTConfig(out=config.data, model=args.model, max_length=config.max_length, unused_params=unused_params),
    )
    print(dataset.summary.render())

    summary = train_sft(config, overwrite=True)
    held_out = f", eval loss {summary['eval_loss']:.4f}" if summary.get("eval_loss") is not None else ""
    print(
        f"\ntrained {run}: {summary['steps']} steps, train loss {summary['train_loss']:.4f}{held_out}, "
        f"{summary['seconds']:.0f} s"
    )
    return run


def compare(
    store: TraceStore,
    tuned: Path,
    folder: Path,
    args: argparse.Namespace,
    unguided: bool = False,
    split: str = "held-out",
    base: bool = True,
    report: str = "report",
) -> Evaluation:
    """Serve the base model and the tuned run on loopback (tool calls guided, as `agent-tracer
    serve` does by default) and ask both the held-out questions; `unguided`: the tuned run a third
    time, as "tuned-unguided", to show what training did without the guide. `split` "eval": the
    non-live rows the dataset build held out of training (its manifest in `folder`) instead;
    `base` False: the tuned run alone. The full report goes to folder/`report`."""
    from trainer.evaluate import RunConfig, evaluate, load_cases
    from trainer.serve import Engine, create_app, running
    from trainer.train.run import gpu_available

    cases = load_cases(store=store, split=split, manifest=folder / "sft.manifest.json", limit=args.cases)
    served = ([("base", args.model, True)] if base else []) + [("tuned", str(tuned), True)]
    served += [("tuned-unguided", str(tuned), False)] if unguided else []
    # A batch's worth of requests in flight per model (a GPU takes bigger batches at about the cost
    # of one row), and time enough that a request waiting behind a batch is not counted as the
    # model's failure.
    batch = 32 if gpu_available() else 8
    with contextlib.ExitStack() as servers:
        endpoints = {
            name: servers.enter_context(
                running(create_app(Engine.load(model, guide_tool_calls=guided, max_batch=batch), name))
            )
            for name, model, guided in served
        }
        result = evaluate(cases, endpoints, RunConfig(max_tokens=args.max_tokens, concurrency=batch, timeout=900))
    result.write(folder / report)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="base model: smollm2, a folder, a .gguf file, a hub id")
    parser.add_argument("--dir", type=Path, default=Path("pipeline"), help="where everything is written")
    parser.add_argument("--traces", type=int, help="train on at most this many questions (default: all 400)")
    parser.add_argument("--cases", type=int, default=50, help="evaluate on this many held-out questions")
    parser.add_argument("--max-steps", type=int, help="stop training after this many steps (default: the preset's)")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer asked of each model")
    args = parser.parse_args(argv)

    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        with TraceStore(f"sqlite:///{args.dir.resolve() / 'traces.db'}") as store:
            for category in (TRAIN_ON, EVALUATE_ON):
                import_bfcl(store, category)
            run = train(store, args.dir, args)
            print("\n" + compare(store, run, args.dir, args).table())
    except AgentTracerError as exc:
        sys.exit(f"error: {exc}")
    print(f"\nreport: {args.dir / 'report' / 'report.md'}")


if __name__ == "__main__":
    main()
