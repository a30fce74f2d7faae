"""Reader processes give the same dataset as one process, byte for byte, and pass their errors on."""

from __future__ import annotations

import json

import pytest

from agent_tracer.errors import StoreError
from agent_tracer.store import TraceStore
from trainer.data import parallel
from trainer.data.select import Selection
from trainer.data.sft import SFTConfig, build_sft
from trainer.data.summary import Step


def fill(store: TraceStore, runs: int) -> None:
    records = []
    for n in range(runs):
        trace_id = f"{n:032x}"
        request = {
            "model": "m",
            "messages": [
                {"role": "system", "content": "You route tickets."},
                {"role": "user", "content": f"ticket {n}: printer {n % 7} is jammed, call me at +1 415 555 {n:04d}"},
            ],
            "tools": [{"type": "function", "function": {"name": "route", "parameters": {"type": "object"}}}],
        }
        answer = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"c{n}",
                    "type": "function",
                    "function": {"name": "route", "arguments": json.dumps({"team": n % 3})},
                }
            ],
        }
        records += [
            (
                "trace",
                {"id": trace_id, "name": "router", "started_at": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}"},
            ),
            (
                "llm_call",
                {
                    "id": f"{n:016x}",
                    "trace_id": trace_id,
                    "request": request,
                    "response": {"message": answer},
                    "status": "ok",
                },
            ),
            ("feedback", {"id": f"f{n}", "trace_id": trace_id, "outcome": "success", "rating": n % 5}),
        ]
    store.write(records)


@pytest.fixture(params=["fork", "spawn"])
def start(request, monkeypatch):
    """Readers forked (Linux) or started as `python -m trainer.data.parallel` (everywhere else)."""
    monkeypatch.setattr(parallel, "FORK", request.param == "fork")


def test_readers_make_the_same_dataset_as_one_process(tmp_path, monkeypatch, start):
    with TraceStore(f"sqlite:///{tmp_path / 't.db'}") as store:
        fill(store, 1300)  # three chunks of 500: the readers take turns
        serial = build_sft(
            store, Selection(outcome="success"), SFTConfig(out=str(tmp_path / "serial.jsonl"), model=None)
        )
        monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)
        monkeypatch.setattr(parallel, "readers", lambda: 2)
        shared = build_sft(
            store, Selection(outcome="success"), SFTConfig(out=str(tmp_path / "parallel.jsonl"), model=None)
        )
    for name in ("train", "eval"):
        assert serial.paths[name].read_bytes() == shared.paths[name].read_bytes()
    assert [s.to_dict() for s in serial.summary.steps] == [s.to_dict() for s in shared.summary.steps]
    assert serial.summary.steps[2].reasons["phone"] == 1300  # redacted in the readers, counted here
    assert "+1 415" not in shared.paths["train"].read_text()


def test_a_reader_error_is_raised_here(tmp_path, start):
    job = parallel.ReadJob(f"sqlite:///{tmp_path / 'missing.db'}", Selection(), "run", False, [])
    with pytest.raises(StoreError, match="no trace store at"):
        list(parallel.read_in_processes(job, {name: Step(name) for name in parallel.STEPS}))
