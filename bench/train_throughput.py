"""Training throughput: SFT with this project's defaults against a plain TRL `SFTTrainer` with its own (issue 5).

    python bench/train_throughput.py [--steps 8] [--rows 96] [--batch-size N] [--repeats 1]
    python bench/train_throughput.py --device cuda --model-config 1b      (on a GPU: adds MFU)

The data. `--rows` SFT rows made from BFCL questions with their ground truth, through the
project's own importer (`agent_tracer.formats.bfcl`): an equal share of each of the non-live,
single-turn categories simple_python, multiple, parallel and parallel_multiple (a seeded sample of
each; the live_* categories are BFCL's held-out questions and are never trained on). A row is the
question, the function docs as tools and one assistant message with the ground-truth tool calls
(arguments as dicts), written as JSONL `{"messages", "tools"}`, the shape `agent-tracer dataset` writes.

The two sides, each in a fresh child process of its own (this script's hidden `--child` mode),
one after the other, on the same rows, the same model and the same number of optimiser steps:

    agent-tracer  `trainer.train.sft.train_sft` with the shipped preset a run starts from on this
                  hardware (`sft-cpu` on a CPU, `sft` on a GPU), overriding only the data, the
                  run folder, `max_steps` and `eval_ratio: 0` (no held-out split, so both sides
                  train on the same rows and neither evaluates): LoRA, assistant-only loss,
                  length-grouped batches, and the rest as the preset says.
    plain TRL     `trl.SFTTrainer(model=load_model(...), args=SFTConfig(output_dir, max_steps,
                  report_to="none", use_cpu on a CPU, include_num_input_tokens_seen="non_padding"),
                  train_dataset=..., processing_class=tokenizer)`, everything else TRL's default:
                  full fine-tuning (no PEFT), batch 8, gradient checkpointing on, bf16 mixed
                  precision (TRL turns it on, on a CPU too), max_length 1024, loss on every token.
                  The tokenizer is the same, with `use_training_template` applied, as the
                  embedded model's own template cannot render tool calls; the dataset is the
                  same `datasets.Dataset` (`trainer.data.output.load_dataset`: messages and tools
                  as Json values, as a hand-made Dataset.from_list would merge every row's
                  tool schemas into one struct with nulls that then get rendered into the text).
                  `include_num_input_tokens_seen` only counts tokens (agent-tracer's runs set
                  it too); `use_cpu` is what a CPU needs.

`--batch-size N` sets the per-device batch of both sides (the table says so); by default each
side keeps its own. The model is `smollm2` (the embedded SmolLM2-135M-Instruct) on a CPU; with
`--model-config 1b` it is a Llama-3.2-1B-shaped `LlamaConfig` (hidden 2048, 16 layers, 32 heads,
8 KV heads, MLP 8192, tied embeddings) with SmolLM2's tokenizer and vocabulary (49,152), so about
1.07B parameters, initialised at random and saved in bfloat16 to a temporary folder: throughput
does not depend on what the weights are. Before any timing the parent loads the model once
(`load_model`: the embedded model's first load converts its GGUF file into a cached folder).

What is measured, in each child:
- tokens/s: the non-padding input tokens the trainer saw (`state.num_input_tokens_seen`, counted
  the same way on both sides) over the wall time of `trainer.train()` (`time.perf_counter`
  around it, as `train_sft` itself times it and reports it in its summary). Loading the model,
  tokenising the dataset and saving the adapter afterwards are outside it; the trainer's set-up
  inside `train()` (optimiser, dataloader) is inside it, on both sides, and so is the checkpoint
  that both sides' defaults (`save_strategy="steps"`) write at the last step: for plain TRL's
  full fine-tuning the weights and the optimiser state, for agent-tracer's the adapter's.
- peak memory: on a CPU the child's peak resident set (`getrusage(RUSAGE_SELF).ru_maxrss`),
  so the whole process: model, data, optimiser state, activations; on a GPU
  `torch.cuda.max_memory_allocated()` during `train()` (the peak counter is reset just before),
  with the peak RSS shown too.
- MFU (GPU only): 6 x parameters x tokens/s over the bf16 matmul FLOP/s this card reaches in a
  loop of 8192 x 8192 `torch.matmul`s (measured here, not the data sheet's figure). Parameters are
  the base model's (each tied weight once); 6N per token is the usual forward-plus-backward
  convention: it leaves out attention's own FLOPs and recomputation under gradient
  checkpointing, and for LoRA, whose frozen weights need no weight gradients, the work is nearer
  4N, so LoRA's MFU by 6N reads as "tokens/s in units of the card", not as utilisation.

Goal: agent-tracer's defaults at least 1.5x plain TRL's tokens/s, at equal or lower peak memory.
`--repeats` runs both sides that many times in rotation and reports each side's median run.
Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's packages
    sys.path.insert(0, str(ROOT))

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
"""Non-live BFCL categories only: live_* questions are held out for evaluation."""
SIDES = ("agent-tracer", "plain-trl")
GOAL_SPEEDUP = 1.5
MATMUL_N = 8192

LLAMA_1B = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    tie_word_embeddings=True,
    hidden_act="silu",
)
"""Llama-3.2-1B's shape (its vocabulary aside: the rows are tokenised with SmolLM2's tokenizer)."""


# --- the data ---------------------------------------------------------------------------------


def bfcl_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` SFT rows from the non-live BFCL categories, an equal seeded share of each, made by
    the project's BFCL importer; tool-call arguments as dicts, as the dataset command writes them."""
    from agent_tracer.formats.bfcl import open_bfcl
    from agent_tracer.formats.imports import ImportOptions

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for index, category in enumerate(CATEGORIES):
        assert not category.startswith("live_")
        share = count // len(CATEGORIES) + (1 if index < count % len(CATEGORIES) else 0)
        reader = open_bfcl(f"bfcl:{category}", ImportOptions(strict=True))
        lines = [line for line in reader.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for number in sorted(rng.sample(range(len(lines)), share)):
            example = reader.parse(json.loads(lines[number]), number + 1, lines[number])
            rows.append({"messages": [_dict_arguments(m) for m in example.messages], "tools": example.tools})
    rng.shuffle(rows)
    return rows


def _dict_arguments(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("tool_calls"):
        return {k: v for k, v in message.items() if k != "tool_calls"}
    calls = [
        {
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")},
        }
        for c in message["tool_calls"]
    ]
    return {**message, "content": message.get("content") or "", "tool_calls": calls}


# --- the model ----------------------------------------------------------------------------------


def warm_up(model_config: str, tmp: Path) -> str:
    """Load the model once before anything is timed; returns the `model` name both sides load.
    `smollm2`: the first load converts the GGUF file into the cache. `1b`: a random-weight
    Llama-3.2-1B-shaped model, with SmolLM2's tokenizer, saved into `tmp`."""
    from trainer.models import load_model, load_tokenizer

    if model_config == "smollm2":
        load_model("smollm2")
        return "smollm2"
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer("smollm2")
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **LLAMA_1B
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    folder = tmp / "llama-1b-random"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    load_model(str(folder))
    return str(folder)


def matmul_flops(device: str, n: int = MATMUL_N, seconds: float = 3.0) -> float:
    """The bf16 FLOP/s this GPU reaches on n x n matmuls (best of a few timed loops)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            torch.matmul(a, b)
        end.record()
        torch.cuda.synchronize()
        best = max(best, 20 * 2 * n**3 / (start.elapsed_time(end) / 1000))
    return best


# --- one side, in a child process -------------------------------------------------------------


def child(side: str, data: str, out: str, options: dict[str, Any]) -> dict[str, Any]:
    import torch

    cuda = options["device"] == "cuda"
    if side == "agent-tracer":
        result = _ours(data, out, options, cuda)
    else:
        result = _plain(data, out, options, cuda)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return result


def _ours(data: str, out: str, options: dict[str, Any], cuda: bool) -> dict[str, Any]:
    from trainer.train.config import default_preset, preset_values, resolve
    from trainer.train.run import Hardware
    from trainer.train.sft import train_sft

    preset = default_preset("sft", gpu=cuda)
    overrides: dict[str, Any] = {
        "data": data,
        "out": out,
        "model": options["model"],
        "max_steps": options["steps"],
        "eval_ratio": 0,
    }
    if options["batch_size"]:
        overrides["batch_size"] = options["batch_size"]
    config = resolve("sft", preset_values(preset), overrides, options["set"])
    hardware = Hardware.detect(config)  # what train_sft makes of the "auto" settings
    summary = train_sft(config, overwrite=True)  # resets the GPU's peak counter just before train()
    return {
        "steps": summary["steps"],
        "tokens": summary["tokens"],
        "seconds": summary["seconds"],
        "batch": config.batch_size * config.grad_accum,
        "params": _params(out, options),
        "setup": f"preset {preset}{''.join(f', {k}={v} (--set)' for k, v in options['set'].items())}: LoRA "
        f"r={config.lora_r} dropout {config.lora_dropout}, batch {config.batch_size}x{config.grad_accum}, "
        f"max_length {config.max_length}, group_by_length {config.group_by_length}, "
        f"gradient_checkpointing {hardware.gradient_checkpointing}, bf16 {hardware.bf16}",
    }


def _plain(data: str, out: str, options: dict[str, Any], cuda: bool) -> dict[str, Any]:
    import torch
    from trl import SFTConfig, SFTTrainer

    from trainer.chat_template import use_training_template
    from trainer.data.output import load_dataset
    from trainer.models import load_model, load_tokenizer

    model = load_model(options["model"])
    tokenizer = load_tokenizer(options["model"])
    use_training_template(tokenizer)
    extra: dict[str, Any] = {} if cuda else {"use_cpu": True}
    if options["batch_size"]:
        extra["per_device_train_batch_size"] = options["batch_size"]
    args = SFTConfig(
        output_dir=out,
        max_steps=options["steps"],
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        **extra,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=load_dataset(Path(data), "sft"), processing_class=tokenizer
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {
        "steps": trainer.state.global_step,
        "tokens": trainer.state.num_input_tokens_seen,
        "seconds": seconds,
        "batch": args.per_device_train_batch_size * args.gradient_accumulation_steps,
        "params": sum(p.numel() for p in model.parameters()),
        "setup": f"TRL defaults: full fine-tuning, batch {args.per_device_train_batch_size}x"
        f"{args.gradient_accumulation_steps}, max_length {args.max_length}, gradient_checkpointing "
        f"{args.gradient_checkpointing}, bf16 {args.bf16}",
    }


def _params(out: str, options: dict[str, Any]) -> int:
    """The base model's parameters (each tied weight once), for MFU."""
    import torch

    from trainer.models import load_model

    if options["device"] != "cuda":
        return 0
    model = load_model(options["model"], dtype=torch.bfloat16)
    return sum(p.numel() for p in model.parameters())


# --- the parent ---------------------------------------------------------------------------------


def run_side(side: str, data: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", side, str(data), str(out), json.dumps(options)]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"the {side} run failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{side}: {result['steps']} steps, {result['tokens']:,} tokens in {result['seconds']:.1f} s "
        f"(child process {time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps each side trains")
    parser.add_argument("--rows", type=int, default=96, help="BFCL rows in the dataset (non-live categories)")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="per-device batch of BOTH sides (0: each side's own default)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the agent-tracer side over its preset (e.g. lora_dropout=0), to see "
        "what a change to the defaults would do; repeatable; the report names each",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, in rotation (median reported)")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated: agent-tracer, plain-trl")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--model-config",
        choices=("smollm2", "1b"),
        default="smollm2",
        help="smollm2 (the embedded model) or 1b (a random Llama-3.2-1B-shaped model; GPU)",
    )
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "DATA", "OUT", "OPTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, data, out, options = args.child
        print(json.dumps(child(side, data, out, json.loads(options))))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("skipped: --device cuda, but torch sees no CUDA device on this machine", file=sys.stderr)
            return
    settings = dict(item.split("=", 1) for item in args.set if "=" in item)
    if len(settings) != len(args.set):
        parser.error("--set takes KEY=VALUE")
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        model = warm_up(args.model_config, tmp)
        print(f"model ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        data = tmp / "sft.jsonl"
        rows = bfcl_rows(args.rows)
        data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        options = {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "device": args.device,
            "model": model,
            "set": settings,
        }
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for repeat in range(args.repeats):
            for side in sides:
                runs[side].append(run_side(side, data, tmp / f"{side}-{repeat}", options))
    peak = matmul_flops("cuda") if args.device == "cuda" else None  # after the runs: no CUDA context beside them
    results = {side: _median(r) for side, r in runs.items()}
    print(report(results, rows, args, peak))


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["tokens"] / r["seconds"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs"] = [r["tokens"] / r["seconds"] for r in runs]
    return chosen


def report(
    results: dict[str, dict[str, Any]], rows: list[dict[str, Any]], args: argparse.Namespace, peak: float | None
) -> str:
    cuda = args.device == "cuda"
    header = ["side", "steps", "rows/step", "tokens", "seconds", "tokens/s", "peak RSS MB"]
    header += ["peak GPU MB", "MFU"] if cuda else []
    table = []
    for side, r in results.items():
        speed = r["tokens"] / r["seconds"]
        line = [
            side,
            str(r["steps"]),
            str(r["batch"]),
            f"{r['tokens']:,}",
            f"{r['seconds']:.1f}",
            f"{speed:,.0f}",
            f"{r['peak_rss_mb']:,.0f}",
        ]
        if cuda:
            line += [f"{r['peak_gpu_mb']:,.0f}", f"{6 * r['params'] * speed / peak:.1%}" if peak else "-"]
        table.append(line)
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(header)]
    lines = [
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in [header, *table]
    ]
    lines += [""] + [f"{side}: {r['setup']}" for side, r in results.items()]
    if args.repeats > 1:
        lines += [
            f"{side} tokens/s of each run: {', '.join(f'{s:,.0f}' for s in r['runs'])}" for side, r in results.items()
        ]
    if {"agent-tracer", "plain-trl"} <= results.keys():
        ours, plain = results["agent-tracer"], results["plain-trl"]
        ratio = (ours["tokens"] / ours["seconds"]) / (plain["tokens"] / plain["seconds"])
        memory = "peak_gpu_mb" if cuda else "peak_rss_mb"
        memory_ratio = ours[memory] / plain[memory]
        met = ratio >= GOAL_SPEEDUP and memory_ratio <= 1.0
        lines += [
            "",
            f"ratio agent-tracer / plain TRL: {ratio:.2f}x tokens/s, {memory_ratio:.2f}x peak "
            f"{'GPU memory' if cuda else 'RSS'}",
            f"goal (>= {GOAL_SPEEDUP}x tokens/s at <= memory): {'met' if met else 'NOT met'}",
        ]
    import torch
    import transformers
    import trl

    machine = f"{os.cpu_count()} cores, {platform.system()}"
    if cuda:
        machine += f", {torch.cuda.get_device_name()} (bf16 matmul {peak / 1e12:,.0f} TFLOP/s measured)"
    lines += [
        "",
        f"data: {len(rows)} BFCL rows ({', '.join(CATEGORIES)}); model: {args.model_config}; "
        f"batch: {'both ' + str(args.batch_size) if args.batch_size else 'each side its own default'}",
        f"machine: {machine}, Python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, TRL {trl.__version__}; torch threads {torch.get_num_threads()}; "
        f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"command: python bench/train_throughput.py {' '.join(sys.argv[1:])}".rstrip(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
