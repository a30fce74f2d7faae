"""The routes file, the answer checks and the breaker, each on its own; `routes show|check`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent_tracer.canonical import CanonicalResponse
from agent_tracer.cli import main
from agent_tracer.errors import ConfigError
from agent_tracer.loopback import free_port
from agent_tracer.proxy.breaker import CircuitBreaker
from agent_tracer.proxy.routes import Breaker, load_routes, parse_routes
from agent_tracer.proxy.verdict import judge

GOOD = {
    "primary": {"url": "http://127.0.0.1:8001/v1", "model": "tuned"},
    "fallback": {"url": "https://api.openai.com/v1", "model": "gpt-4o"},
}


def routes_with(**changes):
    return {"routes": {"agent": {**GOOD, **changes}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (routes_with(mode="sometimes"), "route 'agent': unknown mode 'sometimes' (one of fallback, shadow, canary)"),
        ({"routes": {"agent": {"primary": GOOD["primary"]}}}, "route 'agent': no fallback endpoint"),
        (routes_with(primary={"url": "127.0.0.1:8001", "model": "t"}), "primary: url '127.0.0.1:8001' is not an http"),
        (routes_with(primary={"url": "http://h/v1"}), "primary: model must be"),
        (routes_with(timeout=5), "unknown key(s) timeout"),
        (routes_with(timeout_s=0), "timeout_s must be a positive number"),
        (routes_with(mode="canary"), "mode canary needs canary_percent"),
        (routes_with(mode="canary", canary_percent=120), "canary_percent must be a number from 0 to 100"),
        (routes_with(breaker={"failures": 0}), "breaker failures must be a whole number"),
        (
            routes_with(fallback={**GOOD["fallback"], "api_key_env": "AGENT_TRACER_TEST_UNSET_KEY"}),
            "AGENT_TRACER_TEST_UNSET_KEY (api_key_env) is not set",
        ),
        (routes_with(primary=[]), "route 'agent' primary: an empty list"),
        (routes_with(primary=[GOOD["primary"], {"url": "http://h/v1"}]), "route 'agent' primary 2: model must be"),
        (
            routes_with(primary=[GOOD["primary"], GOOD["primary"]]),
            "the replica http://127.0.0.1:8001/v1 is listed twice",
        ),
        ({"routes": {}}, "expected a top-level `routes:` mapping"),
        ({"route": {}}, "expected a top-level `routes:` mapping"),
    ],
)
def test_a_bad_routes_file_is_one_line_naming_what_is_wrong(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_routes(data, "routes.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("routes.yaml")


def test_a_good_file_loads_with_its_defaults_and_keys_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_KEY", "sk-frontier")
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n  agent:\n    primary: {url: 'http://127.0.0.1:8001/v1/', model: tuned}\n"
        "    fallback: {url: 'https://api.openai.com/v1', model: gpt-4o, api_key_env: FRONTIER_KEY}\n"
    )
    route = load_routes(path)["agent"]
    assert (route.mode, route.timeout_s, route.first_token_timeout_s, route.breaker) == (
        "fallback",
        30.0,
        None,
        Breaker(),
    )
    assert route.primaries[0].url == "http://127.0.0.1:8001/v1" and route.fallbacks[0].api_key == "sk-frontier"
    assert "sk-frontier" not in repr(route)


def test_a_file_that_is_not_yaml_names_its_line(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  agent: [\n")
    with pytest.raises(ConfigError, match=r"routes.yaml is not valid YAML \(line \d\)"):
        load_routes(path)
    with pytest.raises(ConfigError, match="cannot read the routes file"):
        load_routes(tmp_path / "missing.yaml")


def test_routes_check_connects_to_every_endpoint(tmp_path):
    dead = free_port()
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"routes:\n  agent:\n    primary: {{url: 'http://127.0.0.1:{dead}/v1', model: tuned}}\n"
        f"    fallback: {{url: 'http://127.0.0.1:{dead}/v1', model: big}}\n"
    )
    result = CliRunner().invoke(main, ["routes", "check", str(path)])
    assert result.exit_code == 1
    assert f"route 'agent' primary http://127.0.0.1:{dead}/v1 is unreachable" in result.output


def test_routes_check_and_show_on_a_good_file(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("FRONTIER_KEY", "sk-frontier")
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"routes:\n  agent:\n    mode: canary\n    canary_percent: 5\n"
        f"    primary: {{url: '{upstream.openai_base_url}', model: tuned}}\n"
        f"    fallback: {{url: '{upstream.openai_base_url}', model: big, api_key_env: FRONTIER_KEY}}\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["routes", "check", str(path)])
    assert result.exit_code == 0 and "ok: 1 route(s), 1 endpoint(s) reachable" in result.output
    shown = runner.invoke(main, ["routes", "show", str(path)])
    assert shown.exit_code == 0 and "agent: canary, canary 5%" in shown.output and "$FRONTIER_KEY" in shown.output
    as_json = runner.invoke(main, ["routes", "show", "--json", str(path)])
    data = json.loads(as_json.output)
    assert data["agent"]["fallback"] == {"url": upstream.openai_base_url, "model": "big", "api_key_env": "FRONTIER_KEY"}
    assert "sk-frontier" not in shown.output + as_json.output
    monkeypatch.delenv("FRONTIER_KEY")
    assert runner.invoke(main, ["routes", "show", str(path)]).exit_code == 0  # showing needs no key
    unset = runner.invoke(main, ["routes", "check", str(path)])
    assert unset.exit_code == 1 and "FRONTIER_KEY (api_key_env) is not set" in unset.output


def _answer(content=None, calls=()):
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    return CanonicalResponse(message=message)


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize(
    ("request_body", "answer", "reason"),
    [
        ({}, _answer("Hello"), None),
        ({}, _answer("  \n"), "empty_answer"),
        ({}, _answer(None), "empty_answer"),
        ({"tools": [WEATHER]}, _answer(calls=[("weather", '{"city": "Oslo", "days": 2}')]), None),
        ({"tools": [WEATHER]}, _answer(calls=[("weather", '{"city": "Oslo"}'), ("forecast", "{}")]), "unknown_tool"),
        ({"tools": [WEATHER]}, _answer(calls=[("weather", '{"city": "Oslo",')]), "invalid_arguments"),
        ({"tools": [WEATHER]}, _answer(calls=[("weather", '["Oslo"]')]), "invalid_arguments"),
        ({"tools": [WEATHER]}, _answer(calls=[("weather", '{"city": "Oslo", "days": 0}')]), "schema_mismatch"),
        (
            {"tools": [WEATHER]},
            _answer(calls=[("weather", '{"city": "Oslo", "required": ["city"]}')]),
            "unknown_argument",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "weather",
                            "parameters": {**WEATHER["function"]["parameters"], "additionalProperties": True},
                        },
                    }
                ]
            },
            _answer(calls=[("weather", '{"city": "Oslo", "units": "metric"}')]),
            None,
        ),
        ({"tools": [WEATHER]}, _answer('<tool_call>{"name": "weather"'), "malformed_tool_call"),
        ({"tools": [WEATHER], "tool_choice": "required"}, _answer("It is sunny."), "missing_tool_call"),
        ({"tools": [WEATHER], "tool_choice": "auto"}, _answer("It is sunny."), None),
        ({"response_format": {"type": "json_object"}}, _answer("not json"), "invalid_json"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object", "required": ["a"]}},
                }
            },
            _answer('{"b": 1}'),
            "schema_mismatch",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "nonsense"}}}]},
            _answer(calls=[("weather", "{}")]),
            None,
        ),  # a broken schema is the agent's, not the primary's fault
    ],
)
def test_the_answer_checks(request_body, answer, reason):
    assert judge(request_body, answer) == reason


def test_the_breaker_opens_after_its_failures_and_lets_one_trial_through_after_the_cool_down():
    now = [0.0]
    breaker = CircuitBreaker(Breaker(failures=3, cooldown_s=10), clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    breaker.succeeded()  # a success in between starts the count again
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failed()  # the trial failed: another cool-down
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


REPLICAS = [{"url": f"http://127.0.0.1:800{n}/v1", "model": "tuned"} for n in (1, 2, 3)]


def test_replicas_load_show_and_check(tmp_path):
    route = parse_routes(routes_with(primary=REPLICAS))["agent"]
    assert [e.url for e in route.primaries] == [r["url"] for r in REPLICAS] and len(route.fallbacks) == 1
    assert [role for role, _ in route.endpoints] == ["primary 1", "primary 2", "primary 3", "fallback"]
    path = tmp_path / "routes.yaml"
    path.write_text(json.dumps(routes_with(primary=REPLICAS[:2])))  # JSON is YAML
    shown = CliRunner().invoke(main, ["routes", "show", str(path)])
    assert "primary 2 replicas (tuned at http://127.0.0.1:8001/v1, tuned at http://127.0.0.1:8002/v1)" in shown.output
    as_json = json.loads(CliRunner().invoke(main, ["routes", "show", "--json", str(path)]).output)
    assert (
        as_json["agent"]["primary"] == [{**r, "api_key_env": None} for r in REPLICAS[:2]]
        and as_json["agent"]["fallback"]["model"] == "gpt-4o"
    )
    checked = CliRunner().invoke(main, ["routes", "check", str(path)])
    assert (
        checked.exit_code == 1 and "route 'agent' primary 2 http://127.0.0.1:8002/v1 is unreachable" in checked.output
    )


def test_a_call_goes_to_the_replica_with_the_fewest_under_way_whose_breaker_lets_it():
    from agent_tracer.proxy.router import Router

    route = parse_routes(routes_with(primary=REPLICAS, breaker={"failures": 1, "cooldown_s": 60}))["agent"]
    router = Router(None, None, None, None)  # type: ignore[arg-type]  # picking needs none of them
    one, two, three = route.primaries

    def pick(tried=()):
        picked = router.pick(route, route.primaries, tried)
        return picked[0] if picked else None

    assert {pick() for _ in range(6)} == {one, two, three}  # idle replicas are taken in turn
    router.outstanding[one.url] = 2
    router.outstanding[two.url] = 1
    assert pick() == three and pick(tried=[three.url]) == two
    router.breaker(route, three).failed()  # three's breaker opens
    assert pick() == two
    router.breaker(route, two).failed()
    assert pick() == one and pick(tried=[one.url]) is None  # every other one is out
    assert router.pick(route, route.primaries, breakers=False)[0] == three  # the fallback's way: any replica
