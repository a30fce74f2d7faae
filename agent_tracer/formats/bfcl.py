"""BFCL (Berkeley Function Calling Leaderboard) questions with their ground truth, as successful runs.

A question file (`BFCL_v4_<category>.json`, as the `bfcl-eval` package installs it under
`bfcl_eval/data/`) holds one JSON object a line: `id`, `question` (a list of turns, each a list
of chat messages) and `function` (the function docs offered). Its ground truth is the line with
the same id in `possible_answer/<same name>` beside it (or `--answers PATH`):
`{"id", "ground_truth": [{"func_name": {"param": [acceptable values…]}}]}`. FILE may also be
`bfcl:<category>`, the installed package's file, so nobody has to look up site-packages. The
exec_* categories, which bfcl_eval keeps among its unused data sets, write each ground-truth call
as Python (`"f(n=20, p=0.6)"`): read as one acceptable value per argument (`expected_calls`).

How an example is made:
- **Messages**: the question's single turn. Single-turn categories are imported whole (simple_*,
  multiple, parallel, parallel_multiple, irrelevance, exec_*, and the live_* ones of those
  shapes); multi_turn_* turn by turn, each turn that is one call its own words give
  (`agent_tracer.formats.bfcl_turns`); memory, web_search, format_sensitivity, rest, sql and
  chatable are refused, and so is live_relevance, whose ground truth says only "some call".
- **Tools**: each function doc as `{"type": "function", "function": …}`, its parameter schema made
  JSON schema, recursively: BFCL's "dict" → "object", "float" → "number", "tuple" → "array", the
  Java / JavaScript names (String, HashMap, long, …) as bfcl_eval maps them, and "any" (or a type
  JSON schema has no name for) dropped, so the schema accepts any value; an array's enum of
  scalars is its items' enum. Names are kept as BFCL spells them (dots included): the ground
  truth and BFCL's checker use those names.
- **Answer**: one assistant message with a tool call per ground-truth call, in order (parallel and
  multiple answers are several calls in one message). A parameter that may be left out ("" among
  its acceptable values, and the function does not require it: BFCL's checker tests that first) is
  left out: the answer gives what the question asks for and leaves the
  rest to the tool's defaults, which is what a model should learn (one taught to fill every
  optional parameter invents values the user never gave). Any other parameter takes its first
  acceptable value, recursively into dict values (BFCL gives those as dicts of acceptable-value
  lists too).
- **irrelevance** categories have no answer file: the right answer is not to call any function, so
  the assistant answers with `IRRELEVANT_ANSWER`, a short text saying so.
- **Held out**: live_* categories are BFCL's user-contributed questions, kept for evaluation: their
  traces are tagged `held-out` (besides "bfcl" and the category) and must never be trained on.

Ids come from the question's id (`bfcl:simple_python_0`): importing again adds nothing, and
`agent-tracer traces show bfcl:simple_python_0` finds the run.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_tracer.errors import CodecError, ConfigError
from agent_tracer.formats.examples import HELD_OUT_TAG, Example, function_tool, tool_call
from agent_tracer.formats.imports import ExampleReader, ImportOptions, existing_file

if TYPE_CHECKING:
    from agent_tracer.formats.bfcl_turns import TurnReader

FORMAT = "bfcl"
SHORTHAND = "bfcl:"
IRRELEVANT_ANSWER = "None of the available functions fits this request, so I will not call any of them."
"""The answer to an irrelevance question: BFCL counts any function call there as wrong."""

TURNS = "multi_turn"
"""Conversations: imported turn by turn, where a turn is one call its words give (`bfcl_turns`)."""
REFUSED = ("memory", "web_search", "format_sensitivity", "live_relevance", "rest", "sql", "chatable")
"""Category prefixes that cannot be imported as one question and one answer."""

UNUSED = Path("unused_datasets") / "question"
"""Where bfcl_eval keeps the categories its leaderboard no longer scores, such as exec_simple: found
by `bfcl:<category>` too, their answers in the `possible_answer` folder beside this one."""

TYPES = {
    "dict": "object",
    "object": "object",
    "hashmap": "object",
    "hashtable": "object",
    "float": "number",
    "double": "number",
    "number": "number",
    "integer": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "bigint": "integer",
    "tuple": "array",
    "list": "array",
    "array": "array",
    "arraylist": "array",
    "queue": "array",
    "stack": "array",
    "string": "string",
    "char": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "null": "null",
}
"""BFCL type name (lower-cased) → JSON schema type; any other name (such as "any") is dropped."""

_FILE_NAME = re.compile(r"^BFCL_v(?P<version>\d+)_(?P<category>.+)\.json$")


def open_bfcl(file: str, options: ImportOptions) -> BFCLReader | TurnReader:
    """A reader of a BFCL question file (or `bfcl:<category>`) and its ground truth."""
    path = question_file(file)
    match = _FILE_NAME.match(path.name)
    category = match.group("category") if match else path.stem
    if category.startswith(TURNS):
        from agent_tracer.formats.bfcl_turns import TurnReader  # it builds on this module's helpers

        return TurnReader(path, options, category, _answers(path, options.answers, category))
    if category.startswith(REFUSED):
        raise ConfigError(
            f"BFCL category {category} cannot be imported: only categories with a ground-truth call or "
            "irrelevance (simple_*, multiple, parallel, parallel_multiple, irrelevance, exec_*, live_* of those; "
            "multi_turn_*, turn by turn)"
        )
    answers = None if category.endswith("irrelevance") else _answers(path, options.answers, category)
    return BFCLReader(path, options, category, answers)


class BFCLReader(ExampleReader):
    """The questions of one category with their answers (None: irrelevance, answered in text);
    `notes()` also says the category and how many examples were tagged held-out."""

    def __init__(
        self, path: Path, options: ImportOptions, category: str, answers: dict[str, tuple[str, Any]] | None
    ) -> None:
        super().__init__(path, self._example, options)
        self.category = category
        self.answers = answers
        self.held_out = 0

    def _example(self, item: Any, number: int, line: str) -> Example:
        question_id, messages, functions = _question(item)
        raw_answer = None
        if self.answers is None:
            answer: dict[str, Any] = {"role": "assistant", "content": IRRELEVANT_ANSWER}
        elif question_id in self.answers:
            raw_answer, truth = self.answers[question_id]
            answer = ground_truth_message(truth, functions)
        else:
            raise CodecError(f"no ground truth for {question_id!r} in the answer file")
        tags = [FORMAT, self.category]
        if self.category.startswith("live_") or question_id.startswith("live_"):  # a renamed file too
            tags.append(HELD_OUT_TAG)
            self.held_out += 1
        return Example(
            key=f"{FORMAT}:{question_id}",
            messages=[*messages, answer],
            tools=[bfcl_tool(function) for function in functions],
            name=f"{FORMAT}:{self.category}",
            tags=tags,
            meta={
                "format": FORMAT,
                "id": question_id,
                "category": self.category,
                "file": self.path.name,
                "line": number,
            },
            raw_request=line.strip(),
            raw_response=raw_answer,
        )

    def notes(self) -> dict[str, Any]:
        return {**super().notes(), "category": self.category, "held_out": self.held_out}

    def remarks(self) -> list[str]:
        if not self.held_out:
            return super().remarks()
        return [*super().remarks(), f"tagged {HELD_OUT_TAG}: live_* questions are for evaluation, never for training"]


def question_file(file: str) -> Path:
    """FILE as a path: itself, or for `bfcl:<category>` the installed bfcl_eval's question file."""
    if not file.startswith(SHORTHAND):
        return existing_file(file)
    category = file[len(SHORTHAND) :]
    spec = importlib.util.find_spec("bfcl_eval")  # located, not imported: its imports need its extras
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{file} needs the bfcl-eval package (pip install bfcl-eval), or give the file's path")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = {}  # version → file
    for candidate in [*data.glob("BFCL_v*.json"), *(data / UNUSED).glob("BFCL_v*.json")]:
        match = _FILE_NAME.match(candidate.name)
        if match and match["category"] == category:
            found[int(match["version"])] = candidate
    if not found:
        raise FileNotFoundError(f"no BFCL category {category!r}: {data}/BFCL_v*_{category}.json does not exist")
    return found[max(found)]


def _answers(path: Path, given: str | None, category: str) -> dict[str, tuple[str, Any]]:
    """Question id → (its answer line, its ground truth), from the answer file."""
    beside = [folder / "possible_answer" / path.name for folder in (path.parent, path.parent.parent)]
    answer_path = Path(given) if given else next((file for file in beside if file.is_file()), beside[0])
    if not answer_path.is_file():
        raise ConfigError(f"no ground truth for BFCL {category}: {answer_path} does not exist (give --answers PATH)")
    answers: dict[str, tuple[str, Any]] = {}
    with open(answer_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                answers[item["id"]] = (line.strip(), item["ground_truth"])
            except (ValueError, TypeError, KeyError):
                raise ConfigError(f"{answer_path}:{number}: not a BFCL answer (id, ground_truth)") from None
    return answers


def _question(item: Any) -> tuple[str, list[dict[str, Any]], list[Any]]:
    """A question line's id, messages and function docs."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise CodecError("not a BFCL question (an object with an id)")
    turns = item.get("question")
    if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], list) or not turns[0]:
        raise CodecError(f"{item['id']}: the question is not one turn of messages")
    functions = item.get("function")
    functions = [functions] if isinstance(functions, dict) else functions
    if not isinstance(functions, list):
        raise CodecError(f"{item['id']}: no function docs")
    return item["id"], list(turns[0]), functions


def bfcl_tool(function: Any) -> dict[str, Any]:
    """A BFCL function doc as an OpenAI tool whose parameters are JSON schema."""
    tool = function_tool(function)["function"]
    parameters = json_schema(tool.get("parameters") or {"type": "dict", "properties": {}})
    return {"type": "function", "function": {**tool, "parameters": parameters}}


def json_schema(schema: Any) -> Any:
    """A BFCL parameter schema as JSON schema: type names mapped (see `TYPES`), recursively into
    properties, items and the other places a schema holds schemas; everything else as it is."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            names = value if isinstance(value, list) else [value]
            mapped = [TYPES.get(name.lower()) if isinstance(name, str) else None for name in names]
            if all(mapped):
                out["type"] = mapped if isinstance(value, list) else mapped[0]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [json_schema(sub) for sub in value]
        else:
            out[key] = value
    return _item_enum(out)


def _item_enum(schema: dict[str, Any]) -> dict[str, Any]:
    """An array whose `enum` lists scalars, as some BFCL docs write "a list of these strings": the
    enum moved onto the items, where it means that. Left on the array, no value could satisfy it, and
    a guided call to the tool could not be compiled."""
    enum = schema.get("enum")
    if schema.get("type") != "array" or not isinstance(enum, list) or not enum:
        return schema
    if any(isinstance(member, (list, dict)) for member in enum):
        return schema
    items = schema.get("items")
    schema = {key: value for key, value in schema.items() if key != "enum"}
    schema["items"] = {**(items if isinstance(items, dict) else {}), "enum": enum}
    return schema


def ground_truth_message(truth: Any, functions: Collection[Any] = ()) -> dict[str, Any]:
    """The assistant message that makes the ground-truth calls, each with its chosen arguments
    (`functions`, the docs offered, say which parameters each requires)."""
    if not isinstance(truth, list) or not truth:
        raise CodecError("the ground truth holds no call")
    calls = []
    for number, call in enumerate(expected_calls(truth)):
        ((name, params),) = call.items()
        calls.append(tool_call(f"call_{number}", name, chosen_arguments(params, required_parameters(functions, name))))
    return {"role": "assistant", "content": None, "tool_calls": calls}


def expected_calls(truth: Any) -> list[dict[str, Any]]:
    """A ground truth in BFCL's possible-answer form, `[{"func_name": {"param": [values…]}}]`; the
    exec categories write each call as Python instead (`f(n=20, p=0.6)`), read here as the one
    acceptable value of each argument. A call that is neither raises `CodecError`."""
    calls = []
    for call in truth if isinstance(truth, list) else [truth]:
        call = python_call(call) if isinstance(call, str) else call
        if not isinstance(call, dict) or len(call) != 1:
            raise CodecError('a ground-truth call that is not {"func_name": {…}}')
        ((name, params),) = call.items()
        if not isinstance(params, dict):
            raise CodecError(f"the ground truth of {name!r} has no parameters object")
        calls.append(call)
    return calls


def python_call(text: str) -> dict[str, Any]:
    """`name(arg=literal, …)` as `{"name": {"arg": [literal]}}`; positional arguments or values that
    must be computed (`p=1/6`) are a `CodecError`: which parameter, or which value, is not said."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not isinstance(node, ast.Call) or node.args or any(keyword.arg is None for keyword in node.keywords):
        raise CodecError(f"a ground-truth call that is not name(arg=literal, …): {text[:80]!r}")
    arguments = {}
    for keyword in node.keywords:
        try:
            arguments[keyword.arg] = [ast.literal_eval(keyword.value)]
        except (ValueError, TypeError, SyntaxError):  # what literal_eval raises for a non-literal
            raise CodecError(
                f"a ground-truth call that is not name(arg=literal, …): {text[:80]!r} ({keyword.arg} is computed)"
            ) from None
    return {ast.unparse(node.func): arguments}


def chosen_arguments(params: dict[str, Any], required: Collection[str] = ()) -> dict[str, Any]:
    """Each parameter's first acceptable value that is not ""; left out when "" is acceptable (it
    may be left out) and it is not `required`, or when it has no such value at all."""
    chosen = {}
    for name, values in params.items():
        options = values if isinstance(values, list) else [values]  # not a list: the value itself
        given = [option for option in options if option != ""]
        if given and (len(given) == len(options) or name in required):
            chosen[name] = _resolved(given[0])
    return chosen


def required_parameters(functions: Iterable[Any], name: str) -> list[str]:
    """The parameters the function doc called `name` requires ([] when there is none such)."""
    for function in functions:
        if isinstance(function, dict) and function.get("name") == name:
            required = (function.get("parameters") or {}).get("required")
            return [param for param in required if isinstance(param, str)] if isinstance(required, list) else []
    return []


def _resolved(value: Any) -> Any:
    """A chosen value, with nested dicts (also inside a list) resolved like the parameters: BFCL
    gives a dict's acceptable values as a dict of acceptable-value lists, as its checker reads them."""
    if isinstance(value, dict):
        return chosen_arguments(value)
    if isinstance(value, list):
        return [_resolved(item) if isinstance(item, dict) else item for item in value]
    return value
