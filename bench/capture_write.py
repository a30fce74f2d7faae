"""Write throughput of the capture writer: what it does per batch, timed directly.

Used by `capture_overhead.py` (its `--write-calls`), in a worker process of its own.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_call import CALL_KWARGS, MESSAGES


def _captured_payloads(base_url: str, tmp: Path) -> list[Any]:
    """Real payloads: a few calls of each shape through the SDK with agent-tracer on, taken on their
    way to the writer."""
    import openai

    import agent_tracer
    from agent_tracer import runtime

    agent_tracer.init(db=f"sqlite:///{tmp / 'capture.db'}")
    rt = runtime.current()
    payloads: list[Any] = []
    submit = rt.submit
    rt.submit = lambda payload: (payloads.append(payload), submit(payload))  # bench only: watch the hand-off
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench-not-a-real-key", max_retries=0)
    tool_turn = {**CALL_KWARGS, "messages": MESSAGES[:2]}  # the fake answers with a call to lookup_order
    for kwargs in (CALL_KWARGS, tool_turn):
        client.chat.completions.create(**kwargs)
        for _ in client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
            pass
    client.close()
    agent_tracer.uninstrument()
    del rt.submit
    return payloads


def _replicas(payloads: list[Any], n: int) -> list[Any]:
    """`n` payloads cycling through `payloads`, each its own trace with fresh ids."""
    from agent_tracer.records import SpanIds

    out = []
    for i in range(n):
        ids = SpanIds(trace_id=os.urandom(16).hex(), span_id=os.urandom(8).hex(), parent_span_id=None)
        out.append(dataclasses.replace(payloads[i % len(payloads)], ids=ids))
    return out


def _records_breakdown(payloads: list[Any]) -> dict[str, float]:
    """Mean µs per call of the parts of `LLMCallPayload.records()` that cost the most."""
    from agent_tracer.decode import decode_call
    from agent_tracer.redact import has_secret

    parts: dict[str, Callable[[Any], Any]] = {
        "decode_call (request + response)": lambda p: decode_call(
            p.codec,
            p.raw_request,
            p.raw_response,
            sse=p.streamed,
            ending=p.ending,
            http_status=p.http_status,
            error=p.error,
        ),
        "records() in all": lambda p: p.records(),
        "has_secret(raw request)": lambda p: has_secret(p.raw_request.decode("utf-8", "replace")),
        "has_secret(raw response)": lambda p: has_secret(p.raw_response.decode("utf-8", "replace")),
    }
    out = {}
    for label, part in parts.items():
        t0 = time.perf_counter()
        for payload in payloads:
            part(payload)
        out[label] = (time.perf_counter() - t0) / len(payloads) * 1e6
    return out


def run_write_worker(base_url: str, n: int, repeats: int) -> dict[str, Any]:
    import agent_tracer
    from agent_tracer import runtime
    from agent_tracer.config import TracerConfig
    from agent_tracer.store import TraceStore

    batch_size = TracerConfig(db="sqlite:///unused.db").batch_size
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp_name:
        tmp = Path(tmp_name)
        captured = _captured_payloads(base_url, tmp)
        sizes = [len(p.raw_request) + len(p.raw_response) for p in captured]
        direct, records_s = [], []
        for rep in range(repeats):
            payloads = _replicas(captured, n)
            store = TraceStore(f"sqlite:///{tmp / f'write-{rep}.db'}")
            gc.collect()
            convert = 0.0
            t0 = time.perf_counter()
            for start in range(0, n, batch_size):
                c0 = time.perf_counter()
                records = [record for payload in payloads[start : start + batch_size] for record in payload.records()]
                convert += time.perf_counter() - c0
                store.write(records)
            direct.append(time.perf_counter() - t0)
            records_s.append(convert)
            store.close()
        # End to end through the running writer: submit all, then flush.
        payloads = _replicas(captured, n)
        agent_tracer.init(db=f"sqlite:///{tmp / 'writer.db'}")
        rt = runtime.current()
        gc.collect()
        t0 = time.perf_counter()
        for payload in payloads:
            rt.submit(payload)
        submitted = time.perf_counter() - t0
        ok = agent_tracer.flush(timeout=300)
        through_writer = time.perf_counter() - t0
        stats = agent_tracer.stats()
        agent_tracer.uninstrument()
    return {
        "calls": n,
        "batch_size": batch_size,
        "payload_bytes": statistics.mean(sizes),
        "direct_s": direct,
        "records_s": records_s,
        "writer_s": through_writer,
        "writer_submit_s": submitted,
        "writer_flushed": ok,
        "writer_stats": stats,
        "records_breakdown": _records_breakdown(_replicas(captured, min(n, 2000))),
    }
