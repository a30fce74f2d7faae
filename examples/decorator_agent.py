"""A small tool-using agent, traced with two lines: `agent_tracer.init()` and `@trace_agent`.

    python examples/decorator_agent.py                       # against a local stand-in API
    python examples/decorator_agent.py --base-url https://api.openai.com/v1 --model gpt-4o-mini
                                                             # (OPENAI_API_KEY set) against the real one
    agent-tracer traces list                                 # then look at what was recorded

The agent answers order questions with one tool, `lookup_order`; each run's outcome is judged
(did the answer mention the order's status?) and recorded with `record_outcome`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

import openai

import agent_tracer

ORDERS = {"A-17": "shipped", "B-42": "delayed", "C-99": "delivered"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "The status of an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    }
]


@agent_tracer.trace_tool
def lookup_order(order_id: str) -> str:
    return ORDERS.get(order_id, "unknown order")


@agent_tracer.trace_agent(name="support-agent", tags=["example"])
def run(client: openai.OpenAI, model: str, question: str, expected: str) -> str:
    """One traced run: answer, judge the answer, and record the outcome on this run's trace."""
    answer = answer_question(client, model, question)
    success = expected in answer.lower()
    agent_tracer.record_outcome(outcome="success" if success else "failure", rating=5 if success else 1)
    return answer


def answer_question(client: openai.OpenAI, model: str, question: str, max_turns: int = 4) -> str:
    """The usual tool loop: ask, run the tools the model calls, send the results back, repeat."""
    messages = [{"role": "system", "content": "You answer questions about orders."},
                {"role": "user", "content": question}]
    for _ in range(max_turns):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS).choices[0].message
        if not reply.tool_calls:
            return reply.content or ""
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            arguments = json.loads(call.function.arguments or "{}")
            order_id = arguments.get("order_id", "")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": lookup_order(order_id)})
    return messages[-1]["content"]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible API (default: a local stand-in)")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--db", help="trace store URL (default: AGENT_TRACER_DB or ./agent_tracer.db)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if base_url is None:
            from agent_tracer.testing import FakeUpstream

            base_url = stack.enter_context(FakeUpstream()).openai_base_url
        agent_tracer.init(db=args.db)
        client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "sk-local"))
        answers = {}
        for order_id, status in ORDERS.items():
            answers[order_id] = run(client, args.model, f"What is the status of order {order_id}?", status)
            print(f"{order_id}: {answers[order_id]!r}")
        agent_tracer.flush()
        print("recorded:", agent_tracer.stats())
        agent_tracer.uninstrument()
    return answers


if __name__ == "__main__":
    main()
