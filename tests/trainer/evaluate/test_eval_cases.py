"""Cases from the store's held-out traces: a dataset build's eval split, and imported BFCL live_* questions."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

from agent_tracer.formats.bfcl import open_bfcl
from agent_tracer.formats.examples import Example
from agent_tracer.formats.imports import ImportOptions
from agent_tracer.store import TraceStore
from trainer.evaluate.cases import load_cases
from trainer.evaluate.grade import Reply, grade

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}
NOW = datetime(2025, 3, 1)


def example(key: str, answer: dict) -> Example:
    return Example(key=key, messages=[{"role": "user", "content": f"where is {key}?"}, answer], tools=[TOOL])


def test_eval_split_from_the_manifest(tmp_path):
    called = example(
        "A-17",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'},
                }
            ],
        },
    )
    answered = example("B-42", {"role": "assistant", "content": "I cannot look that up."})
    trained = example("C-1", {"role": "assistant", "content": "no"})
    warnings: list[str] = []
    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        store.write([record for item in (called, answered, trained) for record in item.records(NOW)])
        manifest = tmp_path / "sft.manifest.json"
        manifest.write_text(json.dumps({"eval_traces": [called.trace_id, answered.trace_id, "f" * 32]}))
        cases = load_cases(store=store, split="eval", manifest=manifest, warn=warnings.append)
    assert [case.expected_calls for case in cases] == [[{"lookup_order": {"order_id": ["A-17"]}}], []]
    assert cases[1].reference == "I cannot look that up." and cases[0].messages[-1]["content"] == "where is A-17?"
    assert warnings == [f"{manifest}: held-out trace {'f' * 32} is not in the store"]
    assert grade(cases[0], Reply.from_message(None, [("lookup_order", '{"order_id": "a-17"}')])).success
    assert not grade(cases[1], Reply.from_message(None, [("lookup_order", '{"order_id": "B-42"}')])).success


def test_held_out_bfcl_keeps_every_acceptable_value(tmp_path):
    reader = open_bfcl("bfcl:live_simple", ImportOptions())
    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        store.write(list(itertools.islice(reader, 5 * 3)))  # trace, call and feedback per question
        cases = load_cases(store=store, split="held-out")
    truth = {case.id: case.expected_calls for case in load_cases("bfcl:live_simple")}
    assert len(cases) == 5
    for case in cases:
        question = case.source.removeprefix("store:")
        bfcl_id = next(key for key in truth if question == Example(f"bfcl:{key}", []).trace_id)
        assert case.expected_calls == truth[bfcl_id]


def test_malformed_lines_are_named_and_skipped(tmp_path):
    path = tmp_path / "cases.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}], "expected": {"tool_calls": []}}
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                "[1, 2]",
                json.dumps({**good, "expected": {"tool_calls": [{}]}}),
                "",
                json.dumps({**good, "id": "same"}),
                json.dumps({**good, "id": "same"}),
            ]
        )
    )
    warnings: list[str] = []
    cases = load_cases(str(path), warn=warnings.append)
    assert [case.id for case in cases] == ["cases.jsonl:1", "same", "same~2"]
    assert warnings == [f"{path}:2: not a JSON object but list", f"{path}:3: an expected tool call without a name"]


def test_exec_answers_written_as_python_are_graded_as_possible_answers(tmp_path):
    reader = open_bfcl("bfcl:exec_parallel_multiple", ImportOptions())
    held = [Example(f"bfcl:exec_parallel_multiple_{number}", []).trace_id for number in range(3)]
    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        store.write(list(itertools.islice(reader, 3 * 3)))
        manifest = tmp_path / "sft.manifest.json"  # as if a dataset build had held these three out
        manifest.write_text(json.dumps({"eval_traces": held}))
        cases = load_cases(store=store, split="eval", manifest=manifest)
    assert cases[1].expected_calls == [
        {"calculate_cosine_similarity": {"vectorA": [[1, 2, 3]], "vectorB": [[4, 5, 6]]}},
        {"get_stock_price_by_stock_name": {"stock_name": ["AAPL"]}},
    ]
    assert cases[1].expected_calls == load_cases("bfcl:exec_parallel_multiple")[1].expected_calls
    right = [
        ("get_stock_price_by_stock_name", '{"stock_name": "aapl"}'),
        ("calculate_cosine_similarity", '{"vectorA": [1, 2, 3], "vectorB": [4, 5, 6]}'),
    ]
    assert grade(cases[1], Reply.from_message(None, right)).success
    assert not grade(cases[1], Reply.from_message(None, right[:1])).success


def test_multi_turn_turns_are_cases_from_the_file_and_from_the_store(tmp_path):
    from_file = {case.id: case for case in load_cases("bfcl:multi_turn_base")}
    assert len(from_file) == 199  # each turn that is one call its words give
    case = from_file["multi_turn_base_42_turn_1"]
    assert case.messages[-1]["content"].startswith("Inside 'Notes2023.txt', I shall jot down")
    assert case.expected_calls == [
        {
            "echo": {
                "content": ["Study diligently, practice programming, master algorithms."],
                "file_name": ["Notes2023.txt"],
            }
        }
    ]

    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        store.write(list(open_bfcl("bfcl:multi_turn_base", ImportOptions())))
        manifest = tmp_path / "sft.manifest.json"  # as if a dataset build had held every turn out
        manifest.write_text(json.dumps({"eval_traces": [Example(f"bfcl:{key}", []).trace_id for key in from_file]}))
        warnings: list[str] = []
        held = load_cases(store=store, split="eval", manifest=manifest, warn=warnings.append)
    assert warnings == [] and len(held) == 199
    assert sorted(str(c.expected_calls) for c in held) == sorted(str(c.expected_calls) for c in from_file.values())
    right = [
        (
            "echo",
            json.dumps(
                {"file_name": "Notes2023.txt", "content": "Study diligently, practice programming, master algorithms."}
            ),
        )
    ]
    assert grade(case, Reply.from_message(None, right)).success
    assert not grade(
        case, Reply.from_message(None, [("echo", '{"file_name": "Notes2023.txt", "content": "Study"}')])
    ).success
