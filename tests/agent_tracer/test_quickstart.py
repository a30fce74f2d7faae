"""`agent-tracer quickstart --tiny` run as a user runs it, in a process of its own, and judged by
what it leaves: each stage's line, the store's captured runs with their outcomes, the dataset
files, the training runs' adapters, the report, and the calls the proxy routed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from agent_tracer.store import TraceStore

STAGES = ["capture", "curate", "train", "evaluate", "swap"]
CLEARED = ("AGENT_TRACER_DB", "OPENAI_BASE_URL", "OPENAI_API_KEY")


def quickstart(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    base = {key: value for key, value in os.environ.items() if key not in CLEARED}
    return subprocess.Popen(
        [sys.executable, "-m", "agent_tracer.cli", "quickstart", *args],
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(the folder, what it printed) of one `quickstart --tiny` run."""
    folder = tmp_path_factory.mktemp("quickstart") / "qs"
    process = quickstart("--tiny", "--dir", str(folder))
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
    return folder, out


def test_each_stage_says_it_began_and_ended(tiny):
    _, out = tiny
    lines = out.splitlines()
    for number, stage in enumerate(STAGES, start=1):
        assert any(line.startswith(f"[{number}/5] {stage}: ") for line in lines), stage
        assert any(line.strip().startswith(f"{stage} done in ") for line in lines), stage
    assert "stand in for the runs a frontier model would have made" in out
    assert "base vs tuned on 6 held-out tasks" in out and "OPENAI_API_KEY" in out


def test_the_store_holds_the_agents_runs_with_their_outcomes(tiny):
    folder, _ = tiny
    with TraceStore(f"sqlite:///{folder / 'agent_tracer.db'}") as store:
        imported = store.traces(tags=["bfcl"], limit=None)
        named = store.traces(name="bfcl-agent", limit=None)
        assert len(imported) == 12 and {trace.outcome for trace in imported} == {"success"}
        runs = [trace for trace in named if trace.source == "decorator"]  # the proxy's own records aside
        captured = [trace for trace in runs if "held-out" not in trace.tags]
        swapped = [trace for trace in runs if "held-out" in trace.tags]
        assert (len(captured), len(swapped)) == (4, 2)
        assert all("held-out" in trace.tags for trace in named if trace.source == "proxy")
        for trace in runs:
            detail = store.get_trace(trace.id)
            assert trace.outcome in ("success", "failure") and trace.rating in (1, 5)
            assert [call.request_model for call in detail.calls] == ["bfcl-agent"]
            assert detail.calls[0].request["tools"]


def test_the_datasets_leave_out_every_evaluated_task(tiny):
    folder, _ = tiny
    sft = [json.loads(line) for line in (folder / "data" / "sft.jsonl").open()]
    dpo = [json.loads(line) for line in (folder / "data" / "dpo.jsonl").open()]
    assert sft and dpo and {row["source"] for row in dpo} == {"traces"}
    trained = {row["messages"][0]["content"] for row in sft} | {row["prompt"][0]["content"] for row in dpo}
    evaluated = {json.loads(line)["case_id"] for line in (folder / "report" / "results.jsonl").open()}
    with TraceStore(f"sqlite:///{folder / 'agent_tracer.db'}") as store:
        held_out = {trace.task for trace in store.traces(name="bfcl-agent", tags=["held-out"], limit=None)}
        assert not trained & held_out
        assert not {f"bfcl:{case_id}" for case_id in evaluated} & {trace.id for trace in store.traces(limit=None)}


def test_training_leaves_adapters_and_the_report_its_files(tiny):
    folder, _ = tiny
    for run in ("sft", "dpo"):
        assert (folder / "runs" / run / "adapter_model.safetensors").exists()
        assert json.loads((folder / "runs" / run / "run.json").read_text())["steps"] >= 1
    assert (folder / "report" / "index.html").exists() and (folder / "report" / "report.md").exists()
    endpoints = {json.loads(line)["endpoint"] for line in (folder / "report" / "results.jsonl").open()}
    assert endpoints == {"base", "tuned"}


def test_the_proxy_routed_the_agents_calls_and_says_who_answered(tiny):
    folder, out = tiny
    routes = (folder / "routes.yaml").read_text()
    assert "bfcl-agent:" in routes and "model: tuned" in routes and "frontier-stand-in" in routes
    with TraceStore(f"sqlite:///{folder / 'agent_tracer.db'}") as store:
        routed = [call for call in store.calls(limit=None) if call.route]
    answered = [call for call in routed if call.route == "fallback" or not call.fallback_reason]
    assert len(answered) == 2 and {call.route for call in routed} <= {"primary", "fallback"}
    said = [line for line in out.splitlines() if line.startswith("    ") and "answered by the" in line]
    assert "the proxy recorded 2 routed calls" in out
    assert len(said) == 2 and all(
        ("primary (tuned)" in line) or ("fallback (frontier-stand-in)" in line) for line in said
    )


def test_a_folder_with_other_things_in_it_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    process = quickstart("--tiny", "--dir", str(tmp_path))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and not out
    assert err == f"Error: {tmp_path} is not empty and holds no quickstart: choose another --dir\n"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failing_stage_is_named_in_one_line(tmp_path):
    """Without BFCL's data (an installed-looking bfcl_eval without it) capture cannot start."""
    fake = tmp_path / "site" / "bfcl_eval"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    process = quickstart("--tiny", "--dir", str(tmp_path / "qs"), env={"PYTHONPATH": str(tmp_path / "site")})
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and out.startswith("[1/5] capture: ")
    assert err.startswith("Error: stage capture failed: no BFCL category") and err.count("\n") == 1, err
    assert "Traceback" in (tmp_path / "qs" / "quickstart.log").read_text()


def _default_ctrl_c() -> None:
    """A terminal's Ctrl-C reaches a program whose SIGINT is the default one; a test run started
    in the background of a non-interactive shell ignores SIGINT, and its children would too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_names_the_stage(tmp_path):
    process = quickstart("--tiny", "--dir", str(tmp_path / "qs"), start_new_session=True, preexec_fn=_default_ctrl_c)
    for line in process.stdout:
        if line.startswith("[3/5]"):
            break
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped (Ctrl-C) during train" in err and "Traceback" not in err
