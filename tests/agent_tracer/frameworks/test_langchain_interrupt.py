"""LangGraph's human in the loop, on the real packages: a graph pauses in `interrupt()` (with a
checkpointer, as LangGraph requires) and is resumed with `Command(resume=...)` on the same thread.
What a user checks: the paused run is not a failure (status ok, no error, on the run or on the tool
that paused) but is tagged "interrupted" with the question it asked; the resumed run is its own
trace, tagged "resumed", linked to the first by LangGraph's `thread_id`, with the tools' results
and its model calls."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import TypedDict

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from framework_loop import ANSWER, QUESTION, clock, weather  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

from agent_tracer.frameworks import langchain as adapter  # noqa: E402

APPROVAL = {"approve": "look up the weather in Paris?"}


def approval_graph(upstream):
    """The ReAct agent of test_langchain, its weather tool asking a human first."""

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        answer = interrupt({"approve": f"look up the weather in {city}?"})
        return f"{weather(city)} ({answer})"

    @tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        return clock(city)

    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(model="gpt-test", base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model, [get_weather, get_time], checkpointer=InMemorySaver(), name="approval-desk")


def test_an_interrupted_run_is_not_an_error_and_the_resumed_run_shares_its_thread(recording):
    agent = approval_graph(recording.upstream)
    config = {"configurable": {"thread_id": "ticket-7"}}
    errors = adapter.current().stats.snapshot()["errors"]  # the handler is the process's: counts add up

    paused = agent.invoke({"messages": [("user", QUESTION)]}, config)
    assert [i.value for i in paused["__interrupt__"]] == [APPROVAL]
    resumed = agent.invoke(Command(resume="approved"), config)
    assert resumed["messages"][-1].content == ANSWER

    first, second = recording.rows("select * from traces order by started_at")
    assert (first["name"], first["task"], first["status"], first["error"]) == ("approval-desk", QUESTION, "ok", None)
    assert json.loads(first["tags"]) == ["interrupted"]
    assert json.loads(first["meta"])["interrupts"] == [APPROVAL]
    assert (second["name"], second["status"], second["error"]) == ("approval-desk", "ok", None)
    assert json.loads(second["tags"]) == ["resumed"]
    assert json.loads(first["meta"])["thread_id"] == json.loads(second["meta"])["thread_id"] == "ticket-7"
    [resume_run] = recording.rows("select input, output from agent_runs where trace_id = ?", second["id"])
    assert (json.loads(resume_run["input"]), json.loads(resume_run["output"])) == ({"resume": "approved"}, ANSWER)

    tools_run = recording.rows("select trace_id, name, result, error from tool_executions order by started_at")
    assert [tuple(t) for t in tools_run] == [
        (first["id"], "get_weather", "null", None),  # paused, not failed: LangGraph runs it again on resume
        (second["id"], "get_weather", '"sunny in Paris (approved)"', None),
        (second["id"], "get_time", '"noon in Paris"', None),
    ]
    calls = recording.rows("select trace_id from llm_calls order by started_at")
    assert [c["trace_id"] for c in calls] == [first["id"], second["id"], second["id"]]
    assert adapter.current().stats.snapshot()["errors"] == errors


class Ticket(TypedDict, total=False):
    question: str
    answer: str


def test_an_interrupt_in_a_subgraph_node_run_async_marks_the_outer_run(recording):
    def ask(state: Ticket) -> Ticket:
        return {"answer": f"{state['question']} {interrupt('may I?')}"}

    inner = StateGraph(Ticket)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(Ticket)
    outer.add_node("review", inner.compile(name="review"))
    outer.add_edge(START, "review")
    outer.add_edge("review", END)
    graph = outer.compile(checkpointer=InMemorySaver(), name="desk")
    config = {"configurable": {"thread_id": "ticket-8"}}

    async def pause_and_resume():
        paused = await graph.ainvoke({"question": QUESTION}, config)
        return paused, await graph.ainvoke(Command(resume="yes"), config)

    paused, resumed = asyncio.run(pause_and_resume())
    assert [i.value for i in paused["__interrupt__"]] == ["may I?"] and resumed["answer"] == f"{QUESTION} yes"
    first, second = recording.rows("select * from traces order by started_at")
    assert (first["status"], first["error"], json.loads(first["tags"])) == ("ok", None, ["interrupted"])
    assert json.loads(first["meta"])["interrupts"] == ["may I?"]  # raised in three runs, noted once
    assert (second["status"], json.loads(second["tags"])) == ("ok", ["resumed"])
    assert recording.rows("select count(*) from agent_runs where error is not null")[0][0] == 0


def test_an_interrupt_inside_trace_agent_marks_that_trace(recording):
    """The graph run by a `@trace_agent` function: the paused graph is a nested run, and the
    decorated run's trace is tagged "interrupted" with the interrupts and LangGraph's thread id."""
    import agent_tracer

    agent = approval_graph(recording.upstream)
    config = {"configurable": {"thread_id": "ticket-9"}}

    @agent_tracer.trace_agent(name="support")
    def handle(question: str) -> dict:
        return agent.invoke({"messages": [("user", question)]}, config)

    @agent_tracer.trace_agent(name="support")
    def resume(answer: str) -> dict:
        return agent.invoke(Command(resume=answer), config)

    assert [i.value for i in handle(QUESTION)["__interrupt__"]] == [APPROVAL]
    assert resume("approved")["messages"][-1].content == ANSWER
    first, second = recording.rows("select * from traces order by started_at")
    assert (first["name"], first["status"], first["error"]) == ("support", "ok", None)
    assert json.loads(first["tags"]) == ["interrupted"]
    meta = json.loads(first["meta"])
    assert meta["interrupts"] == [APPROVAL] and meta["thread_id"] == "ticket-9"
    assert (second["name"], json.loads(second["tags"])) == ("support", ["resumed"])
    assert json.loads(second["meta"])["thread_id"] == "ticket-9"
    runs = recording.rows("select trace_id, name, parent_span_id from agent_runs order by started_at")
    assert [(r["trace_id"], r["name"]) for r in runs] == [
        (first["id"], "support"),
        (first["id"], "approval-desk"),
        (second["id"], "support"),
        (second["id"], "approval-desk"),
    ]
