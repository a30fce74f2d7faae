"""`--require-key`: clients authenticate with proxy keys, the proxy sends its own upstream keys."""

from __future__ import annotations

import signal

import anthropic
import httpx
import openai
import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.errors import ConfigError
from agent_tracer.proxy.auth import KeyCheck, load_client_keys
from agent_tracer.proxy.process import ProxyProcess

CLIENT_KEY = "at-client-key-5f1d2c9a8b7e6d4c"
OTHER_CLIENT_KEY = "at-client-key-0a1b2c3d4e5f6a7b"
UPSTREAM_OPENAI = "sk-upstream-held-by-proxy-1234567890"
UPSTREAM_ANTHROPIC = "sk-ant-upstream-held-by-proxy-0987654321"


@pytest.fixture(scope="module")
def locked_proxy(upstream, tmp_path_factory):
    folder = tmp_path_factory.mktemp("locked")
    key_file = folder / "keys.txt"
    key_file.write_text(f"# team keys\n{OTHER_CLIENT_KEY}\n")
    process = ProxyProcess(
        upstream.url,
        folder / "traces.db",
        "--require-key",
        "--key-file",
        str(key_file),
        env={
            "AGENT_TRACER_PROXY_KEYS": CLIENT_KEY,
            "OPENAI_API_KEY": UPSTREAM_OPENAI,
            "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC,
        },
    )
    process.folder = folder
    yield process
    process.stop(signal.SIGTERM)


def test_wrong_or_missing_key_is_401_and_nothing_goes_upstream(locked_proxy, upstream):
    sent = len(upstream.requests)
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(
            base_url=locked_proxy.openai_base_url,
            api_key="sk-not-a-proxy-key",
            max_retries=0,
        ).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=locked_proxy.url, api_key="nope", max_retries=0).messages.create(
            model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert httpx.get(locked_proxy.openai_base_url + "/models").status_code == 401  # pass-through paths too
    assert httpx.post(locked_proxy.url + "/agent-tracer/v1/traces/r/feedback", json={"rating": 1}).status_code == 401
    assert httpx.get(locked_proxy.url + "/healthz").status_code == 200
    assert len(upstream.requests) == sent


def test_client_keys_are_swapped_for_the_upstream_keys(locked_proxy, upstream):
    openai.OpenAI(base_url=locked_proxy.openai_base_url, api_key=CLIENT_KEY, max_retries=0).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    headers = upstream.requests[-1]["headers"]
    assert headers["authorization"] == f"Bearer {UPSTREAM_OPENAI}" and "x-api-key" not in headers

    # a key from the key file, sent the Anthropic way
    response = httpx.post(
        locked_proxy.url + "/v1/messages",
        headers={"x-api-key": OTHER_CLIENT_KEY},
        json={"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 200
    headers = upstream.requests[-1]["headers"]
    assert headers["x-api-key"] == UPSTREAM_ANTHROPIC and "authorization" not in headers

    models = openai.OpenAI(base_url=locked_proxy.openai_base_url, api_key=CLIENT_KEY, max_retries=0).models.list()
    assert models.data and upstream.requests[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_OPENAI}"
    feedback = httpx.post(
        locked_proxy.url + "/agent-tracer/v1/traces/r/feedback",
        json={"rating": 1},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert feedback.status_code == 202


def test_no_key_reaches_the_store_or_the_output(locked_proxy):
    output = locked_proxy.stop(signal.SIGTERM)  # the store is written as the proxy stops
    assert locked_proxy.stopped_cleanly, output
    assert "upstream keys held for anthropic, openai" in output
    keys = (CLIENT_KEY, OTHER_CLIENT_KEY, UPSTREAM_OPENAI, UPSTREAM_ANTHROPIC)
    stored = [path for path in locked_proxy.folder.iterdir() if path.name != "keys.txt"]
    assert any(path.suffix == ".db" for path in stored)
    for path in stored:
        data = path.read_bytes()
        assert not [key for key in keys if key.encode() in data], path
    assert not [key for key in keys if key in output]


def test_require_key_without_keys_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("AGENT_TRACER_PROXY_KEYS", raising=False)
    result = CliRunner().invoke(main, ["proxy", "--require-key", "--port", "0"])
    assert result.exit_code == 1
    assert "Error: --require-key needs client keys" in result.output
    result = CliRunner().invoke(main, ["proxy", "--key-file", "keys.txt"])
    assert result.exit_code == 2 and "only used with --require-key" in result.output


def test_short_or_unreadable_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_client_keys(environ={"AGENT_TRACER_PROXY_KEYS": "abc"})
    with pytest.raises(ConfigError, match="cannot read the key file"):
        load_client_keys(str(tmp_path / "missing.txt"), environ={})


def test_key_check_accepts_either_header_and_only_listed_keys():
    check = KeyCheck([CLIENT_KEY], {"openai": UPSTREAM_OPENAI})
    assert check.allows({"authorization": f"Bearer {CLIENT_KEY}"})
    assert check.allows({"authorization": f"bearer {CLIENT_KEY}"})
    assert check.allows({"x-api-key": CLIENT_KEY})
    assert not check.allows({"authorization": CLIENT_KEY})  # no scheme
    assert not check.allows({"x-api-key": CLIENT_KEY[:-1]})
    assert not check.allows({})
    assert check.upstream_credentials("openai") == {"authorization": f"Bearer {UPSTREAM_OPENAI}"}
    assert check.upstream_credentials("anthropic") == {}
