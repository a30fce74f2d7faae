"""Eval cases: what to send an endpoint, and what a right answer is. From JSONL, BFCL or the store.

A case file holds one JSON object a line:

    {"id": "weather-1",                                   optional; default FILE:LINE
     "messages": [{"role": "user", "content": "Weather in Paris?"}],   the conversation so far
     "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {…}}}],
     "expected": {
       "tool_calls": [{"name": "get_weather",
                       "arguments": {"city": "Paris"},    exact values
                       "allowed": {"unit": ["celsius", ""]}}],   acceptable values, "" = may be left out
       "answer": {"contains": ["Paris"],                  the reply's text holds each (any case)
                  "fields": {"temp_c": [21, 21.5]}}},     the reply is a JSON object with these values
     "format": {"json": true, "schema": {…}, "max_length": 2000}}

`expected.tool_calls` is graded by BFCL's AST rules (`ast_match`): an empty list means the right
answer calls no tool (BFCL's irrelevance), no key means calls are not graded. Several calls match
in any order. `format` applies to the reply's text: valid JSON, valid against a JSON schema
(needs the jsonschema package), at most `max_length` characters. A line that is not a case is
named (FILE:LINE: why) and skipped.

`bfcl:<category>` (or a BFCL question file) gives BFCL's questions with every acceptable value
from its possible_answer file; the irrelevance categories expect no call. live_* categories are
for evaluation only, never for training.

From the store (`--from-store`), each answered model call of the held-out traces is a case: its
request's messages and tools, and as expected the calls it made (their exact arguments), or no
call where it answered in text with tools offered; a free-text answer is not graded otherwise.
`--split eval` takes the traces a dataset build held out (`eval_traces` in its manifest),
`--split held-out` the traces tagged held-out (imported BFCL live_* questions, whose calls keep
BFCL's ground truth in their raw response, so they are graded with all its acceptable values).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_tracer.errors import CodecError, ConfigError
from agent_tracer.formats.examples import HELD_OUT_TAG, arguments_json, function_tool
from agent_tracer.messages import ROLES
from trainer.evaluate.ast_match import ExpectedCall

Warn = Callable[[str], None]
SPLITS = ("eval", "held-out")


@dataclass
class FormatRule:
    """What the reply's text must be, besides right."""

    json: bool = False
    schema: dict[str, Any] | None = None
    max_length: int | None = None


@dataclass
class Case:
    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    expected_calls: list[ExpectedCall] | None = None
    """BFCL possible-answer form; [] = no call is right; None = calls are not graded."""
    contains: list[str] = field(default_factory=list)
    fields: dict[str, list[Any]] = field(default_factory=dict)
    format: FormatRule = field(default_factory=FormatRule)
    source: str = ""
    """Where it came from: FILE:LINE, bfcl:<id>, or store:<trace id>."""
    reference: str | None = None
    """The recorded answer's text, shown beside a failure (store cases)."""

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        """Function name → its spec, for the AST match."""
        return {tool["function"]["name"]: tool["function"] for tool in self.tools}

    @property
    def graded_answer(self) -> bool:
        return bool(self.contains or self.fields)


def case_from_json(item: Any, default_id: str) -> Case:
    """A case-file line's value as a `Case`; `CodecError` says why it is not one."""
    if not isinstance(item, dict):
        raise CodecError(f"not a JSON object but {type(item).__name__}")
    expected = _object(item.get("expected"), "expected")
    answer = _object(expected.get("answer"), "expected.answer")
    rule = _object(item.get("format"), "format")
    contains = answer.get("contains") or []
    fields = answer.get("fields") or {}
    if not isinstance(contains, list) or not all(isinstance(text, str) for text in contains):
        raise CodecError("expected.answer.contains is not a list of strings")
    if not isinstance(fields, dict) or not all(isinstance(values, list) for values in fields.values()):
        raise CodecError("expected.answer.fields is not an object of acceptable-value lists")
    max_length = rule.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
        raise CodecError("format.max_length is not a whole number")
    if rule.get("schema") is not None and not isinstance(rule["schema"], dict):
        raise CodecError("format.schema is not a JSON schema object")
    calls = expected.get("tool_calls")
    return Case(
        id=str(item.get("id") or default_id),
        messages=request_messages(item.get("messages")),
        tools=[function_tool(tool) for tool in item.get("tools") or ()],
        expected_calls=None if calls is None else [_expected_call(call) for call in _list(calls, "tool_calls")],
        contains=contains,
        fields=fields,
        format=FormatRule(bool(rule.get("json")), rule.get("schema"), max_length),
        source=default_id,
    )


def request_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages to send: a non-empty list of objects with a role, tool-call arguments as JSON text."""
    if not isinstance(messages, list) or not messages:
        raise CodecError("no messages")
    out = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise CodecError(f"a message with role {role!r} (expected one of {', '.join(ROLES)})")
        if message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {
                        **call,
                        "type": "function",
                        "function": {
                            **call["function"],
                            "arguments": arguments_json(
                                call["function"].get("arguments"), call["function"].get("name", "?")
                            ),
                        },
                    }
                    for call in _list(message["tool_calls"], "tool_calls")
                ],
            }
        out.append(message)
    return out


def _expected_call(call: Any) -> ExpectedCall:
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise CodecError("an expected tool call without a name")
    exact = call.get("arguments") or {}
    if isinstance(exact, str):
        exact = json.loads(arguments_json(exact, call["name"]))
    allowed = _object(call.get("allowed"), f"the allowed values of {call['name']}")
    if not isinstance(exact, dict) or not all(isinstance(values, list) for values in allowed.values()):
        raise CodecError(f"expected call {call['name']}: arguments must be an object, allowed an object of lists")
    return {call["name"]: {**{param: [value] for param, value in exact.items()}, **allowed}}


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CodecError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"{what} is not a list")
    return value


# -- files ----------------------------------------------------------------------------------------


def file_cases(spec: str, warn: Warn) -> Iterator[Case]:
    """The cases of a case file, a BFCL file or `bfcl:<category>`; bad lines warned and skipped."""
    from agent_tracer.formats.bfcl import SHORTHAND

    if spec.startswith(SHORTHAND) or Path(spec).name.startswith("BFCL_"):
        yield from _bfcl_cases(spec, warn)
        return
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"no case file {spec}")
    for number, item in _lines(path, warn):
        try:
            yield case_from_json(item, f"{path.name}:{number}")
        except (CodecError, TypeError, KeyError) as exc:
            warn(f"{path}:{number}: {exc}")


def _bfcl_cases(spec: str, warn: Warn) -> Iterator[Case]:
    from agent_tracer.formats.bfcl import open_bfcl
    from agent_tracer.formats.imports import ImportOptions

    try:
        reader = open_bfcl(spec, ImportOptions(warn=warn))
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ConfigError(str(exc)) from None
    for number, item in _lines(reader.path, warn):
        try:
            parsed = reader.parse(item, number, "")
        except ValueError as exc:
            warn(f"{reader.path}:{number}: {exc}")
            continue
        for example in parsed if isinstance(parsed, list) else [parsed]:  # a conversation: its turns
            yield Case(
                id=example.meta["id"],
                messages=example.messages[:-1],
                tools=example.tools,
                expected_calls=_bfcl_truth(example.raw_response),
                source=f"bfcl:{reader.category}",
            )


def _lines(path: Path, warn: Warn) -> Iterator[tuple[int, Any]]:
    """Each non-blank line's JSON value with its number; a line that is not JSON is warned about."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                warn(f"{path}:{number}: not JSON ({exc})")


# -- the store ------------------------------------------------------------------------------------


def store_cases(store: Any, split: str, manifest: str | Path, warn: Warn) -> Iterator[Case]:
    """Cases from the held-out traces of `store` (`split`: "eval" or "held-out", see the docstring)."""
    if split == "held-out":
        for run in store.iter_runs(
            tags=[HELD_OUT_TAG], call_columns=("id", "status", "request", "response", "raw_response")
        ):
            yield from _run_cases(run.trace, run.calls, warn)
        return
    if split != "eval":
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    path = Path(manifest)
    try:
        eval_traces = json.loads(path.read_text(encoding="utf-8"))["eval_traces"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--split eval needs a dataset manifest with eval_traces: {path} is not one "
            "(agent-tracer dataset sft writes NAME.manifest.json; choose it with --manifest)"
        ) from None
    from agent_tracer.errors import TraceNotFound

    for trace_id in eval_traces:
        try:
            detail = store.get_trace(trace_id)
        except TraceNotFound:
            warn(f"{path}: held-out trace {trace_id} is not in the store")
            continue
        yield from _run_cases(detail.trace.model_dump(), [call.model_dump() for call in detail.calls], warn)


def _run_cases(trace: dict[str, Any], calls: list[dict[str, Any]], warn: Warn) -> Iterator[Case]:
    from agent_tracer.conversations import call_conversation
    from agent_tracer.messages import message_text

    bfcl = (trace.get("meta") or {}).get("format") == "bfcl"
    for number, call in enumerate(calls):
        if call.get("status") != "ok":
            continue
        conversation = call_conversation(call["id"], trace["id"], call.get("request"), call.get("response"))
        if conversation is None:
            continue
        answer = conversation.messages[-1]
        where = f"store:{trace['id']}" + (f"#{number}" if len(calls) > 1 else "")
        try:
            expected = _bfcl_truth(call.get("raw_response")) if bfcl else _recorded_calls(answer, conversation.tools)
            yield Case(
                id=trace["id"][:12] + (f"#{number}" if len(calls) > 1 else ""),
                messages=request_messages(conversation.messages[:-1]),
                tools=[function_tool(tool) for tool in conversation.tools],
                expected_calls=expected,
                source=where,
                reference=message_text(answer) or None,
            )
        except (CodecError, ValueError, TypeError, KeyError) as exc:
            warn(f"{where}: not a case ({exc})")


def _recorded_calls(answer: dict[str, Any], tools: list[Any]) -> list[ExpectedCall] | None:
    calls = answer.get("tool_calls") or []
    if not calls:
        return [] if tools else None
    expected = []
    for call in calls:
        function = call["function"]
        arguments = json.loads(arguments_json(function.get("arguments"), function["name"]))
        expected.append({function["name"]: {param: [value] for param, value in arguments.items()}})
    return expected


def _bfcl_truth(raw: str | None) -> list[ExpectedCall]:
    """A BFCL question's (or turn's) ground truth, from the answer line the import keeps as its raw
    response (an irrelevance question has none: no call is right)."""
    from agent_tracer.formats.bfcl import expected_calls

    return expected_calls(json.loads(raw)["ground_truth"]) if raw else []


# -- all of them ----------------------------------------------------------------------------------


def load_cases(
    specs: Any = (),
    *,
    store: Any = None,
    split: str = "eval",
    manifest: str | Path = "sft.manifest.json",
    limit: int | None = None,
    warn: Warn | None = None,
) -> list[Case]:
    """Cases from `specs` (case files, BFCL files, `bfcl:<category>`; or `Case`s and case dicts)
    and, given a store, its held-out `split`. Ids are made unique; a bad line is warned about
    (FILE:LINE: why) and skipped; no case at all is a `ConfigError` saying where it looked."""
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        if warn is not None:
            warn(message)

    items = [specs] if isinstance(specs, (str, Path, Case, dict)) else list(specs)
    cases: list[Case] = []
    looked: list[str] = []
    for item in items:
        if isinstance(item, Case):
            cases.append(item)
        elif isinstance(item, dict):
            cases.append(case_from_json(item, f"case {len(cases) + 1}"))
        else:
            looked.append(str(item))
            cases.extend(file_cases(str(item), skip))
    if store is not None:
        looked.append(f"the store's {split} split" + (f" ({manifest})" if split == "eval" else ""))
        cases.extend(store_cases(store, split, manifest, skip))
    if not cases:
        where = ", ".join(looked) or "nothing (give --cases FILE or --from-store)"
        bad = f"; {len(skipped)} line(s) skipped, the first: {skipped[0]}" if skipped else ""
        raise ConfigError(f"no eval cases in {where}{bad}")
    seen: Counter[str] = Counter()
    for case in cases:
        seen[case.id] += 1
        if seen[case.id] > 1:
            case.id = f"{case.id}~{seen[case.id]}"
    return cases[:limit] if limit is not None else cases
