"""Trainer fixtures: a trace store filled by really captured runs of a small tool-using agent (the
official SDKs against the loopback fake API), and for training runs row files of each kind. The
tiny tokenizer and the tiny Llama model folder are in tests/conftest.py (the examples use them too)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import anthropic
import openai
import pytest

import agent_tracer
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "The status of an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass(frozen=True)
class Run:
    question: str
    scenario: str
    outcome: str | None
    rating: float | None
    tools: tuple = (LOOKUP,)


RUNS = [
    Run("What is the status of order A-17?", "auto", "success", 5),
    Run("What is the status of order A-17?", "text", "failure", 1),  # answered without looking it up
    Run("Where is my parcel B-42?", "auto", "success", 4),
    Run("Where is my parcel B-42?", "auto", "success", 4),  # the same run again: an exact duplicate
    Run("Cancel order C-99, my email is jane.doe@example.com and phone +1 415 555 0100", "auto", "success", 5),
    Run(
        "What is the weather in Paris and the status of order A-17?", "parallel_tools", "success", 3, (WEATHER, LOOKUP)
    ),
    Run("Is order D-1 late?", "auto", None, None),  # never rated
]
"""The OpenAI agent's runs: question, the fake API's behaviour, and the outcome recorded for it."""


@agent_tracer.trace_agent(name="orders-agent", tags=["test"])
def openai_agent(client: openai.OpenAI, question: str, run: Run) -> str:
    messages = [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": question},
    ]
    scenario = run.scenario
    for _ in range(4):
        reply = (
            client.chat.completions.create(
                model="gpt-test", messages=messages, tools=list(run.tools), extra_headers={"x-fake-scenario": scenario}
            )
            .choices[0]
            .message
        )
        if not reply.tool_calls:
            break
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": json.dumps({"status": "shipped", "for": call.function.arguments}),
                }
            )
        scenario = "auto"  # with the results in, the fake answers in text
    if run.outcome or run.rating is not None:
        agent_tracer.record_outcome(outcome=run.outcome, rating=run.rating)
    return reply.content or ""


@agent_tracer.trace_agent(name="claude-agent")
def anthropic_agent(client: anthropic.Anthropic, question: str) -> str:
    tool = {
        "name": "lookup_order",
        "description": "The status of an order",
        "input_schema": LOOKUP["function"]["parameters"],
    }
    messages: list[dict] = [{"role": "user", "content": question}]
    for _ in range(4):
        reply = client.messages.create(
            model="claude-test",
            max_tokens=200,
            system="You answer questions about orders.",
            tools=[tool],
            messages=messages,
        )
        uses = [block for block in reply.content if block.type == "tool_use"]
        if not uses:
            break
        messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "delivered"} for use in uses],
            }
        )
    agent_tracer.record_outcome(outcome="success", rating=5)
    return "".join(block.text for block in reply.content if block.type == "text")


@pytest.fixture(scope="module")
def captured_store(tmp_path_factory):
    """A store holding the runs above (and one Anthropic run), captured through the SDKs."""
    folder = tmp_path_factory.mktemp("captured")
    url = f"sqlite:///{folder / 'traces.db'}"
    with FakeUpstream() as upstream:
        agent_tracer.init(db=url, spill_path=str(folder / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            for run in RUNS:
                openai_agent(client, run.question, run)
            anthropic_agent(
                anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test", max_retries=0),
                "Has order E-5 been delivered?",
            )
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()
    store = TraceStore(url)
    yield store
    store.close()


# Training runs: rows of each kind a run takes, written as the dataset command writes them.

QUESTIONS = [
    ("What is the status of order A-17?", "A-17"),
    ("Where is my parcel B-42?", "B-42"),
    ("Has order C-99 shipped?", "C-99"),
    ("Is order D-1 late?", "D-1"),
]


def conversation(question: str, order: str) -> list[dict]:
    return [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": order}}}
            ],
        },
        {"role": "tool", "name": "lookup_order", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": f"Order {order} has shipped."},
    ]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def sft_file(tmp_path):
    rows = [{"messages": conversation(q, o), "tools": [LOOKUP, WEATHER]} for q, o in QUESTIONS * 3]
    return write_jsonl(tmp_path / "sft.jsonl", rows)


@pytest.fixture
def preference_file(tmp_path):
    rows = []
    for question, order in QUESTIONS * 3:
        messages = conversation(question, order)
        wrong = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": order}}}],
        }
        rows.append(
            {
                "prompt": messages[:2],
                "chosen": [messages[2]],
                "rejected": [wrong],
                "tools": [LOOKUP, WEATHER],
                "source": "synthetic",
                "kind": "wrong_tool",
            }
        )
    return write_jsonl(tmp_path / "dpo.jsonl", rows)
