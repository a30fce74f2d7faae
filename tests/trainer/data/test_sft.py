"""`build_sft` on runs captured through the SDKs: what goes in, what is dropped and why, and that the
rows render through real chat templates with tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trl

from agent_tracer.formats import HELD_OUT_TAG
from trainer.data.output import read_rows
from trainer.data.select import EmptySelection, Selection
from trainer.data.sft import SFTConfig, build_sft


def build(store, tmp_path, tokenizer, selection=None, **config):
    config = SFTConfig(out=str(tmp_path / "sft.jsonl"), **{"eval_ratio": 0.0, **config})
    return build_sft(store, selection or Selection(outcome="success"), config, tokenizer=tokenizer)


def rows(path) -> list[dict]:
    return list(read_rows(Path(path)))


def step(result, name):
    return next(s for s in result.summary.steps if s.name == name)


def test_successful_runs_become_curated_rows(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer)
    train = rows(result.paths["train"])
    # 6 successful runs (one Anthropic); the repeated B-42 run is a near copy of the first
    assert step(result, "select").rows_out == 6 and step(result, "convert").rows_out == 6
    assert step(result, "near dedup").reasons == {"near duplicate": 1}
    assert len(train) == 5 and result.summary.splits == {"train": 5, "eval": 0}
    for row in train:
        assert set(row) == {"messages", "tools"} and row["messages"][-1]["role"] == "assistant"
        for message in row["messages"]:
            for call in message.get("tool_calls") or ():
                assert isinstance(call["function"]["arguments"], dict)
    assert result.summary.tools["lookup_order"] >= 4 and result.summary.tools["get_weather"] == 1
    assert len(result.summary.token_lengths) == 5 and result.summary.percentiles()["max"] > 0


def test_personal_data_is_redacted(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer)
    text = result.paths["train"].read_text()
    assert "jane.doe@example.com" not in text and "415 555 0100" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text
    assert step(result, "redact").reasons["email"] >= 1
    unredacted = build(captured_store, tmp_path / "raw", tiny_tokenizer, redact=False)
    assert "jane.doe@example.com" in unredacted.paths["train"].read_text()


def test_one_row_per_call_keeps_every_call_of_a_run(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer, per="call")
    train = rows(result.paths["train"])
    # each tool-calling run has two calls: the call, and the answer after the result
    assert step(result, "convert").rows_out == 12
    assert sum(1 for row in train if row["messages"][-1].get("tool_calls")) == 5
    assert step(result, "near dedup").rows_in - step(result, "near dedup").rows_out == 2  # the repeated run's two


def test_the_split_holds_out_whole_traces_and_the_manifest_names_them(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer, eval_ratio=0.4, per="call")
    manifest = json.loads(result.paths["manifest"].read_text())
    held_out = manifest["eval_traces"]
    eval_rows, train_rows = rows(result.paths["eval"]), rows(result.paths["train"])
    assert held_out and manifest["splits"] == {"train": len(train_rows), "eval": len(eval_rows)}
    assert len(train_rows) + len(eval_rows) == step(result, "near dedup").rows_out
    questions = {}  # the question of each selected trace, for those asked once
    for trace in captured_store.traces(outcome="success"):
        questions.setdefault(trace.task, []).append(trace.id)
    for trace_id in held_out:
        task = captured_store.get_trace(trace_id).trace.task
        if len(questions[task]) > 1 or "@" in task:  # asked twice, or redacted in the rows
            continue
        asked = lambda row, task=task: any(m["role"] == "user" and m["content"] == task for m in row["messages"])  # noqa: E731
        assert sum(map(asked, eval_rows)) == 2 and not any(map(asked, train_rows))  # both calls, none in train
    assert manifest["selection"]["outcome"] == "success" and manifest["config"]["eval_ratio"] == 0.4


def test_held_out_traces_are_never_trained_on(captured_store, tmp_path, tiny_tokenizer):
    [trace] = captured_store.traces(name="claude-agent")
    captured_store.write([("trace", {"id": trace.id, "tags": [HELD_OUT_TAG]})])
    try:
        result = build(captured_store, tmp_path, tiny_tokenizer)
        assert step(result, "select").reasons == {"held out for evaluation": 1}
        assert "E-5" not in result.paths["train"].read_text()
        included = build(captured_store, tmp_path / "all", tiny_tokenizer, include_held_out=True)
        assert "E-5" in included.paths["train"].read_text()
        # a limit counts the traces a dataset can use: the held-out one (not last in this order) takes no place
        usable = step(result, "select").rows_out
        order = "newest" if captured_store.traces(outcome="success", order="oldest")[-1].id == trace.id else "oldest"
        limited = build(
            captured_store,
            tmp_path / "limited",
            tiny_tokenizer,
            Selection(outcome="success", max_traces=usable, order=order),
        )
        assert step(limited, "select").rows_out == usable
    finally:
        with captured_store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE traces SET tags = '[\"test\"]' WHERE id = ?", (trace.id,))


def test_long_examples_are_truncated_or_dropped(captured_store, tmp_path, tiny_tokenizer):
    lengths = build(captured_store, tmp_path, tiny_tokenizer).summary.token_lengths
    result = build(captured_store, tmp_path / "short", tiny_tokenizer, max_length=sorted(lengths)[1])
    truncate = step(result, "truncate")
    assert truncate.rows_out == len(rows(result.paths["train"])) < 5
    assert sum(truncate.reasons.values()) >= 3 and max(result.summary.token_lengths) <= sorted(lengths)[1]


def test_mixin_rows_make_their_share_of_train_and_are_redacted(captured_store, tmp_path, tiny_tokenizer):
    general = tmp_path / "general.jsonl"
    general.write_text(
        "".join(
            json.dumps({"prompt": f"Say hi to bob{i}@mail.example.org", "completion": "Hi!"}) + "\n" for i in range(20)
        )
        + "not json\n"
    )
    result = build(captured_store, tmp_path, tiny_tokenizer, mixin=str(general), mixin_share=0.5)
    train = rows(result.paths["train"])
    mixed = [row for row in train if row["messages"][0]["content"].startswith("Say hi")]
    assert len(mixed) == len(train) - len(mixed) == 5
    assert all("[EMAIL]" in row["messages"][0]["content"] for row in mixed)
    assert step(result, "mix-in").reasons["bad lines"] == 1
    assert result.summary.sources == {"traces": 5, "mixin": 5}


def test_max_samples_keeps_the_best_rated(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer, max_samples=2)
    train = rows(result.paths["train"])
    assert len(train) == 2 and step(result, "max samples").reasons == {"over the limit": 3}


def test_an_empty_selection_writes_nothing_and_says_why(captured_store, tmp_path, tiny_tokenizer):
    with pytest.raises(EmptySelection, match="0 of those rated at least 5.5"):
        build(captured_store, tmp_path, tiny_tokenizer, Selection(outcome="success", min_rating=5.5))
    assert not list(tmp_path.iterdir())


def test_rows_load_as_a_dataset_without_merged_argument_keys(captured_store, tmp_path, tiny_tokenizer):
    result = build(captured_store, tmp_path, tiny_tokenizer, eval_ratio=0.3)
    dataset = result.dataset()
    assert set(dataset) == {"train", "eval"}
    written = rows(result.paths["train"])
    assert [dict(row) for row in dataset["train"]] == written  # no nulls for other rows' argument keys


def test_rows_render_through_real_chat_templates_with_tools(captured_store, tmp_path, tiny_tokenizer, make_tokenizer):
    """The built-in template (with the loss on the assistant's tokens) and Qwen2.5's own, as TRL ships it."""
    train = rows(build(captured_store, tmp_path, tiny_tokenizer).paths["train"])
    qwen = make_tokenizer((Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text())
    for row in train:
        calls = [c for m in row["messages"] for c in m.get("tool_calls") or ()]
        out = tiny_tokenizer.apply_chat_template(
            row["messages"], tools=row["tools"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        trained = tiny_tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
        assert trained.endswith(row["messages"][-1]["content"] + "<|im_end|>")
        text = qwen.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        for call in calls:
            rendered = json.dumps({"name": call["function"]["name"], "arguments": call["function"]["arguments"]})
            assert rendered in trained.replace('"}\n</tool_call>', '"}\n</tool_call>') or rendered[:-1] in trained
            assert json.dumps(call["function"]["arguments"]) in text
        assert row["tools"][0]["function"]["name"] in text
