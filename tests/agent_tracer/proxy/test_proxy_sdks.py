"""The official SDKs with base_url at a real proxy process: same answers as direct, every call recorded."""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import openai

from agent_tracer.testing.proxy_process import marked, wait_for_call

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
}
PARALLEL = {"x-fake-scenario": "parallel_tools"}


def openai_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)


def anthropic_client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test", max_retries=0)


def assert_recorded_by_proxy(store, call) -> None:
    assert store.get_trace(call.trace_id).trace.source == "proxy"


def test_chat_completion_plain_with_tools(proxy, proxy_store, upstream):
    marker = uuid.uuid4().hex

    def ask(base_url):
        return openai_client(base_url).chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": f"weather {marker}"}],
            tools=[WEATHER, TIME],
            extra_headers=PARALLEL,
        )

    via_proxy, direct = ask(proxy.openai_base_url), ask(upstream.openai_base_url)
    assert strip_ids(via_proxy.model_dump()) == strip_ids(direct.model_dump())
    assert len(via_proxy.choices[0].message.tool_calls) == 2

    call = wait_for_call(proxy_store, marked(marker))
    assert_recorded_by_proxy(proxy_store, call)
    assert call.api == "openai.chat" and call.status == "ok" and call.http_status == 200 and not call.streamed
    assert call.response["message"]["tool_calls"][0]["id"] == via_proxy.choices[0].message.tool_calls[0].id
    assert call.tool_names == ["get_weather", "get_time"]
    assert call.endpoint == upstream.url + "/v1/chat/completions"


def _collect_chat_stream(stream) -> tuple[str, list[tuple[str, str]]]:
    text, calls = "", {}
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, ["", ""])
                call[0] += delta.function.name or ""
                call[1] += delta.function.arguments or ""
    return text, [tuple(calls[i]) for i in sorted(calls)]


def test_chat_stream_with_parallel_tool_calls(proxy, proxy_store, upstream):
    marker = uuid.uuid4().hex

    def ask(base_url):
        return _collect_chat_stream(
            openai_client(base_url).chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": f"weather and time {marker}"}],
                tools=[WEATHER, TIME],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=PARALLEL,
            )
        )

    via_proxy, direct = ask(proxy.openai_base_url), ask(upstream.openai_base_url)
    assert via_proxy == direct
    text, calls = via_proxy
    assert [name for name, _ in calls] == ["get_weather", "get_time"]

    call = wait_for_call(proxy_store, marked(marker))
    assert_recorded_by_proxy(proxy_store, call)
    assert call.streamed and call.status == "ok"
    assert call.ttft_ms is not None and 0 < call.ttft_ms <= call.latency_ms
    stored = call.response["message"]
    assert stored["content"] == text
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in stored["tool_calls"]] == calls


def test_anthropic_messages_stream(proxy, proxy_store, upstream):
    marker = uuid.uuid4().hex
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}

    def ask(base_url):
        with anthropic_client(base_url).messages.stream(
            model="claude-test",
            max_tokens=100,
            tools=[tool],
            messages=[{"role": "user", "content": f"weather {marker}"}],
        ) as stream:
            return stream.get_final_message()

    via_proxy, direct = ask(proxy.url), ask(upstream.anthropic_base_url)
    assert strip_ids(via_proxy.model_dump()) == strip_ids(direct.model_dump())
    assert via_proxy.stop_reason == "tool_use"

    call = wait_for_call(proxy_store, marked(marker))
    assert_recorded_by_proxy(proxy_store, call)
    assert call.api == "anthropic.messages" and call.streamed and call.status == "ok"
    assert call.tool_names == ["get_weather"]
    assert call.endpoint == upstream.url + "/v1/messages"


def test_responses_create(proxy, proxy_store, upstream):
    marker = uuid.uuid4().hex

    def ask(base_url):
        return openai_client(base_url).responses.create(model="gpt-test", input=f"hello {marker}")

    via_proxy, direct = ask(proxy.openai_base_url), ask(upstream.openai_base_url)
    assert via_proxy.output_text == direct.output_text == f"Echo: hello {marker}"
    assert strip_ids(via_proxy.model_dump()) == strip_ids(direct.model_dump())

    call = wait_for_call(proxy_store, marked(marker))
    assert_recorded_by_proxy(proxy_store, call)
    assert call.api == "openai.responses" and call.response["message"]["content"] == via_proxy.output_text


def test_models_list_passes_through_unrecorded(proxy, proxy_store, upstream):
    before = len(proxy_store.calls())
    via_proxy = openai_client(proxy.openai_base_url).models.list()
    direct = openai_client(upstream.openai_base_url).models.list()
    assert [m.id for m in via_proxy] == [m.id for m in direct]
    assert any(r["path"] == "/v1/models" and r["method"] == "GET" for r in upstream.requests)
    # a recorded call made after it is written; the models list never is
    test_responses_create(proxy, proxy_store, upstream)
    assert len(proxy_store.calls()) == before + 1
    assert not any("/models" in (c.endpoint or "") for c in proxy_store.calls())


def strip_ids(value: Any) -> Any:
    """A response without the values the fake makes up per answer (ids, timestamps)."""
    if isinstance(value, dict):
        return {
            k: strip_ids(v)
            for k, v in value.items()
            if k not in {"id", "created", "created_at", "call_id", "completed_at"}
        }
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value
