"""`agent-tracer proxy` serves the web UI at /agent-tracer/ui/ over its own store, behind its keys."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.errors import ConfigError
from agent_tracer.proxy.config import ProxyConfig
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.ui.costs import usd

KEY = "proxy-ui-key-0123456789abcdef"
QUESTION = "Where is order Q-7?"


def ask(proxy: ProxyProcess, agent: str, api_key: str = "sk-test") -> None:
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key=api_key, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": QUESTION}], extra_headers={"X-Agent-Name": agent}
    )
    assert reply.choices[0].message.content


def listed(proxy: ProxyProcess, agent: str, headers: dict[str, str] | None = None) -> str:
    """The UI's runs page filtered to `agent`, once the proxy's writer has stored its run."""
    deadline = time.monotonic() + 15
    while True:
        page = httpx.get(f"{proxy.url}/agent-tracer/ui/", params={"name": agent}, headers=headers)
        assert page.status_code == 200, page.text
        if agent in page.text and "/agent-tracer/ui/runs/" in page.text:
            return page.text
        assert time.monotonic() < deadline, "the proxy's run never showed in its UI"
        time.sleep(0.1)


def test_the_proxy_serves_the_ui_of_the_runs_it_recorded(upstream, tmp_path):
    proxy = ProxyProcess(upstream.url, tmp_path / "traces.db")
    try:
        ask(proxy, "proxied-agent")
        page = listed(proxy, "proxied-agent")
        link = re.search(r'href="(http://[^"]+/agent-tracer/ui/runs/[0-9a-f]+)"', page)
        assert link, page
        run = httpx.get(link.group(1))
        assert run.status_code == 200 and QUESTION in run.text and "proxied-agent" in run.text
        assert httpx.get(proxy.url + "/agent-tracer/ui/static/ui.css").status_code == 200
        bare = httpx.get(proxy.url + "/agent-tracer/ui")
        assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/agent-tracer/ui/")
        ask(proxy, "proxied-agent")  # model traffic still goes through beside the UI
        assert httpx.get(proxy.url + "/healthz").json()["status"] == "ok"
    finally:
        output = proxy.stop()
    assert proxy.stopped_cleanly, output
    assert "web UI at http://127.0.0.1:" in output


def test_with_require_key_the_ui_needs_a_proxy_key(upstream, tmp_path):
    proxy = ProxyProcess(upstream.url, tmp_path / "traces.db", "--require-key", env={"AGENT_TRACER_PROXY_KEYS": KEY})
    try:
        ask(proxy, "keyed-agent", api_key=KEY)
        refused = httpx.get(proxy.url + "/agent-tracer/ui/")
        assert refused.status_code == 401 and "keyed-agent" not in refused.text
        assert httpx.get(proxy.url + "/agent-tracer/ui/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert "keyed-agent" in listed(proxy, "keyed-agent", headers={"Authorization": f"Bearer {KEY}"})
        # The login form sets a cookie scoped to the UI's path; the browser's next page needs no header.
        with httpx.Client(base_url=proxy.url) as browser:
            form = browser.get("/agent-tracer/ui/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token, form.text
            login = browser.post("/agent-tracer/ui/login", data={"key": KEY, "csrf_token": token.group(1)})
            assert login.status_code == 303, login.text
            assert "keyed-agent" in browser.get("/agent-tracer/ui/", params={"name": "keyed-agent"}).text
    finally:
        output = proxy.stop()
    assert proxy.stopped_cleanly, output
    assert KEY not in output


def test_beyond_loopback_without_keys_the_ui_is_off_and_says_why(upstream, tmp_path):
    proxy = ProxyProcess(upstream.url, tmp_path / "traces.db", "--host", "0.0.0.0")
    try:
        ask(proxy, "open-agent")
        off = httpx.get(proxy.url + "/agent-tracer/ui/")
        assert off.status_code == 404 and "without --require-key" in off.text
    finally:
        output = proxy.stop()
    assert proxy.stopped_cleanly, output
    lines = [line for line in output.splitlines() if "web UI" in line]
    assert lines == ["  web UI off: the proxy listens on 0.0.0.0 without --require-key (add it, or bind to 127.0.0.1)"]


def test_no_ui_turns_it_off(upstream, tmp_path):
    proxy = ProxyProcess(upstream.url, tmp_path / "traces.db", "--no-ui")
    try:
        off = httpx.get(proxy.url + "/agent-tracer/ui/")
        assert off.status_code == 404 and "--no-ui" in off.text
        ask(proxy, "plain-agent")
    finally:
        proxy.stop()


def test_asking_for_the_ui_beyond_loopback_without_keys_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["proxy", "--host", "0.0.0.0", "--ui", "--db", f"sqlite:///{tmp_path}/t.db"])
    assert result.exit_code == 1
    assert "--ui on 0.0.0.0" in result.output and "--require-key" in result.output
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    ("host", "require_key", "ui", "served"),
    [
        ("127.0.0.1", False, None, True),
        ("localhost", False, None, True),
        ("0.0.0.0", True, None, True),
        ("0.0.0.0", False, None, False),
        ("127.0.0.1", False, False, False),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", True, True, True),
    ],
)
def test_when_the_ui_is_served(host, require_key, ui, served):
    config = ProxyConfig(host=host, require_key=require_key, ui=ui)
    assert (config.ui_off_reason() is None) is served
    with pytest.raises(ConfigError, match="add --require-key"):
        ProxyConfig(host="0.0.0.0", ui=True).ui_off_reason()


def test_the_proxys_ui_replays_a_recorded_call_on_its_own_routes(upstream, tmp_path):
    """The run page offers the routes' endpoints; a replay is judged as the router judges a primary
    (a tool the request does not offer: unknown_tool), uses the key the proxy holds for an
    endpoint, never shows it, and records nothing."""
    from agent_tracer.store import TraceStore
    from agent_tracer.testing import FakeUpstream, Reply

    frontier_key = "sk-frontier-held-by-the-proxy"

    def tuned_reply(body: dict) -> Reply:
        return Reply(calls=[("cancel_order", {"order_id": "Q-7"})], model="tuned")

    with FakeUpstream(reply=tuned_reply, models=["tuned"]) as tuned:
        routes = tmp_path / "routes.yaml"
        routes.write_text(
            "routes:\n  support-agent:\n"
            f"    primary: {{url: '{tuned.openai_base_url}', model: tuned}}\n"
            f"    fallback: {{url: '{upstream.openai_base_url}', model: frontier, api_key_env: FRONTIER_KEY}}\n"
        )
        proxy = ProxyProcess(
            upstream.url, tmp_path / "traces.db", "--routes", str(routes), env={"FRONTIER_KEY": frontier_key}
        )
        try:
            ask(proxy, "replayed-agent")
            link = re.search(r'href="(http://[^"]+/agent-tracer/ui/runs/[0-9a-f]+)"', listed(proxy, "replayed-agent"))
            assert link
            with httpx.Client() as browser:
                run = browser.get(link.group(1)).text
                assert 'value="route:support-agent:primary"' in run and 'value="route:support-agent:fallback"' in run
                token = re.search(r'name="csrf_token" value="([^"]+)"', run).group(1)
                on_primary = browser.post(
                    link.group(1) + "/replay", data={"csrf_token": token, "endpoint": "route:support-agent:primary"}
                )
                on_fallback = browser.post(
                    link.group(1) + "/replay", data={"csrf_token": token, "endpoint": "route:support-agent:fallback"}
                )
            sent_to_fallback = upstream.requests[-1]
            time.sleep(0.5)  # what the proxy's writer would have written by now
            with TraceStore(proxy.db_url) as store:
                assert store.stats()["llm_calls"] == 1  # the agent's call; no replay recorded
        finally:
            output = proxy.stop()
    assert proxy.stopped_cleanly, output
    assert on_primary.status_code == 200 and on_fallback.status_code == 200
    primary_text = " ".join(re.sub(r"<[^>]+>", " ", on_primary.text).split())
    assert "support-agent primary: tuned at" in primary_text and "unknown_tool" in primary_text
    assert "calls cancel_order" in primary_text
    assert [request["json"]["model"] for request in tuned.requests] == ["tuned"]
    assert "kept" in " ".join(re.sub(r"<[^>]+>", " ", on_fallback.text).split())
    assert sent_to_fallback["json"]["model"] == "frontier"
    assert sent_to_fallback["headers"]["authorization"] == f"Bearer {frontier_key}"
    assert frontier_key not in on_primary.text + on_fallback.text + output


def test_the_proxys_ui_prices_calls_and_builds_datasets_where_told(upstream, tmp_path):
    """`--prices` prices the fake API's model for the UI; `--datasets-dir` lets its datasets page
    build (without it the page only shows the command)."""
    prices, folder = tmp_path / "prices.yaml", tmp_path / "datasets"
    prices.write_text("gpt-test: {input: 1, output: 2}\n")
    proxy = ProxyProcess(upstream.url, tmp_path / "traces.db", "--prices", str(prices), "--datasets-dir", str(folder))
    try:
        ask(proxy, "priced-agent")
        page = listed(proxy, "priced-agent")
        with TraceStore(proxy.db_url) as store:
            (trace,) = store.traces(name="priced-agent")
            (call,) = store.get_trace(trace.id).calls
            store.record_feedback(trace.id, outcome="success")
        expected = usd(call.input_tokens / 1000 * 1 + call.output_tokens / 1000 * 2)
        assert re.search(rf'<td class="num cost">{re.escape(expected)}</td>', page), page
        with httpx.Client(base_url=proxy.url + "/agent-tracer/ui") as browser:
            form = browser.get("/datasets", params={"name": "priced-agent", "outcome": "success"})
            assert form.status_code == 200 and 'name="tokenizer"' in form.text
            hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form.text))
            built = browser.post("/datasets", data={**hidden, "kind": "sft", "tokenizer": "none"})
            assert built.status_code == 303, built.text
            shown = browser.get(built.headers["location"])
            assert shown.status_code == 200 and "sft.jsonl" in shown.text
        (build,) = folder.iterdir()
        assert (build / "sft.jsonl").read_text().count("\n") == 1
    finally:
        output = proxy.stop()
    assert proxy.stopped_cleanly, output
