"""Stored calls → conversations → TRL rows, from runs captured through the SDKs."""

from __future__ import annotations

import json

import pytest

from agent_tracer.conversations import Conversation, call_conversation, final_conversations
from trainer.data.rows import NotTrainable, example_from, trl_messages


def conversations(store, **filters):
    for run in store.iter_runs(order="oldest", **filters):
        calls = [
            c for c in (call_conversation(r["id"], r["trace_id"], r["request"], r["response"]) for r in run.calls) if c
        ]
        yield run, calls, final_conversations(calls)


def test_a_tool_loop_is_one_final_conversation_holding_every_call(captured_store):
    runs = list(conversations(captured_store, name="orders-agent"))
    assert len(runs) == 7
    first, calls, finals = runs[0]
    assert first.trace["task"] == "What is the status of order A-17?"
    assert len(calls) == 2 and len(finals) == 1  # ask → tool call, then results → answer
    final = finals[0]
    assert final.call_ids == [c["id"] for c in first.calls]
    assert [m["role"] for m in final.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert final.tool_names == ["lookup_order"]
    assert final.messages[-1]["content"].startswith("Echo: ")
    assert [t["function"]["name"] for t in final.tools] == ["lookup_order"]


def test_parallel_calls_and_anthropic_tool_results_come_through(captured_store):
    parallel = next(
        f
        for _, _, fs in conversations(captured_store, name="orders-agent")
        for f in fs
        if "weather" in f.messages[1]["content"]
    )
    assert parallel.tool_names == ["get_weather", "lookup_order"]
    assert [m["role"] for m in parallel.messages].count("tool") == 2

    [(run, calls, [final])] = conversations(captured_store, name="claude-agent")
    assert [m["role"] for m in final.messages] == ["system", "user", "assistant", "tool", "assistant"]
    row = example_from(final)
    assert row.messages[2]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": {"order_id": "x"}}
    assert row.messages[3] == {
        "role": "tool",
        "content": "delivered",
        "tool_call_id": row.messages[2]["tool_calls"][0]["id"],
        "name": "lookup_order",
    }


def test_a_retried_request_keeps_only_the_later_answer():
    ask = [{"role": "user", "content": "hi"}]
    first = Conversation([*ask, {"role": "assistant", "content": "bad"}], call_ids=["1"])
    retry = Conversation([*ask, {"role": "assistant", "content": "good"}], call_ids=["2"])
    other = Conversation(
        [{"role": "system", "content": "summarise"}, *ask, {"role": "assistant", "content": "s"}], call_ids=["3"]
    )
    assert [c.call_ids for c in final_conversations([first, retry, other])] == [["2"], ["3"]]


def test_an_answer_sent_back_slightly_changed_still_continues_the_conversation():
    ask = [{"role": "user", "content": "q"}]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1, "b": 2}'}}
    first = Conversation([*ask, {"role": "assistant", "content": None, "tool_calls": [call]}], call_ids=["1"])
    echoed = {**call, "function": {"name": "f", "arguments": '{"b":2,"a":1}'}}  # re-serialised by the agent
    second = Conversation(
        [
            *ask,
            {"role": "assistant", "content": "", "tool_calls": [echoed]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ],
        call_ids=["2"],
    )
    [final] = final_conversations([first, second])
    assert final.call_ids == ["1", "2"]


def test_calls_without_an_answer_are_not_conversations():
    request = {"messages": [{"role": "user", "content": "x"}]}
    assert call_conversation("1", "t", request, None) is None
    assert call_conversation("1", "t", request, {"message": {"role": "assistant", "content": ""}}) is None
    assert call_conversation("1", "t", request, {"message": {"role": "assistant", "content": "y"}}) is not None


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"role": "user", "content": "x"}], "does not end with an assistant message"),
        (
            [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]},
                {"role": "assistant", "content": "a cat"},
            ],
            "image_url content",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
                },
            ],
            "not valid JSON",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                },
            ],
            "not a JSON object",
        ),
    ],
)
def test_what_cannot_be_trained_on_says_why(messages, reason):
    with pytest.raises(NotTrainable, match=reason):
        trl_messages(messages)


def test_trl_messages_give_text_content_and_dict_arguments():
    messages = trl_messages(
        [
            {"role": "user", "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": json.dumps({"x": [1, 2]})}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "r"},
            {"role": "assistant", "content": "fine"},
        ]
    )
    assert messages[0]["content"] == "a b"
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": [1, 2]}}, "id": "c"}],
    }
    assert messages[2]["name"] == "f"
