"""The examples are run as a user runs them; an example that rots fails here."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.store import TraceStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_decorator_agent_records_runs_tools_and_outcomes(tmp_path):
    db = f"sqlite:///{tmp_path / 'example.db'}"
    answers = runpy.run_path(str(EXAMPLES / "decorator_agent.py"))["main"](["--db", db])
    assert set(answers) == {"A-17", "B-42", "C-99"}
    with TraceStore(db) as store:
        traces = store.traces(name="support-agent")
        assert len(traces) == 3
        for trace in traces:
            detail = store.get_trace(trace.id)
            assert detail.trace.outcome in ("success", "failure") and detail.trace.rating is not None
            assert detail.trace.task.startswith("What is the status of order")
            assert [t.name for t in detail.tools] == ["lookup_order"]
            assert len(detail.calls) == 2 and detail.calls[0].has_tool_calls


def test_quickstart_runs_in_a_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["quickstart"])
    assert result.exit_code == 0, result.output
    assert "support-agent" in result.output and "agent-tracer traces show" in result.output
    assert (tmp_path / "agent-tracer-quickstart" / "agent_tracer.db").exists()


def test_cli_help_is_fast_and_imports_no_torch():
    code = "import sys, agent_tracer.cli; agent_tracer.cli.main(['--help'], standalone_mode=False); " \
           "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_every_public_module_imports_first_in_a_fresh_process():
    """No import cycle bites a user who imports a codec or the store before agent_tracer itself."""
    for module in ("integrations", "integrations.openai_chat", "integrations.anthropic_messages",
                   "agent_tracer.store", "agent_tracer.testing.upstream", "agent_tracer.cli"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
