"""Replay on the run page: recorded model calls sent again to a "tuned" endpoint (a scripted fake
API on loopback) and judged as the proxy's router would judge them, through the UI's real HTTP
app (a store really captured through the OpenAI and Anthropic SDKs)."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from starlette.testclient import TestClient

import agent_tracer
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream, Reply
from agent_tracer.ui import create_app
from agent_tracer.ui.replay import NOT_CONFIGURED, READ_ONLY, ReplayTargets

SECRET = "sk-tuned-secret-0123456789"
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@agent_tracer.trace_agent(name="orders-agent")
def orders_agent(client: openai.OpenAI, question: str) -> str:
    """Asks, runs the tool the model calls, asks again: two model calls."""
    messages = [{"role": "user", "content": question}]
    scenario = "auto"  # a call to lookup_order
    for _ in range(3):
        reply = client.chat.completions.create(
            model="gpt-test", messages=messages, tools=[LOOKUP], extra_headers={"x-fake-scenario": scenario}
        )
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'})
        scenario = "text"
    return ""


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@agent_tracer.trace_agent(name="streaming-agent")
def streaming_agent(client: openai.OpenAI) -> str:
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "Where is order S-5?"}],
        tools=[LOOKUP],
        stream=True,
        extra_headers={"x-fake-scenario": "auto"},
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


@agent_tracer.trace_agent(name="claude-agent")
def claude_agent(client: anthropic.Anthropic) -> str:
    reply = client.messages.create(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "Hello there"}]
    )
    return reply.content[0].text


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of three runs captured through the SDKs: orders-agent (a tool call, then the answer),
    streaming-agent (one streamed call offering a tool) and claude-agent (Anthropic Messages)."""
    folder = tmp_path_factory.mktemp("replay-store")
    url = f"sqlite:///{folder / 'traces.db'}"
    with FakeUpstream() as upstream:
        agent_tracer.init(db=url, spill_path=str(folder / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            orders_agent(client, "What is the status of order A-17?")
            time.sleep(0.002)
            streaming_agent(client)
            time.sleep(0.002)
            claude_agent(anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-test", max_retries=0))
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()
    return url


class Tuned:
    """The "tuned model": a fake API whose answers the test picks (`mode`)."""

    def __init__(self) -> None:
        self.mode = "good"
        self.server = FakeUpstream(reply=self.reply, models=["tuned-m"])

    def reply(self, body: dict) -> Reply:
        if self.mode == "good":
            return Reply(calls=[("lookup_order", {"order_id": "A-17"})], model="tuned-m")
        if self.mode == "unknown_tool":
            return Reply(calls=[("cancel_order", {"order_id": "A-17"})], model="tuned-m")
        if self.mode == "bad_arguments":
            return Reply(calls=[("lookup_order", "{not json")], model="tuned-m")
        if self.mode == "500":
            return Reply(status=500, error="the tuned server fell over")
        if self.mode == "slow":
            return Reply(content="late", delay=3.0)
        raise AssertionError(self.mode)

    @property
    def chats(self) -> list[dict]:
        return [request for request in self.server.requests if request["path"].endswith("/chat/completions")]


@pytest.fixture
def tuned() -> Iterator[Tuned]:
    model = Tuned()
    with model.server:
        yield model


def targets(tuned: Tuned, *extra: str, timeout_s: float | None = 1.5) -> ReplayTargets:
    spec = f"tuned={tuned.server.openai_base_url},model=tuned-m,key_env=TUNED_KEY"
    return ReplayTargets.from_options(None, [spec, *extra], timeout_s)


def run_of(url: str, name: str):
    with TraceStore(url) as store:
        trace = store.traces(name=name)[0]
        return store.get_trace(trace.id)


def replay(client: TestClient, trace_id: str, call_id: str | None, endpoint: str = "endpoint:tuned"):
    page = client.get(f"/runs/{trace_id}").text
    form = {"csrf_token": csrf(page), "endpoint": endpoint}
    if call_id:
        form["call"] = call_id
    return client.post(f"/runs/{trace_id}/replay", data=form)


def text(page: str) -> str:
    """A page's text: tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split()).replace(" :", ":")


def result_block(page: str, call_id: str) -> str:
    """The replay form and result under one model call, as text (tags dropped, spaces collapsed)."""
    start = page.index(f'id="replay-{call_id}"')
    end = min(page.index(end, start) for end in ("</section>", '<details class="bodies">') if end in page[start:])
    return text(page[start:end])


@pytest.mark.parametrize(
    ("mode", "verdict", "detail"),
    [
        ("good", "kept", None),
        ("unknown_tool", "unknown_tool", None),
        ("bad_arguments", "invalid_arguments", None),
        ("500", "http_500", "the tuned server fell over"),
        ("slow", "timeout", "no whole answer within 1.5 s"),
    ],
)
def test_a_replayed_call_gets_the_routers_verdict(recorded, tuned, monkeypatch, mode, verdict, detail):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    tuned.mode = mode
    detail_run = run_of(recorded, "orders-agent")
    first = detail_run.calls[0]
    with TestClient(create_app(recorded, replay=targets(tuned))) as client:
        answer = replay(client, detail_run.trace.id, first.id)
    assert answer.status_code == 200, answer.text
    block = result_block(answer.text, first.id)
    assert f"Replayed on tuned: tuned-m at {tuned.server.openai_base_url}: {verdict}" in block
    assert re.search(r"\d+ ms|\d+\.\d s", block)
    if detail:
        assert detail in block
    if mode in ("good", "unknown_tool"):
        name = "lookup_order" if mode == "good" else "cancel_order"
        assert f"calls {name}" in block  # the replayed answer, rendered as the conversation renders it
        assert '"order_id": "A-17"' in block  # its arguments pretty-printed
    assert "recorded" in block and "calls lookup_order" in block  # the recorded answer beside it
    # Sent as recorded, the endpoint's model and key swapped in; the key never reaches the page.
    (sent,) = tuned.chats
    assert sent["json"] == {**json.loads(first.raw_request), "model": "tuned-m"}
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in answer.text


def test_replay_all_sends_every_call_in_order(recorded, tuned, monkeypatch):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    detail_run = run_of(recorded, "orders-agent")
    assert len(detail_run.calls) == 2
    with TestClient(create_app(recorded, replay=targets(tuned))) as client:
        answer = replay(client, detail_run.trace.id, None)
    assert answer.status_code == 200, answer.text
    assert [request["json"]["messages"] for request in tuned.chats] == [
        json.loads(call.raw_request)["messages"] for call in detail_run.calls
    ]
    summary = answer.text[answer.text.index('id="replay-summary"') :]
    rows = re.findall(r'<tr class="(kept|refused)" data-call="([0-9a-f]+)">', summary)
    assert [call_id for _, call_id in rows] == [call.id for call in detail_run.calls]
    assert [verdict for verdict, _ in rows] == ["kept", "kept"]
    for call in detail_run.calls:
        assert "Replayed on tuned" in result_block(answer.text, call.id)


def test_a_streamed_call_is_replayed_as_a_stream_and_judged_whole(recorded, tuned, monkeypatch):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    tuned.mode = "unknown_tool"
    detail_run = run_of(recorded, "streaming-agent")
    (call,) = detail_run.calls
    assert call.streamed
    with TestClient(create_app(recorded, replay=targets(tuned))) as client:
        answer = replay(client, detail_run.trace.id, call.id)
    assert tuned.chats[0]["json"]["stream"] is True
    block = result_block(answer.text, call.id)
    assert ": unknown_tool" in block and "calls cancel_order" in block


def test_a_call_in_a_format_the_endpoint_cannot_take_gets_one_line(recorded, tuned, monkeypatch):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    detail_run = run_of(recorded, "claude-agent")
    (call,) = detail_run.calls
    assert call.api == "anthropic.messages"
    with TestClient(create_app(recorded, replay=targets(tuned))) as client:
        answer = replay(client, detail_run.trace.id, call.id)
    assert answer.status_code == 200
    block = result_block(answer.text, call.id)
    assert ": not sent" in block
    assert "an Anthropic Messages call: replay sends Chat Completions requests" in block
    assert "Traceback" not in answer.text
    assert tuned.chats == []


def test_a_missing_key_and_an_unlisted_model_are_one_line_each(recorded, tuned, monkeypatch):
    monkeypatch.delenv("TUNED_KEY", raising=False)
    detail_run = run_of(recorded, "orders-agent")
    call = detail_run.calls[0]
    listed = f"listed={tuned.server.openai_base_url}"  # no model: the first GET /models lists
    with TestClient(create_app(recorded, replay=targets(tuned, listed))) as client:
        no_key = replay(client, detail_run.trace.id, call.id)
        by_listing = replay(client, detail_run.trace.id, call.id, "endpoint:listed")
    assert "the environment variable TUNED_KEY (the endpoint's key) is not set here" in text(no_key.text)
    assert ": kept" in result_block(by_listing.text, call.id)
    assert tuned.chats[-1]["json"]["model"] == "tuned-m"
    assert tuned.chats[-1]["headers"]["authorization"] == "Bearer not-needed"  # as eval sends it


def test_a_routes_file_offers_its_endpoints_under_the_routes_time_limit(recorded, tuned, tmp_path, monkeypatch):
    monkeypatch.delenv("FRONTIER_KEY", raising=False)  # only the fallback needs it: the primary still replays
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n"
        "  support-agent:\n"
        f"    primary: {{url: '{tuned.server.openai_base_url}', model: tuned-m}}\n"
        "    fallback: {url: 'https://api.example.com/v1', model: big, api_key_env: FRONTIER_KEY}\n"
        "    timeout_s: 1\n"
    )
    tuned.mode = "slow"
    detail_run = run_of(recorded, "orders-agent")
    call = detail_run.calls[0]
    replayable = ReplayTargets.from_options(str(routes), [], None)
    with TestClient(create_app(recorded, replay=replayable)) as client:
        page = client.get(f"/runs/{detail_run.trace.id}").text
        assert 'value="route:support-agent:primary"' in page and 'value="route:support-agent:fallback"' in page
        slow = replay(client, detail_run.trace.id, call.id, "route:support-agent:primary")
        keyless = replay(client, detail_run.trace.id, call.id, "route:support-agent:fallback")
    assert ": timeout" in result_block(slow.text, call.id)
    assert "no whole answer within 1 s" in result_block(slow.text, call.id)
    assert "FRONTIER_KEY" in result_block(keyless.text, call.id)


def test_without_endpoints_the_page_says_how_to_configure_one(recorded, tuned):
    detail_run = run_of(recorded, "orders-agent")
    with TestClient(create_app(recorded)) as client:
        page = client.get(f"/runs/{detail_run.trace.id}").text
        assert NOT_CONFIGURED in text(page)
        assert 'class="replay-form' not in page
        refused = replay(client, detail_run.trace.id, detail_run.calls[0].id)
    assert refused.status_code == 400
    assert tuned.chats == []


def test_read_only_refuses_replay_in_one_line(recorded, tuned, monkeypatch):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    detail_run = run_of(recorded, "orders-agent")
    with TestClient(create_app(recorded, read_only=True, replay=targets(tuned))) as client:
        page = client.get(f"/runs/{detail_run.trace.id}").text
        assert "Replay is off in read-only mode" in page and 'class="replay-form' not in page
        token = csrf(client.get("/login").text)  # a valid token: the refusal is read-only's own
        form = {"csrf_token": token, "endpoint": "endpoint:tuned", "call": detail_run.calls[0].id}
        refused = client.post(f"/runs/{detail_run.trace.id}/replay", data=form)
    assert refused.status_code == 403
    assert READ_ONLY in text(refused.text)
    assert tuned.chats == []


def test_a_replay_without_the_forms_token_or_from_another_site_is_refused(recorded, tuned, monkeypatch):
    monkeypatch.setenv("TUNED_KEY", SECRET)
    detail_run = run_of(recorded, "orders-agent")
    target = f"/runs/{detail_run.trace.id}/replay"
    with TestClient(create_app(recorded, replay=targets(tuned))) as client:
        token = csrf(client.get(f"/runs/{detail_run.trace.id}").text)
        no_token = client.post(target, data={"endpoint": "endpoint:tuned"})
        stale = client.post(target, data={"endpoint": "endpoint:tuned", "csrf_token": "0" * 64})
        cross = client.post(
            target,
            data={"endpoint": "endpoint:tuned", "csrf_token": token},
            headers={"origin": "https://evil.example"},
        )
    assert [no_token.status_code, stale.status_code, cross.status_code] == [403, 403, 403]
    assert "security token" in no_token.text and "another site" in cross.text
    assert tuned.chats == []


def test_a_replay_writes_nothing_and_is_not_recorded_by_the_running_tracer(recorded, tuned, monkeypatch, tmp_path):
    """The UI embedded in an instrumented process: the replay's own call is not captured."""
    monkeypatch.setenv("TUNED_KEY", SECRET)
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(recorded.removeprefix("sqlite:///")).read_bytes())
    url = f"sqlite:///{copy}"
    detail_run = run_of(url, "orders-agent")
    with TraceStore(url) as store:
        before = (store.stats(), len(store.traces(limit=1000)))
    agent_tracer.init(db=url, spill_path=str(tmp_path / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
    try:
        with TestClient(create_app(url, replay=targets(tuned))) as client:
            answer = replay(client, detail_run.trace.id, None)
        assert answer.status_code == 200 and len(tuned.chats) == 2
        assert agent_tracer.flush()
    finally:
        agent_tracer.uninstrument()
    with TraceStore(url) as store:
        assert (store.stats(), len(store.traces(limit=1000))) == before


def test_the_ui_command_takes_routes_endpoints_and_a_replay_timeout():
    from click.testing import CliRunner

    from agent_tracer.cli import main

    result = CliRunner().invoke(main, ["ui", "--help"])
    assert result.exit_code == 0
    for option in ("--routes", "--endpoint", "--replay-timeout"):
        assert option in result.output
    bad = CliRunner().invoke(main, ["ui", "--endpoint", "tuned=ftp://x"])
    assert bad.exit_code != 0 and "is not an http(s) URL" in bad.output


def test_an_endpoint_that_is_down_or_unknown_is_one_line(recorded, tuned, monkeypatch):
    from agent_tracer.loopback import free_port

    monkeypatch.setenv("TUNED_KEY", SECRET)
    detail_run = run_of(recorded, "orders-agent")
    call = detail_run.calls[0]
    down = f"down=http://127.0.0.1:{free_port()}/v1,model=m"  # nothing listens there
    with TestClient(create_app(recorded, replay=targets(tuned, down))) as client:
        refused = replay(client, detail_run.trace.id, call.id, "endpoint:down")
        unknown = replay(client, detail_run.trace.id, call.id, "endpoint:nowhere")
    assert refused.status_code == 200
    assert ": connect_error" in result_block(refused.text, call.id)
    assert unknown.status_code == 400
    assert "Not replayed: unknown endpoint 'endpoint:nowhere'" in text(unknown.text)
    assert "Traceback" not in refused.text + unknown.text
