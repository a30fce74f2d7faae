"""A small tool-using agent, traced with two lines: `agent_tracer.init()` and `@trace_agent`.

    python examples/decorator_agent.py                       # against a local stand-in API
    OPENAI_API_KEY=sk-... python examples/decorator_agent.py --base-url https://api.openai.com/v1
                                                             # against the real one (or any compatible server)
    agent-tracer traces list                                 # then look at what was recorded

The agent answers order questions with one tool, `lookup_order`, in the usual loop: ask the model,
run the tools it calls, send the results back, until it answers in text. Each run's outcome is
judged (did the answer name the order's status?) and recorded with `record_outcome`. You will see
each answer, then the capture counts; `agent-tracer traces list` shows three `support-agent` runs,
each with two model calls, one tool run and its outcome. (The stand-in API does not know the
orders: it looks up order "x", so its runs are recorded as failures.)

--base-url defaults to $OPENAI_BASE_URL, as the openai SDK itself does; `local` (the default when
that is unset) starts the stand-in on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

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
    """The tool loop: ask, run the tools the model calls, send the results back, until it answers."""
    messages = [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": question},
    ]
    for _ in range(max_turns):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS).choices[0].message
        if not reply.tool_calls:
            return reply.content or ""
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            arguments = json.loads(call.function.arguments or "{}")
            order_id = arguments.get("order_id", "")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": lookup_order(order_id)})
    raise RuntimeError(f"no answer after {max_turns} turns")  # recorded on the run's trace as its error


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Run the agent once per order; returns order id → answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL", "local"),
        help="an OpenAI-compatible API, or `local`: a stand-in (default: $OPENAI_BASE_URL, else local)",
    )
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--db", help="trace store URL (default: AGENT_TRACER_DB or ./agent_tracer.db)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if base_url == "local":
            from agent_tracer.testing import FakeUpstream

            base_url = stack.enter_context(FakeUpstream()).openai_base_url
        agent_tracer.init(db=args.db)
        stack.callback(agent_tracer.uninstrument)
        client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "sk-local"))
        answers = {}
        try:
            for order_id, status in ORDERS.items():
                answers[order_id] = run(client, args.model, f"What is the status of order {order_id}?", status)
                print(f"{order_id}: {answers[order_id]!r}")
        except (openai.APIConnectionError, openai.APIStatusError) as exc:  # recorded too: look at the trace
            sys.exit(f"error: the model API at {base_url}: {exc}")
        agent_tracer.flush()
        print("recorded:", agent_tracer.stats())
    return answers


if __name__ == "__main__":
    main()
