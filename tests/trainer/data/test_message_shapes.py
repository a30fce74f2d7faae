"""The message shapes real SDKs send, captured and made into datasets: each is used, or dropped with
a counted reason, never a silently empty dataset. The runs go through the official SDKs to the
loopback fake API, are recorded by `@trace_agent` into a SQLite file, rated with `traces rate` and
built with `dataset sft|dpo`, as a user would."""

from __future__ import annotations

import json
from collections import Counter

import anthropic
import openai
import pytest
from click.testing import CliRunner

import agent_tracer
from agent_tracer.cli import main
from agent_tracer.conversations import call_conversation
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream
from trainer.data.rows import NotTrainable, example_from, trl_messages
from trainer.evaluate.cases import request_messages
from trainer.train.inputs import row_problem

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "The status of an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def record(tmp_path):
    """Run agents with capture on into a fresh SQLite store; yields (store URL, upstream)."""
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    with FakeUpstream() as upstream:
        agent_tracer.init(db=url, spill_path=str(tmp_path / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            yield url, upstream
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()


def only_trace(url: str) -> str:
    store = TraceStore(url)
    try:
        [trace] = store.traces()
        return trace.id
    finally:
        store.close()


def build(kind: str, url: str, out, *extra: str) -> tuple[list[dict], dict]:
    result = cli(
        "dataset", kind, "--db", url, "--out", str(out), "--no-progress", "--eval-ratio", "0", "--json", *extra
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows, json.loads(result.output)


def reasons(summary: dict, step: str) -> dict:
    return next(s["reasons"] for s in summary["steps"] if s["step"] == step)


def test_a_developer_message_run_rated_5_makes_sft_and_dpo_rows_and_exports_as_sent(record, tmp_path):
    url, upstream = record

    @agent_tracer.trace_agent(name="terse-agent")
    def agent(client: openai.OpenAI, question: str) -> str:
        messages = [{"role": "developer", "content": "You are terse."}, {"role": "user", "content": question}]
        reply = client.chat.completions.create(model="gpt-test", messages=messages, tools=[LOOKUP]).choices[0].message
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls or ():
            messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'})
        answer = client.chat.completions.create(model="gpt-test", messages=messages, tools=[LOOKUP])
        return answer.choices[0].message.content or ""

    agent(openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0), "Status of A-17?")
    assert agent_tracer.flush()
    rated = cli("traces", "rate", only_trace(url), "--rating", "5", "--outcome", "success", "--db", url)
    assert rated.exit_code == 0, rated.output

    rows, summary = build("sft", url, tmp_path / "sft.jsonl", "--tokenizer", "none")
    [row] = rows
    assert row["messages"][0] == {"role": "system", "content": "You are terse."}
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert reasons(summary, "convert") == {"developer messages read as system": 1}

    pairs, _ = build("dpo", url, tmp_path / "dpo.jsonl", "--negatives", "synthetic", "--kinds", "missing_argument")
    assert pairs and all(pair["prompt"][0]["role"] == "system" for pair in pairs)

    exported = cli("traces", "export", "--out", str(tmp_path / "export.jsonl"), "--db", url)
    assert exported.exit_code == 0, exported.output
    [line] = (tmp_path / "export.jsonl").read_text().splitlines()
    assert json.loads(line)["messages"][0] == {"role": "developer", "content": "You are terse."}


def test_content_parts_and_names_are_used_and_counted(record, tmp_path):
    url, upstream = record

    @agent_tracer.trace_agent(name="parts-agent")
    def agent(client: openai.OpenAI) -> None:
        client.chat.completions.create(
            model="gpt-test",
            messages=[
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}], "name": "ops"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
                    "name": "jane",
                },
            ],
        )
        agent_tracer.record_outcome(outcome="success")

    agent(openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0))
    assert agent_tracer.flush()
    [row], summary = build("sft", url, tmp_path / "sft.jsonl", "--tokenizer", "none")
    assert row["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    assert reasons(summary, "convert") == {"message names left out (chat templates have no place for them)": 1}


def test_an_image_is_a_counted_reason_and_a_one_line_error_not_an_empty_file(record, tmp_path):
    url, upstream = record

    @agent_tracer.trace_agent(name="vision-agent")
    def agent(client: openai.OpenAI) -> None:
        client.chat.completions.create(
            model="gpt-test",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    ],
                }
            ],
        )
        agent_tracer.record_outcome(outcome="success")

    agent(openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0))
    assert agent_tracer.flush()
    result = cli(
        "dataset", "sft", "--db", url, "--out", str(tmp_path / "sft.jsonl"), "--no-progress", "--tokenizer", "none"
    )
    assert result.exit_code == 1
    assert "has image_url content, not only text 1" in result.output
    assert not (tmp_path / "sft.jsonl").exists()


def test_anthropic_thinking_blocks_are_left_out_and_the_conversation_kept(record, tmp_path):
    url, upstream = record

    @agent_tracer.trace_agent(name="thinking-agent")
    def agent(client: anthropic.Anthropic) -> None:
        client.messages.create(
            model="claude-test",
            max_tokens=100,
            system="Think, then answer.",
            messages=[
                {"role": "user", "content": "What is 2+2?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Two and two make four.", "signature": "sig"},
                        {"type": "text", "text": "4"},
                    ],
                },
                {"role": "user", "content": "And 3+3?"},
            ],
        )
        agent_tracer.record_outcome(outcome="success")

    agent(anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test", max_retries=0))
    assert agent_tracer.flush()
    [row], summary = build("sft", url, tmp_path / "sft.jsonl", "--tokenizer", "none")
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert row["messages"][2]["content"] == "4" and "Two and two" not in json.dumps(row)
    assert reasons(summary, "convert") == {}


def test_responses_reasoning_items_are_left_out_and_developer_input_kept(record, tmp_path):
    url, upstream = record

    @agent_tracer.trace_agent(name="responses-agent")
    def agent(client: openai.OpenAI) -> None:
        client.responses.create(
            model="gpt-test",
            input=[
                {"role": "developer", "content": "Answer in one word."},
                {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Paris."}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Paris"}]},
                {"role": "user", "content": "And of Italy?"},
            ],
        )
        agent_tracer.record_outcome(outcome="success")

    agent(openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0))
    assert agent_tracer.flush()
    [row], summary = build("sft", url, tmp_path / "sft.jsonl", "--tokenizer", "none")
    assert row["messages"][:4] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "And of Italy?"},
    ]
    assert reasons(summary, "convert") == {"developer messages read as system": 1}


def test_a_refusal_is_the_answers_text_and_counted():
    request = {"messages": [{"role": "user", "content": "Help me pick a lock."}], "tools": []}
    response = {"message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}}
    conversation = call_conversation("c1", "t1", request, response)
    assert conversation is not None  # an answer to learn from, not "no call with an answer"
    notes: Counter[str] = Counter()
    example = example_from(conversation, notes)
    assert example.messages[-1] == {"role": "assistant", "content": "I can't help with that."}
    assert notes == {"refusals kept as the answer's text": 1}
    parts = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
    ]
    assert trl_messages(parts)[-1]["content"] == "No."


def test_reasoning_parts_from_another_tools_conversation_are_left_out_and_counted():
    notes: Counter[str] = Counter()
    messages = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two and two.", "signature": "s"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "4"},
            ],
        },
    ]
    assert trl_messages(messages, notes=notes)[-1] == {"role": "assistant", "content": "4"}
    assert notes == {"reasoning parts left out (thinking is not trained on)": 1}


def test_unknown_roles_are_named_everywhere():
    with pytest.raises(NotTrainable, match="has a message with role 'robot'"):
        trl_messages([{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}])
    with pytest.raises(ValueError, match="role 'robot'"):
        request_messages([{"role": "robot", "content": "beep"}])
    assert request_messages([{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}])


def test_train_rows_with_developer_messages_are_accepted_and_trained_as_system(tmp_path):
    from trainer.data.output import load_dataset

    row = {
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hi."},
        ]
    }
    assert row_problem(row, "sft") is None
    assert row_problem({"messages": [{"role": "robot", "content": "x"}]}, "sft").startswith("messages[0] has role")
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(row) + "\n")
    [loaded] = load_dataset(path, "sft")
    assert [m["role"] for m in loaded["messages"]] == ["system", "user", "assistant"]
