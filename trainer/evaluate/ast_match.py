"""Tool calls against expected calls, by BFCL's AST rules (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`).

An expected call is BFCL's possible-answer form, `{"func_name": {"param": [acceptable values…]}}`:
a parameter may take any value in its list, and "" in the list means it may be left out. A model's
call `{"name": …, "arguments": {…}}` matches one when, in BFCL's order of checks:

1. the names are equal;
2. every parameter the function's schema `required`s is there;
3. every parameter given is in the schema and in the expected call (an optional parameter the
   ground truth does not mention is wrong, as in BFCL);
4. each value has the schema's type: `number` takes an int too (Python's int → float promotion),
   `integer` does not take a float nor `boolean` an int; array items are checked one level deep;
   a value (or item) of the type of the acceptable values is taken where those differ from the
   schema (BFCL's "variable" case, such as a name passed for an object);
5. each value is acceptable: strings compared with spaces and `,./-_*^` removed, lower-cased and
   `'` as `"` (BFCL's `standardize_string`), also inside lists and dicts; a dict against each
   acceptable dict of acceptable-value lists (its keys may be left out where "" is acceptable);
   a list of dicts index by index;
6. every expected parameter not given has "" among its acceptable values.

Several calls (parallel, parallel_multiple) must match the expected calls one to one, in any order:
the count must be equal and a perfect matching must exist. BFCL matches greedily (each expected
call takes the first output that fits); a full matching accepts every answer greedy accepts and
the rare ones greedy misses because an earlier expected call took the output a later one needed.
An empty expected list means no call at all is right (BFCL's irrelevance).

Types are JSON schema's: `agent_tracer.formats.bfcl` has already mapped BFCL's names ("dict",
"float", "tuple", Java's and JavaScript's) onto them, and dropped "any", which checks no type.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

ExpectedCall = dict[str, dict[str, list[Any]]]
"""`{"func_name": {"param": [acceptable values…]}}`: one call, BFCL's possible-answer form."""

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}
OPTIONAL = ""
"""An acceptable value that means "may be left out"."""

_PUNCTUATION = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Verdict:
    """Whether calls match; when not, the first reason found and its kind (for counting)."""

    valid: bool
    error: str | None = None
    kind: str | None = None
    """wrong_count, wrong_name, missing_required, unexpected_param, type, value, missing_optional,
    no_match (several calls without a one-to-one match), unknown_function, malformed."""


OK = Verdict(True)


def call_names(expected: list[ExpectedCall]) -> list[str]:
    return [name for call in expected for name in call]


def match_calls(
    calls: list[dict[str, Any]], expected: list[ExpectedCall], functions: dict[str, dict[str, Any]]
) -> Verdict:
    """Do `calls` (`{"name", "arguments"}` each) make exactly the `expected` calls, in any order?
    `functions` maps a function name to its spec (`{"name", "parameters": JSON schema}`)."""
    if len(calls) != len(expected):
        return Verdict(False, f"{len(calls)} calls where {len(expected)} were expected", "wrong_count")
    if len(calls) == 1:
        return match_call(calls[0], expected[0], functions)
    verdicts = [[match_call(call, want, functions) for call in calls] for want in expected]
    taken: dict[int, int] = {}  # call index → expected index

    def assign(want: int, seen: set[int]) -> bool:  # Kuhn's augmenting path
        for index, verdict in enumerate(verdicts[want]):
            if verdict.valid and index not in seen:
                seen.add(index)
                if index not in taken or assign(taken[index], seen):
                    taken[index] = want
                    return True
        return False

    for want in range(len(expected)):
        if not assign(want, set()):
            name = next(iter(expected[want]))
            same = [v for call, v in zip(calls, verdicts[want]) if call.get("name") == name]
            why = f": {same[0].error}" if same else ""
            return Verdict(False, f"no call matches the expected {name}(…){why}", "no_match")
    return OK


def match_call(call: dict[str, Any], expected: ExpectedCall, functions: dict[str, dict[str, Any]]) -> Verdict:
    """One call against one expected call (the checks 1-6 of the module docstring)."""
    ((name, allowed),) = expected.items()
    if call.get("name") != name:
        return Verdict(False, f"called {call.get('name')!r} instead of {name!r}", "wrong_name")
    spec = functions.get(name)
    if spec is None:
        return Verdict(False, f"{name!r} is not among the tools offered", "unknown_function")
    schema = spec.get("parameters") or {}
    properties = schema.get("properties") or {}
    arguments = call.get("arguments") or {}
    if not isinstance(arguments, dict):
        return Verdict(False, f"{name}: the arguments are not a JSON object", "malformed")
    for param in schema.get("required") or ():
        if param not in arguments:
            return Verdict(False, f"{name}: missing required parameter {param!r}", "missing_required")
    for param, value in arguments.items():
        if param not in properties or param not in allowed:
            return Verdict(False, f"{name}: unexpected parameter {param!r}", "unexpected_param")
        verdict = match_value(f"{name}.{param}", value, allowed[param], properties[param])
        if not verdict.valid:
            return verdict
    for param, values in allowed.items():
        if param not in arguments and OPTIONAL not in values:
            return Verdict(False, f"{name}: parameter {param!r} left out, and it has no default", "missing_optional")
    return OK


def match_value(where: str, value: Any, allowed: list[Any], schema: dict[str, Any]) -> Verdict:
    """A value against its acceptable values and its schema (checks 4-5)."""
    kind = _schema_type(schema)
    if kind is float and type(value) is int:
        value = float(value)
    answer_type = next((type(option) for option in allowed if option != OPTIONAL), None)
    variable = answer_type is not None and kind is not None and answer_type is not kind
    if kind is not None and type(value) is not kind:
        if not (answer_type is not None and type(value) is answer_type):
            return Verdict(False, f"{where}: {value!r} is not of type {schema.get('type')}", "type")
        variable = True
    elif kind is list and not variable:
        item_kind = _schema_type(schema.get("items") or {})
        answer_items = {type(item) for option in allowed if isinstance(option, list) for item in option}
        for item in value:
            if item_kind is None or type(item) is item_kind or type(item) in answer_items:
                continue
            if not (item_kind is float and type(item) is int):
                return Verdict(False, f"{where}: item {item!r} is not of type {schema['items'].get('type')}", "type")
    if not variable:
        if kind is dict or (kind is None and isinstance(value, dict)):
            return _dict_verdict(where, value, allowed)
        if kind is list and _schema_type(schema.get("items") or {}) is dict:
            return _list_of_dicts_verdict(where, value, allowed)
        if isinstance(value, (str, list)):
            if standardize(value) in [standardize(option) for option in allowed if type(option) is type(value)]:
                return OK
            return Verdict(False, f"{where}: {value!r} is not one of {allowed!r}", "value")
    if value in allowed:
        return OK
    return Verdict(False, f"{where}: {value!r} is not one of {allowed!r}", "value")


def _dict_verdict(where: str, value: dict[str, Any], allowed: list[Any]) -> Verdict:
    """A dict against each acceptable dict (of acceptable-value lists); the first one it fits."""
    failure = Verdict(False, f"{where}: {value!r} is not one of {allowed!r}", "value")
    for option in allowed:
        if not isinstance(option, dict):
            if option != OPTIONAL and value == option:
                return OK
            continue
        failure = _fits(where, value, option)
        if failure.valid:
            return OK
    return failure


def _fits(where: str, value: dict[str, Any], option: dict[str, Any]) -> Verdict:
    for key, item in value.items():
        if key not in option:
            return Verdict(False, f"{where}: unexpected key {key!r}", "value")
        options = option[key] if isinstance(option[key], list) else [option[key]]
        if standardize(item) not in [standardize(choice) for choice in options]:
            return Verdict(False, f"{where}[{key!r}]: {item!r} is not one of {options!r}", "value")
    for key, options in option.items():
        if key not in value and OPTIONAL not in (options if isinstance(options, list) else [options]):
            return Verdict(False, f"{where}: key {key!r} left out", "value")
    return OK


def _list_of_dicts_verdict(where: str, value: list[Any], allowed: list[Any]) -> Verdict:
    failure = Verdict(False, f"{where}: {value!r} is not one of {allowed!r}", "value")
    for option in allowed:
        if not isinstance(option, list):
            continue
        if len(option) != len(value):
            failure = Verdict(False, f"{where}: {len(value)} items where {len(option)} were expected", "value")
            continue
        verdicts = [
            _dict_verdict(f"{where}[{i}]", item, [want])
            if isinstance(item, dict)
            else Verdict(item == want, f"{where}[{i}]: {item!r} is not {want!r}", "value")
            for i, (item, want) in enumerate(zip(value, option))
        ]
        failure = next((verdict for verdict in verdicts if not verdict.valid), OK)
        if failure.valid:
            return OK
    return failure


def _schema_type(schema: dict[str, Any]) -> type | None:
    """The Python type a JSON schema names (None: any, or a list of types, which are not checked)."""
    name = schema.get("type") if isinstance(schema, dict) else None
    return PYTHON_TYPES.get(name) if isinstance(name, str) else None


def standardize(value: Any) -> Any:
    """BFCL's `standardize_string`, applied to a string or to each string in a list."""
    if isinstance(value, str):
        return _PUNCTUATION.sub("", value).lower().replace("'", '"')
    if isinstance(value, list):
        return [standardize(item) if isinstance(item, str) else item for item in value]
    return value


def same_tools(calls: list[dict[str, Any]], expected: list[ExpectedCall]) -> bool:
    """Tool selection: the functions called, as a multiset, are the ones expected."""
    return Counter(call.get("name") for call in calls) == Counter(call_names(expected))
