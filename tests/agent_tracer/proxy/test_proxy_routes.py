"""Routes: the official openai SDK → `agent-tracer proxy --routes` → a primary that injects each
fault, with a healthy fallback behind it. Every trigger gives the fallback's answer and a recorded
reason; a good answer never falls back; shadow records both; canary splits; edits apply live."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.testing.proxy_process import marked
from agent_tracer.testing.upstream import FakeUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def routes_yaml(primary: FakeUpstream, fallback: FakeUpstream, *, primary_model: str = "tuned") -> str:
    def endpoints(model: str) -> str:
        return (
            f'    primary: {{url: "{primary.openai_base_url}", model: {model}}}\n'
            f'    fallback: {{url: "{fallback.openai_base_url}", model: frontier, api_key_env: FRONTIER_KEY}}\n'
        )

    return (
        "routes:\n"
        "  support-agent:\n    mode: fallback\n"
        + endpoints(primary_model)
        + "    timeout_s: 1.5\n    first_token_timeout_s: 0.5\n"
        "    breaker: {failures: 1000}\n"  # the fault tests fail it many times in a row
        "  flaky-agent:\n" + endpoints("tuned") + "    breaker: {failures: 2, cooldown_s: 2}\n"
        "  shadow-agent:\n    mode: shadow\n"
        + endpoints("tuned")
        + "  canary-agent:\n    mode: canary\n    canary_percent: 30\n"
        + endpoints("tuned")
    )


@pytest.fixture(scope="module")
def primary():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def fallback():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory, primary, fallback) -> Path:
    path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    path.write_text(routes_yaml(primary, fallback))
    return path


@pytest.fixture(scope="module")
def routed(tmp_path_factory, routes_file, fallback):
    process = ProxyProcess(
        fallback.url,
        tmp_path_factory.mktemp("routed") / "traces.db",
        "--routes",
        str(routes_file),
        env={"FRONTIER_KEY": "sk-frontier-held-by-proxy"},
    )
    yield process
    output = process.stop()
    assert process.stopped_cleanly, output


@pytest.fixture(scope="module")
def store(routed):
    store = TraceStore(routed.db_url)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def healthy_primary(primary):
    primary.scenario = None
    yield
    primary.scenario = None


def client(routed) -> openai.OpenAI:
    return openai.OpenAI(base_url=routed.openai_base_url, api_key="sk-client-key", max_retries=0)


def ask(routed, marker: str, *, model: str = "support-agent", stream: bool = False, tools: bool = False):
    """One call through the proxy: (the answer's text or first tool call name, the route header)."""
    kwargs = dict(model=model, messages=[{"role": "user", "content": f"weather? {marker}"}])
    if tools:
        kwargs["tools"] = TOOLS
    if not stream:
        raw = client(routed).chat.completions.with_raw_response.create(**kwargs)
        message = raw.parse().choices[0].message
        answer = message.tool_calls[0].function.name if message.tool_calls else message.content
        return answer, raw.headers.get("x-agent-route")
    with client(routed).chat.completions.with_streaming_response.create(stream=True, **kwargs) as raw:
        route = raw.headers.get("x-agent-route")
        text, names = [], []
        for chunk in raw.parse():
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                names.extend(call.function.name for call in choice.delta.tool_calls or () if call.function.name)
        return (names[0] if names else "".join(text)), route


def calls_for(store: TraceStore, marker: str, count: int, timeout: float = 8.0) -> dict[str, object]:
    """The stored calls of one request, by route, once the writer has them all."""
    deadline = time.monotonic() + timeout
    while True:
        found = [call for call in store.calls() if marked(marker)(call)]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, [(c.route, c.fallback_reason) for c in found]
            return {call.route: call for call in found}
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tools", [False, True])
def test_a_good_primary_answer_is_passed_back_and_never_falls_back(routed, store, primary, fallback, stream, tools):
    marker = uuid.uuid4().hex
    before = len(fallback.requests)
    answer, route = ask(routed, marker, stream=stream, tools=tools)
    assert route == "primary"
    assert answer == ("get_weather" if tools else f"Echo: weather? {marker}")
    assert len(fallback.requests) == before
    sent = primary.requests[-1]
    assert sent["json"]["model"] == "tuned"  # the route's model name, swapped in
    assert "authorization" in sent["headers"] and sent["headers"]["authorization"] == "Bearer sk-client-key"
    call = calls_for(store, marker, 1)["primary"]
    assert call.request_model == "tuned" and call.fallback_reason is None and call.status == "ok"


FAULTS = [
    ("error:500", "http_500"),
    ("error:429", "http_429"),
    ("stall:3", "timeout"),
    ("cut", "broken_answer"),
    ("empty", "empty_answer"),
    ("tool_text", "malformed_tool_call"),
    ("bad_tool:unknown", "unknown_tool"),
    ("bad_tool:json", "invalid_arguments"),
    ("bad_tool:schema", "schema_mismatch"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("scenario", "reason"), FAULTS, ids=[r for _, r in FAULTS])
def test_each_fault_gives_the_fallbacks_answer_and_a_recorded_reason(
    routed, store, primary, fallback, scenario, reason, stream
):
    if stream and scenario == "stall:3":
        scenario, reason = "stall:1", "first_token_timeout"
    # A stream that may carry a tool call is held to its end, so a cut one can still fall back.
    tools = scenario.startswith("bad_tool") or scenario == "tool_text" or (stream and scenario == "cut")
    primary.scenario = scenario
    marker = uuid.uuid4().hex
    answer, route = ask(routed, marker, stream=stream, tools=tools)
    assert route == "fallback"
    assert answer == ("get_weather" if tools else f"Echo: weather? {marker}")
    sent = fallback.requests[-1]
    assert sent["json"]["model"] == "frontier"
    assert sent["headers"]["authorization"] == "Bearer sk-frontier-held-by-proxy"  # its api_key_env, not the client's
    calls = calls_for(store, marker, 2)
    assert set(calls) == {"primary", "fallback"}
    assert calls["primary"].fallback_reason == calls["fallback"].fallback_reason == reason
    assert calls["primary"].trace_id == calls["fallback"].trace_id
    assert calls["fallback"].status == "ok" and calls["fallback"].request_model == "frontier"
    assert "sk-frontier-held-by-proxy" not in (calls["fallback"].raw_request or "")


def test_a_text_stream_is_passed_on_from_its_first_token_and_a_later_break_is_not_spliced(
    routed, store, primary, fallback
):
    """Without tools the primary's stream goes to the client from its first token; when it breaks
    after that, the client's stream ends there (recorded), with no fallback text added."""
    primary.scenario = "cut,slow_stream:0.05"
    marker = uuid.uuid4().hex
    before = len(fallback.requests)
    answer, route = ask(routed, marker, stream=True)
    full = f"Echo: weather? {marker}"
    assert route == "primary" and answer and full.startswith(answer) and answer != full
    assert len(fallback.requests) == before
    call = calls_for(store, marker, 1)["primary"]
    assert call.status == "error" and "after the answer had begun" in call.error


def test_an_unreachable_primary_falls_back(routed, store, primary):
    primary.stop()
    try:
        marker = uuid.uuid4().hex
        for stream in (False, True):
            answer, route = ask(routed, marker + str(stream), stream=stream)
            assert (answer, route) == (f"Echo: weather? {marker}{stream}", "fallback")
            assert calls_for(store, marker + str(stream), 2)["fallback"].fallback_reason == "connect_error"
    finally:
        primary.start()


def test_the_breaker_skips_a_failing_primary_then_tries_it_again(routed, store, primary):
    primary.scenario = "error:503"
    markers, reached = [], []
    for _ in range(4):
        markers.append(uuid.uuid4().hex)
        before = len(primary.requests)
        assert ask(routed, markers[-1], model="flaky-agent")[1] == "fallback"
        reached.append(len(primary.requests) - before)
    assert reached == [1, 1, 0, 0]  # two failures open it: the next calls skip the primary
    reasons = [
        calls_for(store, marker, 2 if n else 1)["fallback"].fallback_reason for marker, n in zip(markers, reached)
    ]
    assert reasons == ["http_503", "http_503", "circuit_open", "circuit_open"]
    primary.scenario = None
    time.sleep(2.1)  # the cool-down: the next call is the trial
    marker = uuid.uuid4().hex
    assert ask(routed, marker, model="flaky-agent") == (f"Echo: weather? {marker}", "primary")
    assert ask(routed, uuid.uuid4().hex, model="flaky-agent")[1] == "primary"  # closed again


def test_shadow_answers_from_the_fallback_and_records_both(routed, store, primary, fallback):
    primary.scenario = "bad_tool:unknown"
    marker = uuid.uuid4().hex
    assert ask(routed, marker, model="shadow-agent", tools=True) == ("get_weather", "fallback")
    calls = calls_for(store, marker, 2)
    assert set(calls) == {"fallback", "shadow"}
    assert calls["fallback"].fallback_reason == "shadow"
    assert calls["shadow"].tool_names == ["not_get_weather"]
    assert calls["shadow"].fallback_reason == "unknown_tool"  # what would have happened in fallback mode
    assert calls["shadow"].trace_id == calls["fallback"].trace_id


def test_canary_sends_about_its_percentage_to_the_primary(routed):
    routes = [ask(routed, uuid.uuid4().hex, model="canary-agent")[1] for _ in range(200)]
    share = routes.count("primary") / len(routes)
    assert set(routes) == {"primary", "fallback"}
    assert 0.18 <= share <= 0.42, share  # 30% of 200: ±3.7 standard deviations


def test_other_model_names_pass_through_unrouted(routed, store, fallback):
    marker = uuid.uuid4().hex
    answer, route = ask(routed, marker, model="gpt-4o-mini")
    assert (answer, route) == (f"Echo: weather? {marker}", None)
    assert fallback.requests[-1]["json"]["model"] == "gpt-4o-mini"
    assert fallback.requests[-1]["headers"]["authorization"] == "Bearer sk-client-key"
    assert calls_for(store, marker, 1)[None].fallback_reason is None


def test_routed_calls_are_counted_in_the_metrics(routed, scrape, primary):
    primary.scenario = "empty"
    ask(routed, uuid.uuid4().hex)
    samples = scrape(routed.url)
    assert (
        samples("agent_tracer_proxy_routed_total", route="support-agent", answered_by="fallback", reason="empty_answer")
        >= 1
    )
    assert samples("agent_tracer_proxy_routed_total", route="support-agent", answered_by="primary", reason="") >= 1


def test_an_edit_applies_while_requests_run_and_a_bad_edit_keeps_the_last_good_routes(
    routed, routes_file, primary, fallback
):
    primary.scenario = "stall:0.8"
    slow: dict[str, object] = {}
    thread = threading.Thread(target=lambda: slow.update(result=ask(routed, "slow " + uuid.uuid4().hex)))
    thread.start()
    time.sleep(0.2)  # the slow call is at the primary, under the old routes
    routes_file.write_text(routes_yaml(primary, fallback, primary_model="tuned-v2"))
    deadline = time.monotonic() + 5
    while primary.requests[-1]["json"]["model"] != "tuned-v2":
        assert time.monotonic() < deadline, "the edit was not applied"
        primary.scenario = None
        ask(routed, uuid.uuid4().hex)
        time.sleep(0.1)
    thread.join()
    assert slow["result"][1] == "primary"  # finished on the route it started with
    assert any(r["json"]["model"] == "tuned" and "slow" in str(r["json"]) for r in primary.requests)

    routes_file.write_text("routes:\n  support-agent:\n    mode: sometimes\n")
    time.sleep(1.0)
    ask(routed, uuid.uuid4().hex)
    assert primary.requests[-1]["json"]["model"] == "tuned-v2"  # kept
    routes_file.write_text(routes_yaml(primary, fallback))  # as the other tests expect
    time.sleep(1.0)


def test_a_routes_file_the_proxy_cannot_use_is_refused_at_start_up(tmp_path, fallback):
    path = tmp_path / "routes.yaml"
    path.write_text(f'routes:\n  a:\n    primary: {{url: "{fallback.openai_base_url}", model: m}}\n')
    with pytest.raises(RuntimeError, match=r"route 'a': no fallback endpoint"):
        ProxyProcess(fallback.url, tmp_path / "t.db", "--routes", str(path))


def test_keys_named_by_api_key_env_stay_out_of_the_store_and_the_log(routed, store, primary):
    primary.scenario = "error:500"
    marker = uuid.uuid4().hex
    ask(routed, marker)
    calls = calls_for(store, marker, 2)
    stored = " ".join(
        str(getattr(c, name)) for c in calls.values() for name in ("raw_request", "raw_response", "request")
    )
    assert "sk-frontier-held-by-proxy" not in stored and "sk-client-key" not in stored
    assert httpx.get(routed.url + "/healthz").status_code == 200
