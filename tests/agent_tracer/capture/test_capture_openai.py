"""The official openai SDK, sync and async, plain and streaming, against a loopback server."""

from __future__ import annotations

import json

import openai
import pytest

import agent_tracer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}


def client(upstream, **kwargs):
    return openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, **kwargs)


def async_client(upstream, **kwargs):
    return openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0, **kwargs)


def only_call(store, trace_id):
    detail = store.get_trace(trace_id)
    assert len(detail.calls) == 1, detail.calls
    return detail.calls[0]


def test_chat_completion_inside_an_agent_run(traced, upstream):
    @agent_tracer.trace_agent(name="support-agent", tags=["smoke"])
    def run(task: str):
        answer = client(upstream).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": task}], temperature=0.2
        )
        return answer.choices[0].message.content, agent_tracer.current_trace_id()

    content, trace_id = run("hello there")
    assert content == "Echo: hello there"
    assert agent_tracer.flush()

    detail = traced.get_trace(trace_id)
    assert detail.trace.name == "support-agent"
    assert detail.trace.task == "hello there"
    assert detail.trace.tags == ["smoke"]
    assert detail.trace.status == "ok"
    call = only_call(traced, trace_id)
    assert call.api == "openai.chat" and call.provider == "openai"
    assert call.request_model == "gpt-test" and call.response_model
    assert call.request["messages"] == [{"role": "user", "content": "hello there"}]
    assert call.request["params"]["temperature"] == 0.2
    assert call.response["message"]["content"] == "Echo: hello there"
    assert call.input_tokens and call.output_tokens
    assert call.status == "ok" and call.http_status == 200 and not call.streamed
    assert call.parent_span_id == detail.agent_runs[0].id
    assert json.loads(call.raw_request)["model"] == "gpt-test"
    assert call.endpoint == upstream.openai_base_url + "/chat/completions"
    stats = agent_tracer.stats()
    assert stats["written"] == stats["captured"] >= 2 and stats["dropped"] == 0


def test_stream_with_interleaved_parallel_tool_calls_keeps_every_call(traced, upstream):
    stream = client(upstream).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "weather and time"}],
        tools=[WEATHER, TIME],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-scenario": "parallel_tools"},
    )
    seen: dict[int, dict] = {}
    text = ""
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = seen.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or delta.id
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    assert len(seen) == 2
    assert agent_tracer.flush()

    (call,) = traced.calls()
    assert call.streamed and call.status == "ok"
    assert call.ttft_ms is not None and 0 < call.ttft_ms <= call.latency_ms
    stored = call.response["message"]
    assert stored["content"] == text
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in stored["tool_calls"]] == [
        (c["id"], c["name"], c["arguments"]) for c in (seen[0], seen[1])
    ]
    assert call.has_tool_calls and call.tool_names == ["get_weather", "get_time"]
    assert call.finish_reasons == ["tool_calls"]
    assert call.output_tokens is not None
    # a call outside any trace_agent is a trace of its own
    trace = traced.get_trace(call.trace_id).trace
    assert trace.source == "decorator" and trace.name == "chat gpt-test"


async def test_async_chat_plain_and_streamed(traced, upstream):
    aclient = async_client(upstream)

    @agent_tracer.trace_agent
    async def agent(question: str):
        first = await aclient.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": question}], tools=[WEATHER]
        )
        call = first.choices[0].message.tool_calls[0]
        stream = await aclient.chat.completions.create(
            model="gpt-test",
            messages=[
                {"role": "user", "content": question},
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return text, agent_tracer.current_trace_id()

    text, trace_id = await agent("weather in Paris?")
    assert agent_tracer.flush()
    detail = traced.get_trace(trace_id)
    assert detail.trace.name == "agent"
    assert [c.streamed for c in detail.calls] == [False, True]
    first, second = detail.calls
    assert first.response["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(first.response["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "x"}
    assert second.request["messages"][-1] == {
        "role": "tool",
        "tool_call_id": first.response["message"]["tool_calls"][0]["id"],
        "content": "sunny",
    }
    assert second.response["message"]["content"] == text != ""


def test_responses_api_plain_and_streamed(traced, upstream):
    c = client(upstream)
    plain = c.responses.create(model="gpt-test", input="say hi", instructions="be brief")
    with c.responses.stream(model="gpt-test", input="stream hi") as stream:
        streamed_text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert agent_tracer.flush()
    calls = sorted(traced.calls(), key=lambda call: call.started_at)
    assert [call.api for call in calls] == ["openai.responses", "openai.responses"]
    assert calls[0].request["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say hi"},
    ]
    assert calls[0].response["message"]["content"] == plain.output_text
    assert calls[1].streamed and calls[1].response["message"]["content"] == streamed_text
    assert calls[1].input_tokens is not None


def test_client_created_before_init_is_captured_and_uninstrument_restores(upstream, db_url, tmp_path):
    import httpx2

    original = httpx2.HTTPTransport.handle_request
    early = client(upstream)
    agent_tracer.init(db=db_url, spill_path=str(tmp_path / "spill.jsonl"))
    try:
        assert httpx2.HTTPTransport.handle_request is not original
        early.chat.completions.create(model="m", messages=[{"role": "user", "content": "early"}])
        assert agent_tracer.flush()
        assert agent_tracer.stats()["written"] == 1
    finally:
        agent_tracer.uninstrument()
    assert httpx2.HTTPTransport.handle_request is original
    early.chat.completions.create(model="m", messages=[{"role": "user", "content": "after"}])
    from agent_tracer.store import TraceStore

    store = TraceStore(db_url)
    assert [c.request["messages"][0]["content"] for c in store.calls()] == ["early"]
    store.close()


def test_other_http_traffic_passes_untouched_and_unrecorded(traced, upstream):
    import httpx
    import httpx2

    for module in (httpx, httpx2):
        with module.Client() as http:
            models = http.get(upstream.openai_base_url + "/models")
            assert models.status_code == 200 and models.json()["object"] == "list"
            other = http.post(upstream.url + "/not/a/model/api", json={"x": 1})
            assert other.status_code == 404
    assert agent_tracer.flush()
    assert traced.calls() == []
    assert agent_tracer.stats()["captured"] == 0


@pytest.mark.parametrize(
    "code, error", [(429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError)]
)
def test_upstream_errors_raise_as_without_tracing_and_are_recorded(traced, upstream, code, error):
    with pytest.raises(error) as raised:
        client(upstream).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-fake-scenario": f"error:{code}"},
        )
    assert raised.value.status_code == code
    assert agent_tracer.flush()
    (call,) = traced.calls()
    assert call.status == "error" and call.http_status == code and call.error
    assert call.response is None


def test_timeout_raises_the_sdk_timeout_and_is_recorded(traced, upstream):
    with pytest.raises(openai.APITimeoutError):
        client(upstream, timeout=0.2).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], extra_headers={"x-fake-scenario": "stall:1"}
        )
    assert agent_tracer.flush()
    (call,) = traced.calls()
    assert call.status == "error" and call.http_status is None
    assert "Timeout" in call.error


def test_broken_stream_raises_in_the_agent_and_is_recorded_as_broken(traced, upstream):
    with pytest.raises(openai.APIError):
        for _ in client(upstream).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "one two three four five"}],
            stream=True,
            extra_headers={"x-fake-scenario": "cut"},
        ):
            pass
    assert agent_tracer.flush()
    (call,) = traced.calls()
    assert call.status == "error" and call.streamed
    assert call.raw_response  # what arrived before the break is kept


def test_abandoned_streams_are_recorded_as_incomplete(traced, upstream):
    import gc

    c = client(upstream)
    messages = [{"role": "user", "content": "a long answer with many words in it"}]

    def read_first_words(stream):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return

    closed = c.chat.completions.create(model="m", messages=messages, stream=True)
    read_first_words(closed)
    closed.close()
    dropped = c.chat.completions.create(model="m", messages=messages, stream=True)
    read_first_words(dropped)
    del dropped
    gc.collect()
    assert agent_tracer.flush()
    calls = traced.calls()
    assert len(calls) == 2
    assert {c.status for c in calls} == {"incomplete"}
    assert all(c.ttft_ms is not None for c in calls)


def test_sdk_surface_is_untouched_raw_response_headers_and_parse(traced, upstream):
    raw = client(upstream).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "raw"}]
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content == "Echo: raw"
    with client(upstream).chat.completions.with_streaming_response.create(
        model="m", messages=[{"role": "user", "content": "raw stream"}], stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b"".join(response.iter_bytes())
    assert body.rstrip().endswith(b"data: [DONE]")
    assert agent_tracer.flush()
    calls = sorted(traced.calls(), key=lambda call: call.started_at)
    assert [c.status for c in calls] == ["ok", "ok"]
    assert calls[1].raw_response.encode() == body
