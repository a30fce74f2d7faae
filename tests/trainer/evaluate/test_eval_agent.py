"""AgentEvaluator: a real tool-loop agent on the official async SDK against scripted servers, one that
completes every task in two turns and one that fails them in three different ways; every figure
worked out by hand."""

from __future__ import annotations

import json

import openai
import pytest

from trainer.evaluate import AgentEvaluator, RunConfig
from trainer.evaluate.stats import mcnemar_exact, wilson

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TEMPERATURES = {"Paris": 21, "Oslo": 4, "Rome": 18}
MAX_TURNS = 4
TASKS = [
    {"id": city.lower(), "question": f"Weather in {city}?", "expected": str(temp)}
    for city, temp in TEMPERATURES.items()
]


def weather(city: str) -> str:
    return json.dumps({"city": city, "temp_c": TEMPERATURES[city]})


async def tool_loop(task: dict, client: openai.AsyncOpenAI, model: str) -> str | None:
    """A plain agent: ask, run the tools the model calls, send their results, until it answers."""
    assert isinstance(client, openai.AsyncOpenAI)
    messages = [{"role": "user", "content": task["question"]}]
    for _ in range(MAX_TURNS):
        response = await client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        message = response.choices[0].message
        if not message.tool_calls:
            return message.content
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            city = json.loads(call.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": weather(city)})
    return None  # gave up


def finds_the_temperature(task: dict, answer: str | None) -> bool:
    return answer is not None and task["expected"] in answer


# good: calls the tool, then answers from its result: 2 turns, 100+150 tokens in, 20+10 out.
GOOD = {
    f"Weather in {city}?": dict(calls=[("get_weather", {"city": city})], prompt_tokens=100, completion_tokens=20)
    for city in TEMPERATURES
}
GOOD |= {
    f"tool:{weather(city)}": dict(content=f"It is {temp} °C in {city}.", prompt_tokens=150, completion_tokens=10)
    for city, temp in TEMPERATURES.items()
}
# bad: Paris loops on the tool until the agent gives up (4 turns); Oslo answers without looking
# (1 turn, judged wrong); Rome fails with a 500, retried once (2 calls, 0 turns, the agent raises).
BAD = {
    "Weather in Paris?": dict(calls=[("get_weather", {"city": "Paris"})], prompt_tokens=200, completion_tokens=5),
    f"tool:{weather('Paris')}": dict(
        calls=[("get_weather", {"city": "Paris"})], prompt_tokens=200, completion_tokens=5
    ),
    "Weather in Oslo?": dict(content="It is sunny in Oslo.", prompt_tokens=200, completion_tokens=5),
    "Weather in Rome?": dict(status=500),
}


@pytest.fixture
def evaluation(scripted, tmp_path):
    good, bad = scripted(GOOD, model="good-model"), scripted(BAD, model="bad-model")
    evaluator = AgentEvaluator(
        tool_loop,
        TASKS,
        [f"good={good.openai_base_url},price_in=0.001,price_out=0.002", f"bad={bad.openai_base_url}"],
        judge=finds_the_temperature,
        config=RunConfig(retries=1),
    )
    return evaluator.run(), good, bad


def test_success_turns_calls_and_tokens_by_hand(evaluation):
    result, good_server, bad_server = evaluation
    good, bad = result.summaries
    assert (good.success.k, good.success.n) == (3, 3) and good.success.interval == pytest.approx(wilson(3, 3))
    assert good.model == "good-model" and good.turns_to_complete == 2 and good.calls == 2 and good.errors == 0
    assert (good.input_tokens, good.output_tokens) == (250, 30)
    assert good.cost_per_task == pytest.approx(250 / 1000 * 0.001 + 30 / 1000 * 0.002)
    assert good.latency_ms["p50"] is not None and good.latency_ms["p95"] >= good.latency_ms["p50"]

    rows = {row.case_id: row for row in result.rows if row.endpoint == "bad"}
    assert (rows["paris"].turns, rows["paris"].calls, rows["paris"].result, rows["paris"].success) == (
        4,
        4,
        None,
        False,
    )
    assert (rows["oslo"].turns, rows["oslo"].calls, rows["oslo"].result) == (1, 1, "It is sunny in Oslo.")
    assert (rows["rome"].turns, rows["rome"].calls, rows["rome"].status) == (0, 2, "error")
    assert rows["rome"].error.startswith("InternalServerError:") and "scripted failure" in rows["rome"].error
    assert (bad.success.k, bad.errors, bad.down, bad.turns_to_complete) == (0, 1, None, None)
    assert bad.turns == pytest.approx(5 / 3) and bad.calls == pytest.approx(7 / 3)
    assert (bad.input_tokens, bad.output_tokens) == (500, 12.5)  # Paris 800/20, Oslo 200/5; Rome none
    assert bad.cost_per_task is None  # a model the price table does not know

    (comparison,) = result.comparisons
    assert (comparison.a_only, comparison.b_only, comparison.both, comparison.neither) == (3, 0, 0, 0)
    assert comparison.p_value == pytest.approx(mcnemar_exact(3, 0)) == pytest.approx(0.25)
    # what the servers saw: 6 POSTs and one GET /models each
    assert sum(r["path"] == "/v1/chat/completions" for r in good_server.requests) == 6
    assert sum(r["path"] == "/v1/chat/completions" for r in bad_server.requests) == 7
    assert good_server.requests[-1]["json"]["model"] == "good-model"


def test_report_files(evaluation, tmp_path):
    result = evaluation[0]
    written = result.write(tmp_path / "agent")
    assert {"results.jsonl", "report.md", "index.html"} <= set(written)
    rows = [json.loads(line) for line in written["results.jsonl"].read_text().splitlines()]
    assert len(rows) == 6 and {row["case_id"] for row in rows} == {"paris", "oslo", "rome"}
    markdown = written["report.md"].read_text()
    assert "| good | 100.0% |" in markdown and "| bad | 0.0% |" in markdown and "| 0.25 |" in markdown
    assert "## Failed tasks: bad (3)" in markdown and "judged wrong: 'It is sunny in Oslo.'" in markdown
    page = written["index.html"].read_text()
    assert "100.0%" in page and "2.0" in page and "judged wrong: &#x27;It is sunny in Oslo.&#x27;" in page
    if "success.png" in written:
        assert written["success.png"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    table = result.table()
    assert "good" in table and "100.0%" in table and "good vs bad: only good right 3" in table


async def test_streamed_agent_without_a_judge(scripted):
    """A streaming agent's tokens come from the SSE usage chunk; without a judge the expected answer decides."""
    server = scripted({"Capital of France?": dict(content="Paris", prompt_tokens=12, completion_tokens=3)})

    async def streamed(task: dict, client: openai.AsyncOpenAI) -> str:
        stream = await client.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": task["q"]}],
            stream=True,
            stream_options={"include_usage": True},
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    tasks = [{"q": "Capital of France?", "expected": "Paris"}, {"q": "Capital of Peru?", "expected": "Lima"}]
    result = await AgentEvaluator(streamed, tasks, {"only": server.openai_base_url}).run_async()
    first, second = result.rows
    assert (first.case_id, first.success, first.turns, first.input_tokens, first.output_tokens) == (
        "task-1",
        True,
        1,
        12,
        3,
    )
    assert (second.success, second.result) == (False, "I do not know.")
    assert result.summaries[0].success.k == 1 and server.requests[-1]["json"]["model"] == "any"
