"""Bad input and faults: the proxy's own errors in each API's shape, upstream errors unchanged."""

from __future__ import annotations

import signal
import time
import uuid

import anthropic
import httpx
import openai
import pytest

from agent_tracer.loopback import free_port
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.testing.proxy_process import marked, wait_for_call


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/v1/responses", "openai"), ("/v1/messages", "anthropic")],
)
def test_invalid_json_is_400_in_the_api_shape_and_not_sent_upstream(proxy, upstream, path, shape):
    sent = len(upstream.requests)
    for body in (b'{"model": "gpt-test", "messages": [', b"[1, 2]"):
        response = httpx.post(
            proxy.url + path,
            content=body,
            headers={"content-type": "application/json", "authorization": "Bearer sk-test"},
        )
        assert response.status_code == 400
        error = response.json()
        if shape == "openai":
            assert set(error) == {"error"}
            assert error["error"]["type"] == "invalid_request_error" and error["error"]["code"] == "invalid_json"
            assert error["error"]["message"]
        else:
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
            assert error["error"]["message"]
    assert len(upstream.requests) == sent


def test_upstream_error_passes_back_unchanged(proxy, proxy_store, upstream):
    marker = uuid.uuid4().hex
    errors = []
    for base_url in (proxy.openai_base_url, upstream.openai_base_url):
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": marker}],
                extra_headers={"x-fake-scenario": "error:429"},
            )
        errors.append(caught.value)
    via_proxy, direct = errors
    assert via_proxy.status_code == direct.status_code == 429
    assert via_proxy.body == direct.body
    assert via_proxy.response.headers["retry-after"] == "0"

    call = wait_for_call(proxy_store, marked(marker))
    assert call.status == "error" and call.http_status == 429


def test_upstream_time_out_is_504(proxy, proxy_store):
    marker = uuid.uuid4().hex
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="claude-test",
            max_tokens=10,
            messages=[{"role": "user", "content": marker}],
            extra_headers={"x-fake-scenario": "stall:1.5"},
        )
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "timeout_error"
    assert "in time" in caught.value.body["error"]["message"]
    call = wait_for_call(proxy_store, marked(marker))
    assert call.status == "error" and call.http_status is None


def test_client_disconnect_cancels_upstream_and_records_incomplete(proxy, proxy_store):
    marker = uuid.uuid4().hex
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": f"one two three four five six {marker}"}],
        stream=True,
        extra_headers={"x-fake-scenario": "slow_stream:0.2"},
    )
    next(iter(stream))
    stream.close()
    call = wait_for_call(proxy_store, marked(marker))
    assert call.status == "incomplete" and call.streamed


def test_client_gone_before_the_answer_cancels_upstream_and_records_incomplete(proxy, proxy_store):
    marker = uuid.uuid4().hex
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            proxy.openai_base_url + "/chat/completions",
            timeout=0.3,
            json={"model": "gpt-test", "messages": [{"role": "user", "content": marker}]},
            headers={"x-fake-scenario": "stall:1.5"},
        )
    call = wait_for_call(proxy_store, marked(marker), timeout=3)  # not the 504 of the proxy's 1 s time-out
    assert call.status == "incomplete" and call.http_status is None


def test_broken_upstream_stream_ends_cleanly_and_is_recorded(proxy, proxy_store):
    marker = uuid.uuid4().hex
    response = httpx.post(
        proxy.openai_base_url + "/chat/completions",
        json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": f"a b c d e f {marker}"}]},
        headers={"x-fake-scenario": "cut"},
    )
    assert response.status_code == 200 and b"data: " in response.content and b"[DONE]" not in response.content
    call = wait_for_call(proxy_store, marked(marker))
    assert call.status == "error" and call.streamed


def test_upstream_down_is_502_and_shutdown_flushes(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    process = ProxyProcess(closed, tmp_path / "traces.db")
    try:
        response = httpx.post(
            process.openai_base_url + "/chat/completions",
            json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "upstream_unreachable"
        assert "unreachable" in error["message"] and "\n" not in error["message"]
        response = httpx.post(
            process.url + "/v1/messages",
            json={"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 502 and response.json()["error"]["type"] == "api_error"
        assert httpx.get(process.openai_base_url + "/models").status_code == 502
    finally:
        output = process.stop(signal.SIGTERM)
    assert process.stopped_cleanly, output


def test_body_over_the_limit_is_413_and_not_sent_upstream(upstream, tmp_path):
    process = ProxyProcess(upstream.url, tmp_path / "traces.db", "--max-request-mb", "0.01")  # 10 KiB
    try:
        sent = len(upstream.requests)
        big = "x" * 12_000
        with pytest.raises(openai.APIStatusError) as caught:
            openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": big}]
            )
        assert caught.value.status_code == 413
        assert caught.value.body["code"] == "request_too_large" and "0.01 MiB" in caught.value.body["message"]

        def chunks():  # no content-length: the limit is found while reading
            yield b'{"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "'
            for _ in range(12):
                yield b"y" * 1000
            yield b'"}]}'

        response = httpx.post(
            process.url + "/v1/messages", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413 and response.json()["error"]["type"] == "request_too_large"
        assert len(upstream.requests) == sent

        # a path that is not a model call streams through whatever its size
        payload = {"input": big, "model": "embed-test"}
        response = httpx.post(process.openai_base_url + "/embeddings", json=payload)
        assert response.status_code == 404  # the fake has no embeddings: its own answer, passed back
        assert upstream.requests[-1]["json"] == payload
        # and a small model call still goes through
        ok = httpx.post(
            process.openai_base_url + "/chat/completions",
            json={"model": "gpt-test", "messages": [{"role": "user", "content": "small"}]},
        )
        assert ok.status_code == 200
    finally:
        process.stop()


def test_a_dead_database_never_fails_a_request_and_every_call_is_spilled(upstream, tmp_path):
    dead = f"postgresql+psycopg://nobody:secret@127.0.0.1:{free_port()}/nothing?connect_timeout=1"
    spill = tmp_path / "spill.jsonl"
    process = ProxyProcess(upstream.url, dead, env={"AGENT_TRACER_SPILL": str(spill)})
    markers = [uuid.uuid4().hex for _ in range(3)]
    try:
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        for marker in markers:
            answer = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": marker}])
            assert answer.choices[0].message.content == f"Echo: {marker}"
        with client.chat.completions.create(
            model="gpt-test", stream=True, messages=[{"role": "user", "content": "streamed"}]
        ) as stream:
            assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        ui = httpx.get(process.url + "/agent-tracer/ui/")  # the UI is off, not the proxy, and says why
        assert ui.status_code == 404 and "the trace store could not be opened" in ui.text
    finally:
        output = process.stop(signal.SIGTERM)
    assert process.stopped_cleanly, output
    assert "spilling" in output and "secret" not in output and "web UI off" in output

    from click.testing import CliRunner

    from agent_tracer.cli import main
    from agent_tracer.store import TraceStore

    recovered = f"sqlite:///{tmp_path / 'recovered.db'}"
    result = CliRunner().invoke(main, ["traces", "import", str(spill), "--format", "spill", "--db", recovered])
    assert result.exit_code == 0, result.output
    with TraceStore(recovered) as store:
        calls = store.calls()
    assert len(calls) == 4
    assert all(any(marker in (call.raw_request or "") for call in calls) for marker in markers)


def test_calls_a_killed_proxy_held_are_counted_as_lost_by_its_next_start(upstream, tmp_path, scrape):
    """SIGKILL to the proxy and its writer processes while their store is locked: the calls they
    held are gone, and the next `agent-tracer proxy` on the same spill file counts them in
    /metrics and says so in its log."""
    import sqlite3

    import psutil

    db = tmp_path / "traces.db"
    env = {"AGENT_TRACER_SPILL": str(tmp_path / "spill.jsonl")}
    process = ProxyProcess(upstream.url, db, "--no-ui", env=env)
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # nothing can be written: the calls stay in the writers' hands
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        for i in range(5):
            answer = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"k{i}"}])
            assert answer.choices[0].message.content == f"Echo: k{i}"
        proxy = psutil.Process(process.process.pid)
        tree = [proxy, *proxy.children(recursive=True)]  # its workers and their writer processes
        assert any("agent_tracer.writer_process" in " ".join(p.cmdline()) for p in tree)
        for proc in tree:
            proc.kill()
        psutil.wait_procs(tree, timeout=10)
    finally:
        locker.close()
        process.stop()
    again = ProxyProcess(upstream.url, db, "--no-ui", env=env)
    try:
        lost = 0.0
        for _ in range(40):  # the worker shares its counts once a second
            lost = scrape(again.url)("agent_tracer_spans_total", stage="lost")
            if lost:
                break
            time.sleep(0.1)
    finally:
        output = again.stop()
    assert lost == 5
    assert "5 spans captured by an earlier process were lost" in output


def test_headers_over_64_kib_are_431_and_not_sent_upstream(proxy, upstream, scrape):
    call = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    sent = len(upstream.requests)
    refused = scrape(proxy.url)("agent_tracer_http_refused_total", code="431")
    # a header too long to finish is refused before its end; one that ends, by the fields' size
    for padding in ("a" * (1 << 20), "b" * 70_000):
        response = httpx.post(proxy.openai_base_url + "/chat/completions", json=call, headers={"x-padding": padding})
        assert response.status_code == 431
        assert response.text == "Request header fields too large: at most 64 KiB.\n"
    many = {f"x-pad-{i}": "c" * 1000 for i in range(80)}  # many headers, none long
    assert httpx.post(proxy.openai_base_url + "/chat/completions", json=call, headers=many).status_code == 431
    assert len(upstream.requests) == sent
    assert scrape(proxy.url)("agent_tracer_http_refused_total", code="431") == refused + 3

    # under the limit, and large bodies after small heads on one kept-alive connection, go through
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0)
    answer = client.chat.completions.create(**call, extra_headers={"x-padding": "d" * 60_000})
    assert answer.choices[0].message.content == "Echo: hi"
    assert upstream.requests[-1]["headers"]["x-padding"] == "d" * 60_000
    with httpx.Client(base_url=proxy.openai_base_url) as http:
        for size in (1 << 20, 10):
            big = {"model": "gpt-test", "messages": [{"role": "user", "content": "e" * size}]}
            response = http.post("/chat/completions", json=big)
            assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"].endswith("e")
