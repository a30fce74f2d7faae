"""The AST scorer against BFCL's own possible_answer files, and its rules one by one."""

from __future__ import annotations

import copy
import json

import pytest

from agent_tracer.formats.bfcl import chosen_arguments, required_parameters
from trainer.evaluate.ast_match import match_calls
from trainer.evaluate.cases import Case, load_cases
from trainer.evaluate.grade import Reply, grade

NON_LIVE = ["simple_python", "multiple", "parallel", "parallel_multiple"]


def answer_of(case: Case) -> list[tuple[str, dict]]:
    """The ground truth as a model would give it, as the BFCL import writes it (what may be left out
    is), and leaving out what the function does not define (BFCL's files list two such parameters as optional, in
    parallel_multiple_12 and _26: BFCL's own checker rejects them when given)."""
    calls = []
    for call in case.expected_calls:
        for name, allowed in call.items():
            defined = case.functions[name]["parameters"].get("properties", {})
            arguments = chosen_arguments(allowed, required_parameters(case.functions.values(), name))
            calls.append((name, {k: v for k, v in arguments.items() if k in defined or "" not in allowed[k]}))
    return calls


def score(case: Case, calls: list[tuple[str, dict]]) -> bool:
    return grade(case, Reply.from_message(None, [(name, json.dumps(args)) for name, args in calls])).success


@pytest.fixture(scope="module", params=NON_LIVE)
def category(request):
    return request.param, load_cases(f"bfcl:{request.param}")


def test_ground_truth_scores_right_and_perturbations_wrong(category):
    name, cases = category
    assert len(cases) == (400 if name == "simple_python" else 200)
    wrong_function = wrong_type = missing = extra = dropped = 0
    for case in cases:
        calls = answer_of(case)
        assert score(case, calls), case.id
        # Another function offered (or a name nobody offered).
        other = [f for f in case.functions if f != calls[0][0]]
        assert not score(case, [(other[0] if other else calls[0][0] + "_v2", calls[0][1]), *calls[1:]]), case.id
        wrong_function += 1
        # A value of the wrong type: a number as a string, a string as a list.
        bent = copy.deepcopy(calls)
        if bent[0][1]:
            key = sorted(bent[0][1])[0]
            value = bent[0][1][key]
            bent[0][1][key] = [value] if isinstance(value, str) else str(value)
            assert not score(case, bent), case.id
            wrong_type += 1
        # A required parameter left out.
        required = [p for p in case.functions[calls[0][0]]["parameters"].get("required", []) if p in calls[0][1]]
        if required:
            bent = copy.deepcopy(calls)
            del bent[0][1][required[0]]
            assert not score(case, bent), case.id
            missing += 1
        assert not score(case, [*calls, calls[0]]), case.id
        extra += 1
        if len(calls) > 1:
            assert not score(case, calls[1:]), case.id
            assert score(case, list(reversed(calls))), case.id  # parallel calls match in any order
            dropped += 1
    assert wrong_function == wrong_type == extra == len(cases)
    assert missing > 0.9 * len(cases)
    assert (dropped == len(cases)) == name.startswith("parallel")


def test_irrelevance_expects_no_call():
    cases = load_cases("bfcl:irrelevance")
    assert len(cases) == 240 and all(case.expected_calls == [] for case in cases)
    case = cases[0]
    assert score(case, [])
    name = next(iter(case.functions))
    assert not score(case, [(name, {})])


FUNCTIONS = {
    "area": {
        "name": "area",
        "parameters": {
            "type": "object",
            "properties": {
                "width": {"type": "number"},
                "count": {"type": "integer"},
                "unit": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "flag": {"type": "boolean"},
                "options": {"type": "object"},
            },
            "required": ["width"],
        },
    },
}


def check(arguments: dict, allowed: dict, name: str = "area") -> bool:
    return match_calls([{"name": name, "arguments": arguments}], [{"area": allowed}], FUNCTIONS).valid


def test_types():
    assert check({"width": 3}, {"width": [3.0]})  # int → float promotion
    assert check({"width": 3.0}, {"width": [3]})
    assert not check({"width": 3, "count": 2.0}, {"width": [3.0], "count": [2]})  # no float for an integer
    assert not check({"width": 3, "count": True}, {"width": [3.0], "count": [1]})  # nor a boolean
    assert not check({"width": "3"}, {"width": [3.0]})
    assert not check({"width": 3, "tags": ["a", 1]}, {"width": [3], "tags": [["a", "1"]]})  # array items
    assert check({"width": 3, "tags": ["a", 1]}, {"width": [3], "tags": [["a", 1]]})  # BFCL: the answer's item types


def test_values_optional_and_unexpected():
    assert check({"width": 1, "unit": "New York, NY"}, {"width": [1], "unit": ["new york ny"]})  # BFCL's standardising
    assert not check({"width": 1, "unit": "Boston"}, {"width": [1], "unit": ["new york ny"]})
    assert check({"width": 1}, {"width": [1], "unit": ["cm", ""]})  # "" = may be left out
    assert not check({"width": 1}, {"width": [1], "unit": ["cm"]})
    assert not check({"width": 1, "flag": True}, {"width": [1]})  # not in the ground truth
    assert not check({"count": 1}, {"count": [1]})  # required width missing
    assert check({"width": 1, "tags": ["A b", "c"]}, {"width": [1], "tags": [["ab", "C"]]})
    assert check({"width": 1, "options": {"k": "V"}}, {"width": [1], "options": [{"k": ["v"], "x": ["", 1]}]})
    assert not check({"width": 1, "options": {"k": "V", "z": 1}}, {"width": [1], "options": [{"k": ["v"]}]})


def test_parallel_calls_match_one_to_one_in_any_order():
    expected = [{"area": {"width": [1, 2]}}, {"area": {"width": [1]}}]
    # Greedy matching would give the first expected call the output width=1 and fail the second.
    outputs = [{"name": "area", "arguments": {"width": 1}}, {"name": "area", "arguments": {"width": 2}}]
    assert match_calls(outputs, expected, FUNCTIONS).valid
    assert match_calls(list(reversed(outputs)), expected, FUNCTIONS).valid
    twice = [{"name": "area", "arguments": {"width": 1}}] * 2
    verdict = match_calls(twice, [{"area": {"width": [2]}}, {"area": {"width": [1]}}], FUNCTIONS)
    assert not verdict.valid and verdict.kind == "no_match"
    assert match_calls(outputs[:1], expected, FUNCTIONS).kind == "wrong_count"
