"""Many clients at once: each gets its own bytes back and its own recorded call; several workers."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import openai

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore

CLIENTS = 100


async def _stream_one(client: openai.AsyncOpenAI, marker: str) -> str:
    stream = await client.chat.completions.create(
        model="gpt-test",
        stream=True,
        messages=[{"role": "user", "content": f"tell {marker} back slowly"}],
        extra_headers={"x-fake-scenario": "text,slow_stream:0.02"},
    )
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


async def _stream_all(base_url: str, markers: list[str]) -> list[str]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=60)
    try:
        return await asyncio.gather(*(_stream_one(client, marker) for marker in markers))
    finally:
        await client.close()


def test_a_hundred_simultaneous_streams_each_get_their_own_answer_and_record(proxy, proxy_store, upstream):
    markers = [uuid.uuid4().hex for _ in range(CLIENTS)]
    started = time.monotonic()
    texts = asyncio.run(_stream_all(proxy.openai_base_url, markers))
    elapsed = time.monotonic() - started
    assert texts == [f"Echo: tell {marker} back slowly" for marker in markers]
    # about a dozen events 20 ms apart each: one after the other this would take 100 × 0.2 s
    assert elapsed < 10, f"the streams did not run side by side ({elapsed:.1f} s)"

    wanted = set(markers)
    deadline = time.monotonic() + 15
    while True:
        calls = {m: c for c in proxy_store.calls(status="ok") for m in wanted if m in (c.raw_request or "")}
        if len(calls) == CLIENTS or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert set(calls) == wanted
    for marker, call in calls.items():
        assert call.streamed and call.response["message"]["content"] == f"Echo: tell {marker} back slowly"
    assert len({call.trace_id for call in calls.values()}) == CLIENTS


def test_workers_share_the_port_record_every_call_and_add_up_their_metrics(upstream, tmp_path, scrape):
    process = ProxyProcess(upstream.url, tmp_path / "traces.db", "--workers", "2")
    markers = [uuid.uuid4().hex for _ in range(24)]
    try:
        texts = asyncio.run(_stream_all(process.openai_base_url, markers))
        assert texts == [f"Echo: tell {marker} back slowly" for marker in markers]
        time.sleep(1.5)  # each worker shares its counts once a second
        for _ in range(6):  # whichever worker answers the scrape reports both workers' totals
            samples = scrape(process.url)
            assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="200") == len(
                markers
            )
    finally:
        output = process.stop(signal.SIGTERM)
    assert process.process.returncode in (0, -signal.SIGTERM), output
    with TraceStore(process.db_url) as store:
        recorded = {m for call in store.calls() for m in markers if m in (call.raw_request or "")}
    assert recorded == set(markers)
