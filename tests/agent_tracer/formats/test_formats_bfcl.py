"""`traces import --format bfcl` on the REAL question and answer files of the installed bfcl-eval
package (non-live categories, and one small live one for the held-out tag)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from agent_tracer.errors import CodecError
from agent_tracer.formats.bfcl import IRRELEVANT_ANSWER, chosen_arguments, expected_calls, json_schema
from agent_tracer.formats.bfcl_turns import OTHERS, said

_spec = importlib.util.find_spec("bfcl_eval")
if _spec is None:
    pytest.skip("needs the bfcl-eval package (pip install --no-deps bfcl-eval)", allow_module_level=True)
DATA = Path(next(iter(_spec.submodule_search_locations))) / "data"


def lines(category: str, answers: bool = False) -> list[dict]:
    path = DATA / ("possible_answer" if answers else "") / f"BFCL_v4_{category}.json"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def imported(cli, db, source, *args):
    result = cli("traces", "import", source, "--format", "bfcl", "--db", db, *args)
    assert result.exit_code == 0, result.output
    return result


def test_simple_python(cli, db, open_store):
    questions = lines("simple_python")
    result = imported(cli, db, "bfcl:simple_python")
    assert f"Imported {3 * len(questions):,} records from bfcl:simple_python" in result.output
    assert f"({len(questions)} examples)" in result.output
    store = open_store()
    assert store.count_traces(tags=["bfcl", "simple_python"], outcome="success") == len(questions) == 400

    detail = store.get_trace("bfcl:simple_python_0")  # ids derive from the question id
    assert (detail.trace.name, detail.trace.source) == ("bfcl:simple_python", "import")
    assert detail.trace.task == questions[0]["question"][0][0]["content"]
    assert detail.trace.meta["id"] == "simple_python_0" and "held-out" not in detail.trace.tags
    (call,) = detail.calls
    (tool_call,) = call.response["message"]["tool_calls"]
    assert tool_call["function"]["name"] == "calculate_triangle_area"
    arguments = tool_call["function"]["arguments"]
    assert isinstance(arguments, str)  # a JSON string, as the OpenAI API sends it
    # base and height have one value each; unit's acceptable values are ["units", ""]: it may be
    # left out, so it is (the tool's default)
    assert json.loads(arguments) == {"base": 10, "height": 5}
    parameters = call.request["tools"][0]["function"]["parameters"]
    assert parameters["type"] == "object" and parameters["properties"]["base"] == {
        "type": "integer",
        "description": "The base of the triangle.",
    }
    assert call.request["messages"] == questions[0]["question"][0]
    assert (call.has_tool_calls, call.tool_names) == (True, ["calculate_triangle_area"])
    assert detail.feedback[0].outcome == "success"

    every_schema = json.dumps([c.request["tools"] for c in store.calls()])
    assert '"type": "dict"' not in every_schema and '"type": "float"' not in every_schema
    assert '"type": "tuple"' not in every_schema and '"type": "number"' in every_schema

    again = imported(cli, db, "bfcl:simple_python", "--json")
    assert json.loads(again.stdout)["written"] == 0
    assert store.count_traces() == 400 and store.stats()["feedback"] == 400


def test_parallel_multiple_answers_make_several_calls(cli, db, open_store):
    imported(cli, db, "bfcl:parallel_multiple")
    store = open_store()
    first = store.get_trace("bfcl:parallel_multiple_0").calls[0]
    calls = first.response["message"]["tool_calls"]
    names = [call["function"]["name"] for call in calls]
    assert names == ["math_toolkit.sum_of_multiples", "math_toolkit.product_of_primes"]
    assert [call["id"] for call in calls] == ["call_0", "call_1"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"lower_limit": 1, "upper_limit": 1000, "multiples": [3, 5]}
    expected = {answer["id"]: len(answer["ground_truth"]) for answer in lines("parallel_multiple", answers=True)}
    made = {store.get_trace(call.trace_id).trace.meta["id"]: len(call.tool_names) for call in store.calls()}
    assert made == expected


def test_irrelevance_answers_with_text(cli, db, open_store):
    result = imported(cli, db, "bfcl:irrelevance")
    assert "(240 examples)" in result.output
    calls = open_store().calls()
    assert len(calls) == 240
    text_answer = {"role": "assistant", "content": IRRELEVANT_ANSWER}
    assert all(not call.has_tool_calls and call.response["message"] == text_answer for call in calls)


def test_live_categories_are_held_out(cli, db, tmp_path, open_store):
    result = imported(cli, db, "bfcl:live_parallel")
    assert "tagged held-out: live_* questions are for evaluation, never for training" in result.output
    store = open_store()
    assert store.count_traces(tags=["bfcl", "live_parallel", "held-out"]) == len(lines("live_parallel")) == 16
    # a live file under another name is held out too: its question ids say what it is
    renamed = tmp_path / "questions.json"
    renamed.write_text((DATA / "BFCL_v4_live_simple.json").read_text(encoding="utf-8").splitlines()[0] + "\n")
    answers = DATA / "possible_answer" / "BFCL_v4_live_simple.json"
    summary = json.loads(imported(cli, db, renamed, "--answers", answers, "--json").stdout)
    assert (summary["category"], summary["examples"], summary["held_out"]) == ("questions", 1, 1)
    assert store.get_trace("bfcl:live_simple_0-0-0").trace.tags == ["bfcl", "questions", "held-out"]


def copy_questions(folder: Path, category: str, extra: list[str]) -> Path:
    """The first five questions of a category and `extra` lines, with the answers beside them."""
    folder.mkdir()
    path = folder / f"BFCL_v4_{category}.json"
    path.write_text("\n".join(json.dumps(item) for item in lines(category)[:5]) + "\n" + "\n".join(extra) + "\n")
    (folder / "possible_answer").mkdir()
    shutil.copy(DATA / "possible_answer" / path.name, folder / "possible_answer" / path.name)
    return path


def test_a_question_file_with_malformed_lines(cli, db, tmp_path, open_store, one_line_error):
    two_turns = json.dumps({"id": "simple_python_1", "question": [[], []], "function": []})
    unknown = json.dumps({"id": "simple_python_9999", "question": [[{"role": "user", "content": "?"}]], "function": []})
    path = copy_questions(tmp_path / "bfcl", "simple_python", ["{oops", two_turns, unknown, "[1, 2]"])
    result = cli("traces", "import", path, "--format", "bfcl", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        f"Warning: {path}:6: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        f"Warning: {path}:7: simple_python_1: the question is not one turn of messages",
        f"Warning: {path}:8: no ground truth for 'simple_python_9999' in the answer file",
        f"Warning: {path}:9: not a BFCL question (an object with an id)",
    ]
    assert "(5 examples; skipped 4 bad lines)" in result.stdout
    assert open_store().count_traces(tags=["simple_python"]) == 5

    strict = cli("traces", "import", path, "--format", "bfcl", "--strict", "--db", db)
    one_line_error(strict, f"{path}:6: not JSON")
    assert "the 15 records before it are in the store" in strict.output


def test_answers_given_or_missing(cli, db, tmp_path, one_line_error, open_store):
    path = copy_questions(tmp_path / "q", "multiple", [])
    moved = tmp_path / "truth.json"
    shutil.move(path.parent / "possible_answer" / path.name, moved)
    one_line_error(
        cli("traces", "import", path, "--format", "bfcl", "--db", db),
        f"no ground truth for BFCL multiple: {path.parent / 'possible_answer' / path.name} does not exist "
        "(give --answers PATH)",
    )
    result = imported(cli, db, path, "--answers", moved)
    assert "(5 examples)" in result.output
    assert open_store().get_trace("bfcl:multiple_0").calls[0].has_tool_calls


def test_categories_that_cannot_be_imported(cli, db, one_line_error):
    for category in ("memory", "web_search", "format_sensitivity", "live_relevance", "sql"):
        result = cli("traces", "import", f"bfcl:{category}", "--format", "bfcl", "--db", db)
        one_line_error(result, f"BFCL category {category} cannot be imported: only categories with a ground-truth call")
    result = cli("traces", "import", "bfcl:simple", "--format", "bfcl", "--db", db)
    one_line_error(result, f"no BFCL category 'simple': {DATA}/BFCL_v*_simple.json does not exist", exit_code=2)


def test_multi_turn_conversations_give_their_single_call_turns(cli, db, open_store):
    result = imported(cli, db, "bfcl:multi_turn_base")
    assert "(199 examples; skipped 535 turns that are not one call their words give)" in result.output
    store = open_store()
    assert store.count_traces(tags=["bfcl", "multi_turn_base"], outcome="success") == 199

    detail = store.get_trace("bfcl:multi_turn_base_42_turn_1")  # the conversation's second turn, alone
    turn = lines("multi_turn_base")[42]["question"][1]
    assert (
        detail.trace.task
        == turn[0]["content"]
        == (
            "Inside 'Notes2023.txt', I shall jot down some pivotal reminders: "
            "'Study diligently, practice programming, master algorithms.'"
        )
    )
    (call,) = detail.calls
    assert call.request["messages"] == turn
    (answer,) = call.response["message"]["tool_calls"]
    assert answer["function"]["name"] == "echo"
    assert json.loads(answer["function"]["arguments"]) == {
        "content": "Study diligently, practice programming, master algorithms.",
        "file_name": "Notes2023.txt",
    }

    for call in store.calls():  # every value is in the turn's words; the called tool among a few offered
        (made,) = call.response["message"]["tool_calls"]
        arguments = json.loads(made["function"]["arguments"])
        assert said(arguments.values(), call.request["messages"][0]["content"]), arguments
        offered = [tool["function"] for tool in call.request["tools"]]
        assert made["function"]["name"] in [tool["name"] for tool in offered] and 2 <= len(offered) <= OTHERS + 1
        assert all("response" not in tool and tool["parameters"]["type"] == "object" for tool in offered)
    again = imported(cli, db, "bfcl:multi_turn_base", "--json")
    assert json.loads(again.stdout)["written"] == 0


def test_which_turns_of_a_conversation_are_taken(cli, db, tmp_path, open_store):
    folder = tmp_path / "data"
    (folder / "possible_answer").mkdir(parents=True)
    (folder / "multi_turn_func_doc").mkdir()
    shutil.copy(DATA / "multi_turn_func_doc" / "gorilla_file_system.json", folder / "multi_turn_func_doc")
    asked = [
        "Go into 'docs'.",
        "Make a folder called Drafts and go into it.",
        "Sort my notes, the file is 'notes.txt'.",
        "Open the file we found.",
        "List everything, hidden files too.",
        "Now sort 'b.txt' for me.",
    ]
    conversation = {
        "id": "multi_turn_miss_func_0",
        "involved_classes": ["GorillaFileSystem"],
        "excluded_function": ["cp"],
        "missed_function": {"5": ["sort"]},
        "question": [[{"role": "user", "content": text}] for text in asked],
    }
    truth = [
        ["cd(folder='docs')"],  # taken
        ["mkdir(dir_name='Drafts')", "cd(folder='Drafts')"],  # two calls
        ["sort('notes.txt')"],  # a positional argument
        ["cat(file_name='found.txt')"],  # a value the turn does not say
        ["ls(a=True)"],  # taken: a flag is a reading of the request
        ["sort(file_name='b.txt')"],
    ]  # taken: sort is offered again from turn 5
    path = folder / "BFCL_v4_multi_turn_miss_func.json"
    path.write_text(
        json.dumps(conversation) + "\n" + json.dumps({"id": "multi_turn_miss_func_1", "question": []}) + "\n"
    )
    (folder / "possible_answer" / path.name).write_text(
        json.dumps({"id": conversation["id"], "ground_truth": truth}) + "\n"
    )

    result = cli("traces", "import", path, "--format", "bfcl", "--db", db)
    assert result.exit_code == 0, result.output
    assert "(3 examples; skipped 1 bad line; skipped 3 turns that are not one call their words give)" in result.output
    assert (
        result.stderr.strip() == f"Warning: {path}:2: no ground truth for 'multi_turn_miss_func_1' in the answer file"
    )
    store = open_store()
    taken = {
        store.get_trace(call.trace_id).trace.meta["turn"]: call.response["message"]["tool_calls"][0]["function"]
        for call in store.calls()
    }
    assert {turn: (made["name"], json.loads(made["arguments"])) for turn, made in taken.items()} == {
        0: ("cd", {"folder": "docs"}),
        4: ("ls", {"a": True}),
        5: ("sort", {"file_name": "b.txt"}),
    }
    offered = {
        turn: [
            tool["function"]["name"]
            for tool in store.get_trace(f"bfcl:multi_turn_miss_func_0_turn_{turn}").calls[0].request["tools"]
        ]
        for turn in taken
    }
    assert not any("cp" in names for names in offered.values())  # excluded from the whole conversation
    assert "sort" not in offered[0] + offered[4] and "sort" in offered[5]


def test_broken_function_docs_are_a_one_line_error(cli, db, tmp_path, one_line_error):
    folder = tmp_path / "data"
    (folder / "possible_answer").mkdir(parents=True)
    (folder / "multi_turn_func_doc").mkdir()
    path = folder / "BFCL_v4_multi_turn_base.json"
    path.write_text(
        json.dumps(
            {
                "id": "multi_turn_base_0",
                "involved_classes": ["GorillaFileSystem"],
                "question": [[{"role": "user", "content": "Go into 'docs'."}]],
            }
        )
        + "\n"
    )
    (folder / "possible_answer" / path.name).write_text(
        json.dumps({"id": "multi_turn_base_0", "ground_truth": [["cd(folder='docs')"]]}) + "\n"
    )
    docs = folder / "multi_turn_func_doc" / "gorilla_file_system.json"
    for broken, why in (
        (json.dumps({"description": "Change directory."}), "a function doc without a name"),
        ("{oops", "not JSON lines (Expecting property name"),
    ):
        docs.write_text(broken + "\n")
        one_line_error(cli("traces", "import", path, "--format", "bfcl", "--db", db), f"{docs}: {why}")


def test_a_turn_says_a_value():
    text = "Send 'Hello  World' to USR003: I bought 1,500 shares at $150.75, not 20."
    assert said(["hello world", "USR003", 1500, 150.75, 20.0, True, None, ["usr003"], {"to": "USR003"}], text)
    for missing in ("USR004", 1501, 150.7, ["USR003", "USR009"], {"to": "x"}):
        assert not said([missing], text), missing


def test_exec_categories_give_their_answers_as_python_calls(cli, db, open_store):
    # bfcl_eval keeps exec_* under unused_datasets/, each ground-truth call a line of Python
    result = cli("traces", "import", "bfcl:exec_multiple", "--format", "bfcl", "--db", db)
    assert result.exit_code == 0, result.output
    assert "(49 examples; skipped 1 bad line)" in result.stdout
    assert result.stderr.strip().endswith(
        "BFCL_v4_exec_multiple.json:1: a ground-truth call that is not "
        "name(arg=literal, …): 'calc_binomial_probability(n=20, k=5, p=1/6)' "
        "(p is computed)"
    )
    imported(cli, db, "bfcl:exec_parallel_multiple")
    store = open_store()
    assert store.count_traces(tags=["exec_parallel_multiple"]) == 38  # 40, less 500*500 and a positional argument
    calls = store.get_trace("bfcl:exec_parallel_multiple_1").calls[0].response["message"]["tool_calls"]
    assert [(call["function"]["name"], json.loads(call["function"]["arguments"])) for call in calls] == [
        ("calculate_cosine_similarity", {"vectorA": [1, 2, 3], "vectorB": [4, 5, 6]}),
        ("get_stock_price_by_stock_name", {"stock_name": "AAPL"}),
    ]
    assert expected_calls(["f(x=-1.5, names=['a'], opts={'k': None})", {"g": {"y": [1, ""]}}]) == [
        {"f": {"x": [-1.5], "names": [["a"]], "opts": [{"k": None}]}},
        {"g": {"y": [1, ""]}},
    ]
    for bad in ("f(1)", "f(**kw)", "f(x=y)", "f(x={[1]: 2})", "x + 1", "f(x="):
        with pytest.raises(CodecError, match="not name\\(arg=literal"):
            expected_calls([bad])


def test_bfcl_types_become_json_schema():
    schema = {
        "type": "dict",
        "properties": {
            "point": {"type": "tuple", "items": {"type": "float"}},
            "rows": {
                "type": "array",
                "items": {"type": "dict", "properties": {"x": {"type": "any"}, "y": {"type": "long"}}},
            },
            "meta": {"type": "HashMap", "additionalProperties": {"type": "Boolean"}, "default": {"type": "dict"}},
            "value": {"type": "any", "description": "anything"},
            # live_simple_71's metrics: "a list of these", written as the array's enum
            "metrics": {"type": "array", "items": {"type": "string"}, "enum": ["trust", "buzz"]},
            "pairs": {"type": "array", "enum": [[1, 2], [3, 4]]},  # an enum of arrays: as it is
        },
        "required": ["point"],
    }
    assert json_schema(schema) == {
        "type": "object",
        "properties": {
            "point": {"type": "array", "items": {"type": "number"}},
            "rows": {"type": "array", "items": {"type": "object", "properties": {"x": {}, "y": {"type": "integer"}}}},
            "meta": {"type": "object", "additionalProperties": {"type": "boolean"}, "default": {"type": "dict"}},
            "value": {"description": "anything"},
            "metrics": {"type": "array", "items": {"type": "string", "enum": ["trust", "buzz"]}},
            "pairs": {"type": "array", "enum": [[1, 2], [3, 4]]},
        },
        "required": ["point"],
    }


def test_the_chosen_answer():
    params = {
        "city": ["Paris", "paris"],  # the first acceptable value
        "unit": ["celsius", ""],  # "" may be left out: left to the tool's default, though a value is given
        "days": [""],  # only "": left out
        "hours": [],  # no acceptable value at all: left out
        "prefs": [{"size": ["large"], "milk": ["", "oat"], "note": [""]}],  # nested: chosen the same way
        "rows": [[{"field": ["age"]}, {"field": ["job", "work"]}]],  # a list of nested dicts
        "pair": [[3, 5]],
        "flag": [False],  # a falsy value is still a value
    }
    assert chosen_arguments(params) == {
        "city": "Paris",
        "prefs": {"size": "large"},
        "rows": [{"field": "age"}, {"field": "job"}],
        "pair": [3, 5],
        "flag": False,
    }
    # a parameter the function requires keeps its value even where BFCL's answer allows ""
    assert chosen_arguments({"speed": [0.0, ""], "unit": ["", "m/s"]}, required=["speed"]) == {"speed": 0.0}
