"""Small pieces of the proxy: URL joining, the CLI's option checks, a runtime that patches nothing."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from click.testing import CliRunner

from agent_tracer import runtime
from agent_tracer.cli import main
from agent_tracer.config import TracerConfig
from agent_tracer.proxy.app import env_proxy
from agent_tracer.proxy.wire import upstream_url


@pytest.mark.parametrize(
    ("base", "path", "query", "expected"),
    [
        ("https://api.openai.com", "/v1/chat/completions", "", "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/", "/v1/models", "limit=2", "https://api.openai.com/v1/models?limit=2"),
        ("http://vllm:8000/v1", "/v1/chat/completions", "", "http://vllm:8000/v1/chat/completions"),
        ("http://gw:8000/openai", "/v1/chat/completions", "", "http://gw:8000/openai/v1/chat/completions"),
    ],
)
def test_upstream_url(base, path, query, expected):
    assert upstream_url(base, path, query) == expected


@pytest.mark.parametrize("value", ["openai", "mistral=http://x", "openai=ftp://x", "openai=notaurl"])
def test_bad_upstream_is_a_one_line_error(value):
    result = CliRunner().invoke(main, ["proxy", "--upstream", value])
    assert result.exit_code == 2
    assert "Invalid value for '--upstream'" in result.output


def test_runtime_without_instrument_leaves_the_transports_alone(tmp_path):
    originals = (httpx.AsyncHTTPTransport.handle_async_request, httpx2.AsyncHTTPTransport.handle_async_request)
    rt = runtime.start(TracerConfig(db=f"sqlite:///{tmp_path / 't.db'}", writer="thread"), instrument=False)
    try:
        assert runtime.current() is rt and not rt.patch.installed
        assert (
            httpx.AsyncHTTPTransport.handle_async_request,
            httpx2.AsyncHTTPTransport.handle_async_request,
        ) == originals
    finally:
        runtime.stop()
    assert runtime.current() is None


def test_env_proxy_follows_the_environment_like_the_sdks(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.openai.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://corp-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    assert env_proxy("https://api.openai.com") == "http://corp-proxy:3128"
    assert env_proxy("http://vllm.internal:8000/v1") is None
    assert env_proxy("http://127.0.0.1:8000") is None  # plain http: no HTTP_PROXY set
