"""Training in several processes: tokens/s with 1 and with N processes, as a user runs it (issue 23).

    python bench/train_scaling.py [--processes 1,2] [--strategies ddp] [--steps 8] [--global-batch 8]
    python bench/train_scaling.py --model-config 1b --processes 1,8 --strategies ddp,fsdp,zero3   (GPUs)

Each row is one `agent-tracer train sft --json` command in a subprocess, the same rows, model,
optimiser steps, seed and global batch for every process count: the per-process batch is the
global batch over the processes (grad_accum 1), so each optimiser step sees the same rows.
`--processes 1` trains in the command's own process; above 1 the command starts them through
Accelerate's launcher with `--num-processes N --distributed S`. The model and rows are those of
`bench/train_throughput.py` (the embedded SmolLM2-135M, or `--model-config 1b`, a random
Llama-3.2-1B-shaped model; BFCL's non-live categories), with the shipped preset's other settings.

Figures per row: tokens/s from the run's own summary (the non-padding input tokens all
processes saw over the wall time of `trainer.train()`), the speed-up against the one-process row
of the same run of this script, scaling efficiency (speed-up over processes), the command's
whole wall time (start-up, loading and saving included), and on GPUs MFU: 6 x parameters x
tokens/s over processes x the bf16 matmul FLOP/s one card reaches here (`train_throughput`'s
`matmul_flops`). On a CPU the processes share the machine's cores (torchrun gives each
OMP_NUM_THREADS=1), so two processes on two cores compare one process using both cores with two
using one each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import ROOT, bfcl_rows, matmul_flops, warm_up  # noqa: E402

from agent_tracer.loopback import free_port  # noqa: E402


def one_run(model: str, data: Path, out: Path, processes: int, strategy: str, args: argparse.Namespace) -> dict:
    per_process = args.global_batch // processes
    command = [sys.executable, "-m", "agent_tracer.cli", "train", "sft", "--json", "--data", str(data)]
    command += ["--out", str(out), "--model", model, "--max-steps", str(args.steps), "--eval-ratio", "0"]
    command += ["--batch-size", str(per_process), "--grad-accum", "1", "--save-steps", str(args.steps + 1)]
    command += ["--max-length", str(args.max_length)] if args.max_length else []
    if processes > 1:
        command += ["--num-processes", str(processes), "--distributed", strategy]
        command += ["--main-process-port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode:
        raise SystemExit(f"{processes} process(es), {strategy}: the run failed:\n{done.stderr[-4000:]}")
    summary = json.loads(done.stdout)
    summary["wall_s"] = time.perf_counter() - started
    print(f"{processes} x {strategy}: {summary['tokens_per_second']:,.0f} tokens/s", file=sys.stderr)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts (1 is the baseline)")
    parser.add_argument("--strategies", default="ddp", help="comma-separated --distributed strategies for N > 1")
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps of each run")
    parser.add_argument("--rows", type=int, default=96, help="BFCL rows (non-live categories)")
    parser.add_argument("--global-batch", type=int, default=8, help="rows per optimiser step, all processes together")
    parser.add_argument("--model-config", choices=("smollm2", "1b"), default="smollm2")
    parser.add_argument("--max-length", type=int, default=0, help="tokens per row (0: the preset's)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all rows (the median is reported)")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    if 1 not in counts or any(args.global_batch % n for n in counts):
        raise SystemExit("--processes must include 1, and each count must divide --global-batch")
    cases = [(1, "single")] + [(n, s) for n in counts if n > 1 for s in args.strategies.split(",")]

    import torch

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "sft.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in bfcl_rows(args.rows)), encoding="utf-8")
        model = warm_up(args.model_config, tmp)
        peak = matmul_flops("cuda") if cuda else 0.0
        params = 0
        if cuda:
            from trainer.models import load_model

            params = sum(p.numel() for p in load_model(model, dtype=torch.bfloat16).parameters())
        runs: dict[tuple[int, str], list[dict[str, Any]]] = {case: [] for case in cases}
        for round_ in range(args.repeats):
            for processes, strategy in cases:
                out = tmp / f"run-{processes}-{strategy}-{round_}"
                runs[(processes, strategy)].append(one_run(model, data, out, processes, strategy, args))

    def median(case: tuple[int, str], key: str) -> float:
        values = sorted(run[key] for run in runs[case])
        return values[len(values) // 2]

    device = torch.cuda.get_device_name() if cuda else f"CPU, {os.cpu_count()} cores"
    length = f", max length {args.max_length}" if args.max_length else ""
    print(f"\nSFT, {args.model_config}, {args.steps} steps, global batch {args.global_batch}{length}, {device}")
    print(
        f"{'processes':>9} {'strategy':>9} {'batch/proc':>10} {'tokens/s':>10} {'speed-up':>8} {'efficiency':>10}",
        end="",
    )
    print(f" {'wall s':>7}" + (f" {'MFU':>6}" if cuda else ""))
    base = median((1, "single"), "tokens_per_second")
    for processes, strategy in cases:
        rate = median((processes, strategy), "tokens_per_second")
        line = f"{processes:>9} {strategy:>9} {args.global_batch // processes:>10} {rate:>10,.0f}"
        line += f" {rate / base:>7.2f}x {rate / base / processes:>9.0%} {median((processes, strategy), 'wall_s'):>7.1f}"
        if cuda:
            line += f" {6 * params * rate / (processes * peak):>6.1%}"
        print(line)


if __name__ == "__main__":
    main()
