"""The official anthropic SDK: messages.create and messages.stream, sync and async, with tools."""

from __future__ import annotations

import json

import anthropic

import agent_tracer

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client(upstream):
    return anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test", max_retries=0)


def test_tool_loop_with_messages_create(traced, upstream):
    c = client(upstream)

    @agent_tracer.trace_tool
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    @agent_tracer.trace_agent(name="weather-agent")
    def run(question: str):
        messages = [{"role": "user", "content": question}]
        first = c.messages.create(
            model="claude-test", max_tokens=100, system="You help.", messages=messages, tools=[WEATHER]
        )
        use = next(block for block in first.content if block.type == "tool_use")
        result = get_weather(**use.input)
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": result}]},
        ]
        second = c.messages.create(
            model="claude-test", max_tokens=100, messages=messages, extra_headers={"x-fake-scenario": "text"}
        )
        return second.content[0].text, use.id, agent_tracer.current_trace_id()

    answer, tool_use_id, trace_id = run("weather?")
    assert agent_tracer.flush()
    detail = traced.get_trace(trace_id)
    first, second = detail.calls
    assert first.api == "anthropic.messages" and first.provider == "anthropic"
    assert first.request["messages"] == [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "weather?"},
    ]
    assert first.request["tools"][0]["function"]["name"] == "get_weather"
    (call,) = first.response["message"]["tool_calls"]
    assert call["id"] == tool_use_id and json.loads(call["function"]["arguments"]) == {"city": "x"}
    assert first.finish_reasons == ["tool_calls"]
    assert {"role": "tool", "tool_call_id": tool_use_id, "content": "sunny in x"} in second.request["messages"]
    assert second.response["message"]["content"] == answer
    (tool,) = detail.tools
    assert tool.name == "get_weather" and tool.arguments == {"city": "x"} and tool.result == "sunny in x"
    assert tool.parent_span_id == detail.agent_runs[0].id


def test_messages_stream_sync(traced, upstream):
    with client(upstream).messages.stream(
        model="claude-test",
        max_tokens=100,
        messages=[{"role": "user", "content": "stream me please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert agent_tracer.flush()
    (call,) = traced.calls()
    assert call.streamed and call.status == "ok" and call.ttft_ms is not None
    assert call.response["message"]["content"] == text
    assert call.response["id"] == final.id
    assert call.input_tokens == final.usage.input_tokens and call.output_tokens == final.usage.output_tokens


async def test_messages_async_create_and_stream_with_tools(traced, upstream):
    c = anthropic.AsyncAnthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    plain = await c.messages.create(
        model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}], tools=[WEATHER]
    )
    async with c.messages.stream(
        model="claude-test",
        max_tokens=50,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-scenario": "parallel_tools"},
    ) as stream:
        final = await stream.get_final_message()
    assert agent_tracer.flush()
    calls = sorted(traced.calls(), key=lambda call: call.started_at)
    assert [c.streamed for c in calls] == [False, True]
    assert calls[0].response["message"]["tool_calls"][0]["id"] == plain.content[0].id
    streamed_ids = [b.id for b in final.content if b.type == "tool_use"]
    assert [t["id"] for t in calls[1].response["message"]["tool_calls"]] == streamed_ids
    assert len(streamed_ids) == 2
