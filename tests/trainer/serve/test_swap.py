"""The swap end to end: the official openai SDK → `agent-tracer proxy --routes` → the project's own
serve (the tiny Llama, made to write known answers) as primary, a fake frontier API as fallback.
A good tuned answer reaches the agent; a malformed or wrong tool call gets the frontier's."""

from __future__ import annotations

import uuid

import openai
import pytest

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.testing.proxy_process import marked, wait_for_call
from agent_tracer.testing.upstream import FakeUpstream

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "An order's status.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@pytest.fixture(scope="module")
def frontier():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def swapped(base_url, frontier, tmp_path_factory):
    """The proxy answering `support-agent` from the tiny model's server, the fake frontier behind it."""
    folder = tmp_path_factory.mktemp("swap")
    routes = folder / "routes.yaml"
    routes.write_text(
        "routes:\n  support-agent:\n"
        f"    primary: {{url: '{base_url}', model: tiny}}\n"
        f"    fallback: {{url: '{frontier.openai_base_url}', model: gpt-4o}}\n"
    )
    process = ProxyProcess(frontier.url, folder / "traces.db", "--routes", str(routes))
    yield process
    output = process.stop()
    assert process.stopped_cleanly, output


def ask(swapped, marker: str, *, stream: bool):
    """(the route that answered, the tool calls as (name, arguments) pairs, the text)."""
    client = openai.OpenAI(base_url=swapped.openai_base_url, api_key="sk-agent", max_retries=0)
    request = dict(
        model="support-agent",
        tools=[LOOKUP],
        messages=[{"role": "user", "content": f"Where is order A-17? {marker} {uuid.uuid4().hex}"}],
    )
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**request)
        message = raw.parse().choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or ()]
        return raw.headers["x-agent-route"], calls, message.content
    with client.chat.completions.with_streaming_response.create(stream=True, **request) as raw:
        names, arguments, text = {}, {}, []
        for chunk in raw.parse():
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                for call in choice.delta.tool_calls or ():
                    names[call.index] = names.get(call.index) or call.function.name
                    arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
        return raw.headers["x-agent-route"], [(names[i], arguments[i]) for i in sorted(names)], "".join(text) or None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_the_tuned_models_good_tool_call_reaches_the_agent(swapped, frontier, stream):
    before = len(frontier.requests)
    route, calls, _ = ask(swapped, "[call]", stream=stream)
    assert route == "primary"
    assert calls == [("lookup_order", '{"order_id": "A-17"}')]
    assert len(frontier.requests) == before


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_text_answer_with_tools_offered_is_good_too(swapped, stream):
    assert ask(swapped, "[text]", stream=stream) == ("primary", [], "Order A-17 has shipped.")


@pytest.mark.parametrize(("marker", "reason"), [("[broken]", "malformed_tool_call"), ("[two-calls]", "unknown_tool")])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_bad_tuned_answer_gets_the_frontiers_instead(swapped, frontier, marker, reason, stream):
    route, calls, _ = ask(swapped, marker, stream=stream)
    assert route == "fallback"
    assert calls == [("lookup_order", '{"order_id":"x"}')]  # the fake frontier's call
    sent = frontier.requests[-1]["json"]
    assert sent["model"] == "gpt-4o" and marker in sent["messages"][0]["content"]
    with TraceStore(swapped.db_url) as store:
        tuned = wait_for_call(
            store, lambda call: call.route == "primary" and marked(sent["messages"][0]["content"])(call)
        )
    assert tuned.fallback_reason == reason and tuned.response_model == "tiny"
