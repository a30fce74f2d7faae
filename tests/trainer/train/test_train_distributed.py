"""Training in several processes, as a user runs it: `agent-tracer train sft --num-processes 2` in a
subprocess, Accelerate's launcher starting two real gloo processes on this CPU. What a user
checks: the same losses as one process with the same global batch and seed, one run folder and
one progress bar, an adapter that loads and serves, a killed process stopping the run with a
clear error and `--resume` finishing it, and launch mistakes named before anything loads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

import trainer
from agent_tracer.cli import main
from agent_tracer.loopback import free_port

ROOT = Path(trainer.__file__).resolve().parents[1]
STEADY = [
    "--grad-accum", "1", "--eval-ratio", "0", "--lora-r", "8", "--lora-alpha", "16", "--logging-steps", "1",
    "--gradient-checkpointing", "off", "--learning-rate", "1e-2", "--warmup-ratio", "0",
    "--lr-scheduler", "constant",
]  # fmt: skip


def train(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agent_tracer.cli", "train", "sft", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(run: Path) -> list[float]:
    lines = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [line["loss"] for line in lines if "loss" in line]


def test_two_processes_train_as_one_with_the_same_global_batch(sft_file, tiny_model_dir, tmp_path):
    common = ["--data", sft_file, "--model", tiny_model_dir, "--max-steps", "6", "--save-steps", "100", *STEADY]
    train(tmp_path, *common, "--out", "one", "--batch-size", "4")
    two = train(
        tmp_path, *common, "--out", "two", "--batch-size", "2", "--num-processes", "2",
        "--main-process-port", str(free_port()),
    )  # fmt: skip

    one_run, two_run = tmp_path / "one", tmp_path / "two"
    # The first loss is before any update, so equal; later ones carry float noise that Adam's
    # sign-like first steps amplify (0.06% measured here, as for one process with --grad-accum 2),
    # while a wrong global batch or unsharded data moves them by 2-4% (batch 2 or 8, another seed).
    assert losses(two_run)[0] == pytest.approx(losses(one_run)[0], rel=1e-5)
    assert losses(two_run) == pytest.approx(losses(one_run), rel=2e-3)
    assert losses(two_run)[-1] < 0.8 * losses(two_run)[0]  # it learns, as one process does
    summary = json.loads((two_run / "run.json").read_text())
    assert (summary["processes"], summary["strategy"], summary["global_batch_size"]) == (2, "ddp", 4)
    assert summary["steps"] == 6 and summary["epochs"] == pytest.approx(2.0)  # 12 rows, 4 a step: sharded
    assert "2 processes (ddp), global batch 4" in two.stdout

    # one run folder, holding what a one-process run holds, and one progress bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "sft.jsonl", "two"]
    assert {p.name for p in two_run.iterdir()} == {p.name for p in one_run.iterdir()}
    assert two.stderr.count("0/6 [") == 1
    assert two.stdout.count("sft run in two") == 1

    # the adapter is the one-process run's, and loads and serves
    from safetensors.torch import load_file

    from trainer.serve import Engine, create_app, running

    ours, theirs = load_file(two_run / "adapter_model.safetensors"), load_file(one_run / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    # the same float noise flips a few weights by about the learning rate: the whole adapter differs
    # by 0.6% (its norm), against 15% or more for a wrong global batch
    difference = sum((ours[k] - theirs[k]).norm() ** 2 for k in ours) ** 0.5
    assert difference < 0.03 * sum(theirs[k].norm() ** 2 for k in ours) ** 0.5
    engine = Engine.load(str(two_run), device="cpu", default_max_tokens=8, guide_tool_calls=False)
    with running(create_app(engine, "tuned")) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-none", max_retries=0)
        reply = client.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "Order A-17?"}])
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens > 0


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


@pytest.mark.skipif(
    _gpus() < 2,
    reason="FSDP needs two GPUs: Accelerate makes a group of CPU processes MULTI_CPU and never applies FSDP to "
    "it (so `--distributed fsdp` is refused on a CPU, see the launch mistakes below)",
)
def test_fsdp_matches_one_process(sft_file, tiny_model_dir, tmp_path):
    """FSDP2 over two GPUs: the same losses as one process, the adapter gathered on the main one."""
    common = ["--data", sft_file, "--model", tiny_model_dir, "--max-steps", "4", "--save-steps", "100", *STEADY]
    train(tmp_path, *common, "--out", "one", "--batch-size", "4")
    train(
        tmp_path, *common, "--out", "fsdp", "--batch-size", "2", "--num-processes", "2", "--distributed", "fsdp",
        "--main-process-port", str(free_port()),
    )  # fmt: skip
    summary = json.loads((tmp_path / "fsdp" / "run.json").read_text())
    assert (summary["processes"], summary["strategy"]) == (2, "fsdp")
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
    assert (tmp_path / "fsdp" / "adapter_model.safetensors").stat().st_size > 0


def _workers(marker: str) -> dict[int, int]:
    """Rank → PID of the training processes whose environment holds `marker`."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            env = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        rank = next((item[5:] for item in env if item.startswith(b"RANK=")), None)
        if marker.encode() in env and rank is not None:
            found[int(rank)] = int(entry.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the training processes in /proc")
def test_a_killed_process_stops_the_run_and_resume_finishes_it(sft_file, tiny_model_dir, tmp_path):
    out, marker = tmp_path / "run", f"AGENT_TRACER_TEST_RUN={tmp_path}"
    args = ["--data", sft_file, "--model", tiny_model_dir, "--out", str(out), "--batch-size", "2", *STEADY]
    args += ["--max-steps", "60", "--save-steps", "5", "--num-processes", "2"]
    command = [sys.executable, "-m", "agent_tracer.cli", "train", "sft", *args, "--main-process-port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": str(ROOT), marker.partition("=")[0]: str(tmp_path)}
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "checkpoint-5" / "trainer_state.json").exists():
            assert run.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.02)
        os.kill(_workers(marker)[1], signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)

    assert run.returncode == 1
    assert "Error: training stopped (exit code 1): a process failed" in stderr
    assert "--resume continues from the last checkpoint" in stderr
    assert _workers(marker) == {}  # the launcher stopped the other one
    assert not (out / "run.json").exists()

    resumed = train(tmp_path, *args, "--resume", "--main-process-port", str(free_port()))
    summary = json.loads((out / "run.json").read_text())
    assert summary["steps"] == 60 and summary["processes"] == 2
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 60 and set(range(1, 61)) <= set(steps)
    assert "sft run in" in resumed.stdout


def test_launch_mistakes_are_one_line_errors_before_anything_loads(sft_file, tmp_path):
    base = ["train", "sft", "--data", sft_file, "--out", str(tmp_path / "run"), "--model", str(tmp_path / "absent")]
    from trainer.train.launch import devices

    too_many = str(devices()[0] + 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = {
            ("--num-processes", too_many): f"{too_many} processes on this machine, but it has",
            ("--num-processes", "2", "--main-process-port", port): f"port {port} is in use",
            ("--num-processes", "2", "--distributed", "zero3"): "--distributed zero3 needs DeepSpeed",
            ("--num-processes", "2", "--distributed", "fsdp3"): "--distributed fsdp3: neither a strategy",
            ("--num-processes", "3", "--num-machines", "2"): "must be a multiple of --num-machines 2",
            ("--num-processes", "2", "--num-machines", "2"): "several machines need --main-process-ip",
        }
        if not _gpus():
            cases[("--num-processes", "2", "--distributed", "fsdp")] = "Accelerate shards with FSDP on GPUs only"
            cases[("--load-in-4bit",)] = "--load-in-4bit (QLoRA) needs a CUDA GPU"
        for flags, message in cases.items():
            result = CliRunner().invoke(main, [*base, *flags])
            assert result.exit_code == 1, (flags, result.output)
            assert message in result.output and len(result.output.strip().splitlines()[-1]) < 200, result.output
    assert not (tmp_path / "run").exists()  # nothing was started, nothing written
