"""End to end: scripted servers with known answers, the official SDK, every metric worked out by hand."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from trainer.evaluate import Endpoint, RunConfig, evaluate
from trainer.evaluate.stats import mcnemar_exact, wilson

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SECRET = "sk-test-secret-4242"


def weather_case(i: int) -> dict:
    return {
        "id": f"w{i}",
        "messages": [{"role": "user", "content": f"q{i}"}],
        "tools": [WEATHER, TIME],
        "expected": {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": f"City{i}"}, "allowed": {"unit": ["celsius", ""]}}
            ]
        },
    }


def right(i: int, **kw) -> dict:
    return dict(calls=[("get_weather", {"city": f"city {i}"})], **kw)  # standardised: "city 3" == "City3"


# tuned: right on 0-6; 7 and 8 the right tool with a wrong city; 9 answers in text.
TUNED = {f"q{i}": right(i, delay=0.05 if i == 0 else 0.0) for i in range(7)}
TUNED |= {
    "q7": dict(calls=[("get_weather", {"city": "Oslo"})]),
    "q8": dict(calls=[("get_weather", {"city": "Rome"})]),
    "q9": dict(content="It is sunny."),
}
# base: right on 0, 1, 2, 7; the wrong tool on 3-6 and 8; malformed arguments on 9.
BASE = {f"q{i}": right(i, prompt_tokens=200, completion_tokens=10) for i in (0, 1, 2, 7)}
BASE |= {
    f"q{i}": dict(calls=[("get_time", {"city": f"City{i}"})], prompt_tokens=200, completion_tokens=10)
    for i in (3, 4, 5, 6, 8)
}
BASE["q9"] = dict(calls=[("get_weather", '{"city": ')], prompt_tokens=200, completion_tokens=10)


@pytest.fixture
def servers(scripted, dead_url, monkeypatch):
    monkeypatch.setenv("EVAL_TEST_KEY", SECRET)
    tuned = scripted(TUNED, model="tuned-model")
    base = scripted(BASE, model="gpt-4o-mini-2024-07-18")
    return (
        tuned,
        base,
        [
            Endpoint.parse(f"tuned={tuned.openai_base_url},key_env=EVAL_TEST_KEY,price_in=0.001,price_out=0.002"),
            Endpoint.parse(
                f"base={base.openai_base_url}"
            ),  # the model is the one the server lists; its price the table's
            Endpoint.parse(f"down={dead_url},model=x"),
        ],
    )


def test_metrics_by_hand(servers):
    tuned_server, base_server, endpoints = servers
    result = evaluate([weather_case(i) for i in range(10)], endpoints, RunConfig(concurrency=3, retries=0))
    assert len(result.rows) == 30
    tuned, base, down = result.summary.endpoints

    assert (tuned.success.k, tuned.success.n) == (7, 10)
    assert tuned.success.value == 0.7 and tuned.success.interval == pytest.approx(wilson(7, 10))
    assert (tuned.tool_selection.k, tuned.arguments.k, tuned.well_formed.k) == (9, 7, 10)
    assert (tuned.tool_call_format.k, tuned.tool_call_format.n) == (9, 10)  # q9 answers in text
    assert tuned.input_tokens == 100 and tuned.output_tokens == 20
    assert tuned.cost_per_task == pytest.approx(100 / 1000 * 0.001 + 20 / 1000 * 0.002)
    assert tuned.failure_kinds == {"value": 2, "wrong_count": 1}
    first = next(row for row in result.rows if row.endpoint == "tuned" and row.case_id == "w0")
    assert first.ttft_ms >= 50 and first.latency_ms >= first.ttft_ms and tuned.ttft_ms["p95"] >= 50

    assert base.model == "gpt-4o-mini-2024-07-18"
    assert (base.success.k, base.tool_selection.k, base.arguments.k, base.well_formed.k) == (4, 5, 4, 9)
    assert (base.tool_call_format.k, base.tool_call_format.n) == (9, 10)  # q9's arguments do not parse
    assert base.cost_per_task == pytest.approx(200 / 1000 * 0.00015 + 10 / 1000 * 0.0006)  # gpt-4o-mini's list price

    assert down.down and down.errors == 10 and down.success.k == 0 and "endpoint down" in result.rows[-1].error
    (comparison,) = result.summary.comparisons  # the down endpoint is compared with nobody
    assert (comparison.both, comparison.a_only, comparison.b_only, comparison.neither) == (3, 4, 1, 2)
    assert comparison.p_value == pytest.approx(mcnemar_exact(4, 1)) == pytest.approx(0.375)
    assert result.summary.per_tool["get_weather"]["tuned"]["success"].k == 7

    assert tuned_server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    body = tuned_server.requests[-1]["json"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True} and body["temperature"] == 0
    assert [r["path"] for r in base_server.requests].count("/v1/models") == 1


def test_cli_report_files(servers, tmp_path):
    _, _, endpoints = servers
    cases = tmp_path / "cases.jsonl"
    lines = [json.dumps(weather_case(i)) for i in range(10)]
    lines[3:3] = ["{not json", json.dumps({"id": "no-messages"})]
    cases.write_text("\n".join(lines) + "\n")
    specs = [f"--endpoint={e.name}={e.url}" + (f",model={e.model}" if e.model else "") for e in endpoints]
    specs[0] += ",key_env=EVAL_TEST_KEY,price_in=0.001,price_out=0.002"
    report = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["eval", "--cases", str(cases), *specs, "--retries", "0", "--report", str(report), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert f"{cases}:4: not JSON" in result.stderr and f"{cases}:5: no messages" in result.stderr
    assert "70.0%" in result.stdout and "down" in result.stdout and "p = 0.375" in result.stdout
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and {row["endpoint"] for row in rows} == {"tuned", "base", "down"}
    markdown = (report / "report.md").read_text()
    assert "## Task success" in markdown and "39.7%–89.2%" in markdown and "Worst failures: tuned" in markdown
    assert "user: q7" in markdown and "**down was down**" in markdown
    for text in (result.output, markdown, (report / "results.jsonl").read_text()):
        assert SECRET not in text

    as_json = CliRunner().invoke(
        main,
        [
            "eval",
            "--cases",
            str(cases),
            *specs[:1],
            "--report",
            str(report),
            "--json",
            "--no-progress",
            "--limit",
            "2",
            "--temperature",
            "none",
        ],
    )
    assert "temperature" not in servers[0].requests[-1]["json"]  # left to the server (reasoning models want none)
    summary = json.loads(as_json.stdout)
    assert summary["cases"] == 2 and summary["endpoints"][0]["name"] == "tuned"
    assert summary["endpoints"][0]["key_env"] == "EVAL_TEST_KEY" and SECRET not in as_json.stdout


def test_answer_format_and_text_tool_calls(scripted):
    server = scripted(
        {
            "json": dict(content='{"temp_c": 21, "city": "Paris"}'),
            "bad json": dict(content="21 degrees"),
            "long": dict(content="x" * 50),
            "contains": dict(content="In PARIS it is 21."),
            "text call": dict(content='<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'),
        }
    )
    schema = {"type": "object", "properties": {"temp_c": {"type": "number"}}, "required": ["temp_c"]}
    cases = [
        {
            "id": "json",
            "messages": [{"role": "user", "content": "json"}],
            "format": {"json": True, "schema": schema},
            "expected": {"answer": {"fields": {"temp_c": [21, 21.0], "city": ["paris"]}}},
        },
        {"id": "bad json", "messages": [{"role": "user", "content": "bad json"}], "format": {"json": True}},
        {"id": "long", "messages": [{"role": "user", "content": "long"}], "format": {"max_length": 40}},
        {
            "id": "contains",
            "messages": [{"role": "user", "content": "contains"}],
            "expected": {"answer": {"contains": ["paris", "21"]}},
        },
        {
            "id": "text call",
            "messages": [{"role": "user", "content": "text call"}],
            "tools": [WEATHER],
            "expected": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
    ]
    result = evaluate(cases, {"only": server.openai_base_url})
    grades = {row.case_id: row.grade for row in result.rows}
    assert grades["json"].success and grades["json"].answer
    assert not grades["bad json"].well_formed and grades["bad json"].reason == "the answer is not valid JSON"
    assert not grades["long"].success and "over the 40 allowed" in grades["long"].reason
    assert grades["contains"].success and grades["text call"].success
    (summary,) = result.summary.endpoints
    assert (summary.well_formed.k, summary.well_formed.n, summary.answer.k, summary.answer.n) == (3, 5, 2, 2)
    assert summary.cost_per_task is None  # a model the price table does not know


def test_no_cases_says_where_it_looked(tmp_path, scripted):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "x"}\n')
    result = CliRunner().invoke(main, ["eval", "--cases", str(empty), "--endpoint", "a=http://127.0.0.1:9/v1"])
    assert result.exit_code == 1
    assert f"no eval cases in {empty}; 1 line(s) skipped, the first: {empty}:1: no messages" in result.stderr


def test_safe_names_for_bfcl_dotted_tools(scripted):
    server = scripted({"5!": dict(calls=[("math_factorial", {"number": 5})])})
    case = {
        "messages": [{"role": "user", "content": "5!"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "math.factorial",
                    "parameters": {
                        "type": "object",
                        "properties": {"number": {"type": "integer"}},
                        "required": ["number"],
                    },
                },
            }
        ],
        "expected": {"tool_calls": [{"name": "math.factorial", "arguments": {"number": 5}}]},
    }
    result = evaluate([case], [f"openai={server.openai_base_url},safe_names=true"])
    assert result.rows[0].success and result.rows[0].reply.calls[0]["name"] == "math.factorial"
    assert server.requests[-1]["json"]["tools"][0]["function"]["name"] == "math_factorial"


def test_a_price_file_prices_a_model_the_table_does_not_know(scripted, tmp_path):
    """`eval --prices` reads the capture side's table (`agent_tracer.prices`): the file's price of
    the scripted model, 100 tokens in and 20 out a case; a bad file is one line naming it."""
    server = scripted({"q": {"content": "hi"}})
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "c", "messages": [{"role": "user", "content": "q"}]}) + "\n")
    prices = tmp_path / "prices.yaml"
    prices.write_text("scripted-model: {input: 0.01, output: 0.1}\n")
    arguments = ["eval", "--cases", str(cases), f"--endpoint=s={server.openai_base_url}", "--no-progress", "--json"]
    result = CliRunner().invoke(main, [*arguments, "--report", str(tmp_path / "r"), "--prices", str(prices)])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)["endpoints"]
    assert summary["cost_per_task"] == pytest.approx(100 / 1000 * 0.01 + 20 / 1000 * 0.1)
    prices.write_text("scripted-model: {input: 0.01}\n")
    refused = CliRunner().invoke(main, [*arguments, "--report", str(tmp_path / "r2"), "--prices", str(prices)])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == (
        f"Error: {prices}: the price of scripted-model needs input and output, USD per 1K tokens"
    )
