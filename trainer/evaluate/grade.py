"""One reply against its case: tool selection, arguments, answer, tool-call format, well-formed,
and whether the task succeeded (every check that applies passed). What each check means to a
reader of the report is said once, in `trainer.evaluate.metrics.RATES`.

A reply's calls are its `tool_calls`; a reply without any whose text holds `<tool_call>` blocks
(a base model served without a tool parser) has those parsed with `trainer.tool_calls.parse_reply`,
the parser serving and training use. Arguments that are not a JSON object, or a block that is not
a call, make the reply malformed: it is not well-formed, and the broken call counts as made
(under the name it gave, or "?") so that selection and arguments fail too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trainer.evaluate.ast_match import match_calls, same_tools, standardize
from trainer.evaluate.cases import Case
from trainer.tool_calls import parse_reply


@dataclass
class Reply:
    """What an endpoint answered, reduced to what is graded."""

    content: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """`{"name", "arguments"}` each, arguments a dict (or the text that was not one)."""
    malformed: list[str] = field(default_factory=list)

    @classmethod
    def from_message(cls, content: str | None, tool_calls: list[tuple[str, str]]) -> Reply:
        """From the text and the (name, arguments JSON) calls an API answered."""
        reply = cls(content or "")
        for name, arguments in tool_calls:
            try:
                value = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                value = None
            if not isinstance(value, dict):
                reply.malformed.append(f"{name}({arguments})")
                value = arguments
            reply.calls.append({"name": name, "arguments": value})
        if not tool_calls and "<tool_call>" in reply.content:
            parsed = parse_reply(reply.content)
            reply.content, reply.calls, reply.malformed = parsed.content, parsed.calls, parsed.malformed
            reply.calls += [{"name": "?", "arguments": block} for block in parsed.malformed]
        return reply

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"content": self.content, "tool_calls": self.calls}
        if self.malformed:
            out["malformed"] = self.malformed
        return out


@dataclass
class Grade:
    """Each check: True / False, or None where the case does not ask for it."""

    tool_selection: bool | None = None
    arguments: bool | None = None
    answer: bool | None = None
    tool_call_format: bool | None = None
    """At least one tool call, every one well-formed; None where no call is due."""
    well_formed: bool = True
    """No malformed tool call, and the text in the case's format (JSON, schema, length): a prose
    answer is well-formed where a call was due all the same."""
    success: bool = False
    reason: str | None = None
    """Why it failed: the first failed check's explanation."""
    error_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def grade(case: Case, reply: Reply) -> Grade:
    result = Grade()
    reasons: list[str] = []
    if case.expected_calls is not None:
        result.tool_selection = same_tools(reply.calls, case.expected_calls)
        if not case.expected_calls:
            if reply.calls:
                reasons.append(f"called {', '.join(call['name'] for call in reply.calls)} where no call is right")
                result.error_kind = "irrelevance"
        else:
            verdict = match_calls(reply.calls, case.expected_calls, case.functions)
            result.arguments = verdict.valid
            if not verdict.valid:
                reasons.append(verdict.error or "calls do not match")
                result.error_kind = verdict.kind
    if case.graded_answer:
        why = _answer_problem(case, reply.content)
        result.answer = why is None
        if why:
            reasons.append(why)
    why = _format_problem(case, reply)
    result.well_formed = why is None
    if case.expected_calls:
        result.tool_call_format = bool(reply.calls) and not reply.malformed
    if why:
        reasons.append(why)
    result.success = not reasons
    result.reason = reasons[0] if reasons else None
    return result


def _answer_problem(case: Case, text: str) -> str | None:
    lowered = text.lower()
    missing = [wanted for wanted in case.contains if wanted.lower() not in lowered]
    if missing:
        return f"the answer does not mention {missing[0]!r}"
    if not case.fields:
        return None
    value = _json_object(text)
    if value is None:
        return "the answer is not a JSON object, so its fields cannot be read"
    for name, allowed in case.fields.items():
        if name not in value:
            return f"the answer has no field {name!r}"
        if standardize(value[name]) not in [standardize(option) for option in allowed]:
            return f"the answer's {name} is {value[name]!r}, not one of {allowed!r}"
    return None


def _format_problem(case: Case, reply: Reply) -> str | None:
    if reply.malformed:
        return f"malformed tool call: {reply.malformed[0][:120]}"
    rule = case.format
    if rule.max_length is not None and len(reply.content) > rule.max_length:
        return f"the answer is {len(reply.content):,} characters, over the {rule.max_length:,} allowed"
    if not (rule.json or rule.schema is not None):
        return None
    try:
        value = json.loads(reply.content)
    except ValueError:
        return "the answer is not valid JSON"
    if rule.schema is not None:
        import jsonschema

        try:
            jsonschema.validate(value, rule.schema)
        except jsonschema.ValidationError as exc:
            return f"the answer does not fit the schema: {exc.message}"
    return None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
