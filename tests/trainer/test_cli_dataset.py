"""`agent-tracer dataset sft|dpo|reward` through click's runner, on a store of captured runs."""

from __future__ import annotations

import json

from click.testing import CliRunner

from agent_tracer.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_dataset_sft_prints_what_went_in_and_writes_the_files(captured_store, tmp_path):
    out = tmp_path / "data" / "sft.jsonl"
    result = run(
        "dataset",
        "sft",
        "--db",
        captured_store.url,
        "--out",
        str(out),
        "--tokenizer",
        "none",
        "--no-progress",
        "--min-rating",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert "select" in result.output and "near dedup" in result.output and f"wrote train: {out}" in result.output
    assert (
        len(out.read_text().splitlines())
        + len(
            (tmp_path / "data" / "sft.eval.jsonl").read_text().splitlines()
            if (tmp_path / "data" / "sft.eval.jsonl").exists()
            else []
        )
        == 4
    )


def test_dataset_sft_json_summary_and_any_outcome(captured_store, tmp_path):
    result = run(
        "dataset",
        "sft",
        "--db",
        captured_store.url,
        "--out",
        str(tmp_path / "all.jsonl"),
        "--tokenizer",
        "none",
        "--no-progress",
        "--outcome",
        "any",
        "--json",
        "--eval-ratio",
        "0",
    )
    summary = json.loads(result.output)
    assert summary["steps"][0] == {"step": "select", "in": 8, "out": 8, "reasons": {}}
    assert summary["splits"] == {"train": 7, "eval": 0}  # the repeated run is a near copy


def test_an_empty_selection_is_a_one_line_error(captured_store, tmp_path):
    result = run(
        "dataset",
        "sft",
        "--db",
        captured_store.url,
        "--out",
        str(tmp_path / "x.jsonl"),
        "--tokenizer",
        "none",
        "--name",
        "nobody",
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: no trace matches the selection: 8 traces in the store; 6 with outcome "
        "'success'; 0 of those named 'nobody'"
    )
    assert not (tmp_path / "x.jsonl").exists()


def test_dataset_dpo_and_reward(captured_store, tmp_path):
    result = run(
        "dataset",
        "dpo",
        "--db",
        captured_store.url,
        "--out",
        str(tmp_path / "dpo.jsonl"),
        "--no-progress",
        "--negatives",
        "traces,synthetic",
        "--kinds",
        "wrong_tool,missing_argument",
        "--eval-ratio",
        "0",
    )
    assert result.exit_code == 0, result.output
    sources = {json.loads(line)["source"] for line in (tmp_path / "dpo.jsonl").read_text().splitlines()}
    assert sources == {"traces", "synthetic"}
    bad = run("dataset", "dpo", "--db", captured_store.url, "--negatives", "traces,magic")
    assert bad.exit_code == 2 and "choose from corrections, traces, synthetic, llm" in bad.output

    [better] = captured_store.traces(name="orders-agent", outcome="success", min_rating=5, limit=1, order="oldest")
    [worse] = captured_store.traces(name="claude-agent")
    rated = run("traces", "rate", better.id[:10], "--better-than", worse.id[:10], "--db", captured_store.url)
    assert rated.exit_code == 0 and f"better_than:{worse.id}" in rated.output
    result = run(
        "dataset",
        "reward",
        "--db",
        captured_store.url,
        "--out",
        str(tmp_path / "rw.jsonl"),
        "--no-progress",
        "--sources",
        "feedback",
        "--eval-ratio",
        "0",
    )
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in (tmp_path / "rw.jsonl").read_text().splitlines()]
    assert row["source"] == "feedback"


def test_a_build_with_no_rows_writes_nothing_and_shows_the_steps(captured_store, tmp_path):
    result = run(
        "dataset",
        "reward",
        "--db",
        captured_store.url,
        "--out",
        str(tmp_path / "rw.jsonl"),
        "--no-progress",
        "--sources",
        "ratings",
        "--min-gap",
        "5",
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: no reward rows to write; what each step kept:\nstep")
    assert "pair ratings" in result.output and not list(tmp_path.iterdir())


def test_users_own_redaction_rules(captured_store, tmp_path):
    out = tmp_path / "sft.jsonl"
    result = run(
        "dataset",
        "sft",
        "--db",
        captured_store.url,
        "--out",
        str(out),
        "--tokenizer",
        "none",
        "--no-progress",
        "--eval-ratio",
        "0",
        "--redact-rule",
        r"ORDER=\b[A-E]-\d+\b",
        "--json",
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "[ORDER]" in text and "A-17" not in text and "B-42" not in text
    assert json.loads(result.output)["steps"][2]["reasons"]["order"] >= 4
    bad = run(
        "dataset",
        "sft",
        "--db",
        captured_store.url,
        "--out",
        str(out),
        "--tokenizer",
        "none",
        "--redact-rule",
        "ORDER=[unclosed",
    )
    assert bad.exit_code == 1 and bad.output.startswith("Error: redaction rule ORDER: not a regular expression")
