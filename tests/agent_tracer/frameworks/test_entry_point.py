"""`agent_tracer.init(frameworks=...)`: the adapters of the frameworks installed, each started on
its own; a framework not installed is skipped silently, an adapter that fails to start logs one
line and leaves the rest on, an unknown name is an error before anything starts, and nothing of
a framework is imported by `import agent_tracer` or a plain `init()`."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import agent_tracer
from agent_tracer import frameworks
from agent_tracer.errors import ConfigError


def _has(package: str) -> bool:
    return frameworks._installed(package)


def test_names_and_aliases():
    assert frameworks.names("auto") == ["openai_agents", "langchain", "pydantic_ai", "google_adk"]
    assert frameworks.names(["openai-agents", "langgraph", "pydantic-ai", "google-adk"]) == [
        "openai_agents",
        "langchain",
        "pydantic_ai",
        "google_adk",
    ]
    with pytest.raises(ConfigError, match="unknown framework 'crewai'"):
        frameworks.names(["crewai"])


def test_an_unknown_framework_fails_init_before_it_starts(tmp_path):
    with pytest.raises(ConfigError):
        agent_tracer.init(db=f"sqlite:///{tmp_path / 'x.db'}", frameworks=["crewai"])
    from agent_tracer import runtime

    assert runtime.current() is None


def test_a_framework_not_installed_is_skipped_silently(monkeypatch, caplog):
    monkeypatch.setattr(frameworks, "ADAPTERS", {"openai_agents": "no_such_package_for_agent_tracer"})
    with caplog.at_level(logging.WARNING, logger="agent_tracer"):
        assert frameworks.instrument("auto") == []
    assert not caplog.records


def test_an_adapter_that_fails_to_start_logs_one_line_and_the_others_start(monkeypatch, caplog):
    pytest.importorskip("agents")
    pytest.importorskip("langchain_core")
    from agent_tracer.frameworks import openai_agents

    def broken():
        raise RuntimeError("this SDK version moved add_trace_processor")

    monkeypatch.setattr(openai_agents, "instrument", broken)
    with caplog.at_level(logging.WARNING, logger="agent_tracer"):
        expected = [
            "langchain",
            *(["pydantic_ai"] if _has("pydantic_ai") else []),
            *(["google_adk"] if _has("google.adk") else []),
        ]
        assert frameworks.instrument("auto") == expected
    [record] = caplog.records
    assert "openai_agents adapter did not start" in record.getMessage()
    frameworks.uninstrument()


def test_import_and_a_plain_init_load_no_framework(tmp_path):
    code = (
        "import sys, agent_tracer\n"
        f"agent_tracer.init(db='sqlite:///{tmp_path / 'x.db'}', writer='thread')\n"
        "agent_tracer.uninstrument()\n"
        "frameworks = ('agents', 'langchain_core', 'langgraph', 'pydantic_ai', 'google.adk')\n"
        "loaded = [m for m in frameworks if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
