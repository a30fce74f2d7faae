"""`agent-tracer serve` from the command line: a training run's folder served by a real
subprocess, the one-line errors, and the vLLM command line it would start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.loopback import free_port
from trainer.chat_template import TOOL_CALLING_TEMPLATE
from trainer.serve import vllm
from trainer.serve.config import ServeConfig

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_folder(tiny_model_dir, tmp_path_factory):
    """A training run's folder as `agent-tracer train sft` leaves it: a LoRA adapter (rank 8, not
    trained: B is zero), the tokenizer with its template, and config.yaml naming the base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("runs") / "sft"
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers a question it has deprecated
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({"kind": "sft", "model": tiny_model_dir, "lora_r": 8}))
    return str(folder)


def test_a_run_folder_served_by_the_command(run_folder, tmp_path):
    port = free_port()
    log = (tmp_path / "stderr.txt").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_tracer.cli", "serve", run_folder, "--port", str(port), "--max-batch", "4"],
        cwd=ROOT,
        stderr=log,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        log.seek(0)
        started = log.read()
        assert f"{run_folder} as 'sft' on transformers (cpu, batches of up to 4" in started, started
        assert f"at {base}/v1" in started
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-none", max_retries=0)
        reply = client.chat.completions.create(
            model="sft", messages=[{"role": "user", "content": "Is D-1 late?"}], max_tokens=5, temperature=0
        )
        assert reply.model == "sft" and reply.usage.completion_tokens == 5
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0


def test_command_line_errors_are_one_line():
    runner = CliRunner()
    missing = runner.invoke(main, ["serve", "/nowhere/model"])
    assert missing.exit_code == 1
    assert missing.output == "Error: no model at /nowhere/model: not a folder or a .gguf file\n"
    no_vllm = runner.invoke(main, ["serve", "smollm2", "--engine", "vllm"])
    assert no_vllm.exit_code == 1 and no_vllm.output.count("\n") == 1 and "pip install vllm" in no_vllm.output
    assert "--max-queue" in runner.invoke(main, ["serve", "--help"]).output


def test_the_vllm_command_line_for_a_merged_folder_and_a_run(tiny_model_dir, run_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_TRACER_CACHE", str(tmp_path))
    merged = vllm.command(ServeConfig(model=tiny_model_dir, model_name="tuned", port=9000, max_batch=16))
    assert merged[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flags(merged) >= {
        ("--model", tiny_model_dir),
        ("--served-model-name", "tuned"),
        ("--port", "9000"),
        ("--max-num-seqs", "16"),
        ("--tool-call-parser", "hermes"),
    }
    assert "--enable-auto-tool-choice" in merged and "--enable-lora" not in merged
    template = Path(merged[merged.index("--chat-template") + 1])
    assert template.read_text() == TOOL_CALLING_TEMPLATE  # the template the tiny model was made with
    run = vllm.command(ServeConfig(model=run_folder))
    assert _flags(run) >= {
        ("--model", tiny_model_dir),
        ("--lora-modules", f"sft={run_folder}"),
        ("--max-lora-rank", "8"),
        ("--served-model-name", "sft-base"),
    }
    assert "--enable-lora" in run


def test_vllm_scaling_flags_pass_through_and_need_the_vllm_engine(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_TRACER_CACHE", str(tmp_path))
    plain = vllm.command(ServeConfig(model=tiny_model_dir, engine="vllm"))
    assert not any(flag.endswith("-parallel-size") for flag in plain)  # vLLM's own defaults stay
    scaled = ServeConfig(
        model=tiny_model_dir,
        engine="vllm",
        tensor_parallel_size=4,
        data_parallel_size=2,
        gpu_memory_utilization=0.85,
        max_model_len=8192,
        vllm_args=("--enable-prefix-caching --max-num-batched-tokens 8192",),
    )
    line = vllm.command(scaled)
    assert _flags(line) >= {
        ("--tensor-parallel-size", "4"),
        ("--data-parallel-size", "2"),
        ("--gpu-memory-utilization", "0.85"),
        ("--max-model-len", "8192"),
        ("--max-num-batched-tokens", "8192"),
    }
    assert "--enable-prefix-caching" in line and "--pipeline-parallel-size" not in line
    refused = CliRunner().invoke(main, ["serve", tiny_model_dir, "--tensor-parallel-size", "2"])
    assert refused.exit_code == 1 and "--tensor-parallel-size is a vLLM setting: add --engine vllm" in refused.output


def _flags(line: list[str]) -> set[tuple[str, str]]:
    return set(zip(line, line[1:]))


def test_the_served_name_defaults_to_the_folder_or_file(tiny_model_dir, tmp_path):
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"")
    assert ServeConfig(model=tiny_model_dir).served_name == Path(tiny_model_dir).name
    assert ServeConfig(model=str(gguf)).served_name == "model.Q4"
    assert ServeConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct").served_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert ServeConfig(model="smollm2", model_name="tuned").served_name == "tuned"
