"""Rejected answers for DPO: wrong tool calls made from a correct one, by rule.

A correct example (an `Example` whose last message is the assistant's tool call) becomes
`Preference`s with the same prompt, that call as `chosen`, and a near-miss as `rejected`, by
deterministic corruptions, one `kind` each (`KINDS`), seeded per example from `seed` and the
example's `row_digest` (not `hash()`, salted per process), so the output depends neither on input
order nor on Python's hash randomisation. `llm_negatives.py` has a model write them instead.

The synthetic kinds:

    wrong_tool        another offered tool, with arguments that fit its schema (the call's value
                      where name and type match, else a plausible one: default, enum's first, 1, …)
    wrong_argument    one value changed to another of the same type: an enum's other member, the
                      value of a sibling parallel call, a number shifted, a boolean flipped, a
                      string with a number shifted, another name from the request ("Paris" for
                      "London") or a word left out; a lone lower-case word is left alone
    missing_argument  a required argument left out
    wrong_type        one value in the wrong JSON type: 5 as "5", "5" as 5, a word as a list,
                      a list or object as its JSON text, a boolean as "true"
    malformed_json    arguments that do not parse. Rows carry arguments as dicts, so this one
                      carries them as a *string* of broken JSON (cut short, a key without its
                      opening quote, single quotes, a trailing comma); chat templates render
                      string arguments verbatim (`trainer/chat_template.py`), so the model sees
                      a broken call. Anything reading these rows must accept string arguments.
    invented_tool     a name no offered tool has, made from the real one (plural, camelCase,
                      another verb, without the namespace), with the same arguments
    unasked_argument  an optional parameter the call leaves out and the user's words do not name
                      ("using the Darwin model" names `model`), filled in with a value other than
                      its default: an enum's member, a boolean set, a number, or a string copied
                      from another argument or the request: after wrong values, a small tuned
                      model's commonest mistake (BENCHMARKS.md, "DPO against optional parameters
                      nobody asked for")

With parallel calls one call is corrupted and the others kept. Each example tries its kinds in a
seeded order until `per_example` of them applied; a kind that cannot apply (one tool offered,
nothing required) is counted by reason in `SyntheticStats.skipped` and the next is tried.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_tracer.errors import ConfigError
from agent_tracer.messages import Message
from trainer.data.dedup import row_digest
from trainer.data.rows import Example, Preference
from trainer.data.unused_params import user_words, words

KINDS = (
    "wrong_tool",
    "wrong_argument",
    "missing_argument",
    "wrong_type",
    "malformed_json",
    "invented_tool",
    "unasked_argument",
)


# ------------------------------------------------------------------------------------------------
# Synthetic negatives


@dataclass
class SyntheticConfig:
    kinds: tuple[str, ...] = field(default=KINDS, metadata={"help": f"Kinds of mistake to make: {', '.join(KINDS)}."})
    per_example: int = field(default=2, metadata={"help": "At most this many rejected answers (kinds) per example."})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice; the same seed gives the same rows."})

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ConfigError(f"unknown negative kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
        if self.per_example < 1:
            raise ConfigError(f"per_example must be at least 1, not {self.per_example}")


@dataclass
class SyntheticStats:
    examples: int = 0
    made: Counter[str] = field(default_factory=Counter)
    """Preferences made, per kind."""
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, reason) each time a kind was tried on an example and could not apply."""
    unusable: Counter[str] = field(default_factory=Counter)
    """Examples with no tool call to corrupt, by reason."""


def synthetic_negatives(
    examples: Iterable[Example], config: SyntheticConfig | None = None, stats: SyntheticStats | None = None
) -> Iterator[Preference]:
    """Up to `config.per_example` synthetic preferences per example, counted into `stats`."""
    config = config or SyntheticConfig()
    stats = stats if stats is not None else SyntheticStats()
    for example in examples:
        stats.examples += 1
        reason = unusable(example)
        if reason:
            stats.unusable[reason] += 1
            continue
        answer = example.messages[-1]
        context = _Context.of(example)
        key = f"{config.seed}:{row_digest(example).hex()}"
        order = list(config.kinds)
        random.Random(key).shuffle(order)
        made = 0
        for kind in order:
            if made == config.per_example:
                break
            try:
                # One generator per kind: what a kind makes does not depend on which others ran.
                rejected = _CORRUPTIONS[kind](answer, context, random.Random(f"{key}:{kind}"))
            except _CannotApply as why:
                stats.skipped[(kind, str(why))] += 1
                continue
            if canonical(rejected) == canonical(answer):
                raise AssertionError(f"{kind} left the answer unchanged: {answer!r}")
            stats.made[kind] += 1
            made += 1
            yield Preference(
                example.messages[:-1],
                [answer],
                [rejected],
                example.tools,
                source="synthetic",
                kind=kind,
                trace_id=example.trace_id,
            )


class _CannotApply(Exception):
    """A kind of mistake this answer cannot have; the message is the reason, counted."""


@dataclass
class _Context:
    """What the corruptions need to know beyond the answer."""

    schemas: dict[str, dict[str, Any]]
    """The offered tools' parameter schemas by name, in offered order."""
    names: list[str]
    """Capitalised phrases of the user's messages ("New York", "Tech Corp"): the other entities a
    model could mix a value up with."""
    said: set[str]
    """The words of the user's messages: a parameter they name was asked about."""

    @classmethod
    def of(cls, example: Example) -> _Context:
        schemas = {}
        for tool in example.tools:
            function = tool.get("function") or {}
            if function.get("name"):
                schemas[function["name"]] = function.get("parameters") or {}
        names: dict[str, None] = {}
        for message in example.messages:
            if message["role"] == "user":
                names.update(dict.fromkeys(_capitalised(message["content"])))
        return cls(schemas, list(names), user_words(example.messages))

    def schema_of(self, tool: str, argument: str) -> dict[str, Any] | None:
        """The schema of a tool's argument; None where the tool or argument is not described."""
        return ((self.schemas.get(tool) or {}).get("properties") or {}).get(argument)


def _capitalised(text: str) -> Iterator[str]:
    """Runs of capitalised words, less a sentence's first word (capitalised as a matter of course)."""
    for match in re.finditer(r"\b[A-Z][\w'&-]*(?:[ ]+[A-Z][\w'&-]*)*", text):
        phrase = re.sub(r"'s?$", "", match.group())
        if not text[: match.start()].strip() or text[: match.start()].rstrip()[-1] in ".?!:":
            phrase = phrase.partition(" ")[2].strip()
        if len(phrase) > 1:
            yield phrase


def _wrong_tool(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    index = rng.randrange(len(calls))
    function = calls[index]["function"]
    others = [name for name in context.schemas if name != function["name"]]
    if not others:
        raise _CannotApply("only one tool is offered")
    name = rng.choice(others)
    return replaced(answer, index, name, _arguments_for(context.schemas[name], function["arguments"]))


def _arguments_for(parameters: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Arguments fitting `parameters`: the given value of the same name where its type fits, else
    for a required parameter a plausible value from its schema; optional ones left out."""
    required = set(parameters.get("required") or ())
    out = {}
    for name, schema in (parameters.get("properties") or {}).items():
        if name in values and _fits(values[name], schema):
            out[name] = values[name]
        elif name in required:
            out[name] = _plausible(schema)
    return out


def _wrong_argument(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    slots = [(i, name) for i, call in enumerate(calls) for name in call["function"]["arguments"]]
    if not slots:
        raise _CannotApply("the call has no arguments")
    rng.shuffle(slots)
    for index, name in slots:
        function = calls[index]["function"]
        siblings = [
            call["function"]["arguments"][name]
            for j, call in enumerate(calls)
            if j != index and name in call["function"]["arguments"]
        ]
        schema = context.schema_of(function["name"], name) or {}
        value = _other_value(function["arguments"][name], schema, context.names, rng, siblings)
        if value is not None:
            return replaced(answer, index, function["name"], {**function["arguments"], name: value})
    raise _CannotApply("no argument has another plausible value")


def _other_value(
    value: Any, schema: dict[str, Any], names: list[str], rng: random.Random, siblings: Sequence[Any] = ()
) -> Any:
    """Another plausible value of the same type, or None where there is none."""
    if schema.get("enum"):
        others = [v for v in schema["enum"] if _same_type(v, value) and canonical(v) != canonical(value)]
        return rng.choice(others) if others else None
    others = [v for v in siblings if _same_type(v, value) and canonical(v) != canonical(value)]
    if others:
        return rng.choice(others)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([value + 1, value - 1, value * 2 if value else 2, value * 10 if value else 10])
    if isinstance(value, float):
        shifted = (round(value + 1, 6), round(value * 2, 6), round(value / 2, 6), 1.5)
        return rng.choice([number for number in shifted if number != value])
    if isinstance(value, str):
        return _other_string(value, names, rng)
    if isinstance(value, list):
        items = schema["items"] if isinstance(schema.get("items"), dict) else {}
        changed = _change_one([(i, item, items) for i, item in enumerate(value)], names, rng)
        return None if changed is None else [changed[1] if i == changed[0] else v for i, v in enumerate(value)]
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        changed = _change_one([(k, v, properties.get(k) or {}) for k, v in value.items()], names, rng)
        return None if changed is None else {**value, changed[0]: changed[1]}
    return None


def _change_one(
    slots: list[tuple[Any, Any, dict[str, Any]]], names: list[str], rng: random.Random
) -> tuple[Any, Any] | None:
    """(key, new value) for one member of a list or object that has another value."""
    rng.shuffle(slots)
    for key, value, schema in slots:
        new = _other_value(value, schema, names, rng)
        if new is not None:
            return key, new
    return None


def _other_string(value: str, names: list[str], rng: random.Random) -> str | None:
    """A number in it shifted ("2024-05-01" → "2024-05-02"); else, for a name, another name of the
    request (the mix-up models make: "Paris" for "London" in "from London to Paris"); else a word
    left out ("pasta carbonara" → "pasta"). None for a lone lower-case word: no telling what
    another value of it would be ("gas" → "diesel"?)."""
    numbers = list(re.finditer(r"\d+", value))
    if numbers:
        match = rng.choice(numbers)
        number = int(match.group())
        shifted = str(number + 1 if number == 0 else rng.choice([number + 1, number - 1])).zfill(len(match.group()))
        return value[: match.start()] + shifted + value[match.end() :]
    if value[:1].isupper():
        others = [name for name in names if name.lower() not in value.lower() and value.lower() not in name.lower()]
        if others:
            return rng.choice(others)
    tokens = value.split()
    if len(tokens) > 1:
        del tokens[rng.randrange(len(tokens))]
        return " ".join(tokens).strip(" ,")
    return None


def _missing_argument(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    slots = [
        (i, name)
        for i, call in enumerate(calls)
        for name in (context.schemas.get(call["function"]["name"]) or {}).get("required") or ()
        if name in call["function"]["arguments"]
    ]
    if not slots:
        raise _CannotApply("no required argument is given")
    index, name = rng.choice(slots)
    function = calls[index]["function"]
    return replaced(answer, index, function["name"], {k: v for k, v in function["arguments"].items() if k != name})


def _wrong_type(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    slots = [(i, name) for i, call in enumerate(calls) for name in call["function"]["arguments"]]
    rng.shuffle(slots)
    for index, name in slots:
        function = calls[index]["function"]
        value = _retyped(function["arguments"][name])
        schema = context.schema_of(function["name"], name)
        # Where the schema is unknown, the correct answer's own type is the right one.
        if value is not None and (schema is None or not _fits(value, schema)):
            return replaced(answer, index, function["name"], {**function["arguments"], name: value})
    raise _CannotApply("no argument has a type to break" if slots else "the call has no arguments")


def _retyped(value: Any) -> Any:
    """The value in another JSON type, the way models get types wrong; None for null."""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        if re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if re.fullmatch(r"-?\d+\.\d+", value.strip()):
            return float(value)
        return [value]
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return None


def _malformed_json(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    index = rng.randrange(len(calls))
    function = calls[index]["function"]
    text = json.dumps(function["arguments"], ensure_ascii=False)
    broken = [b for b in (breaker(text, rng) for breaker in _BREAKERS) if b is not None and not _parses(b)]
    return replaced(answer, index, function["name"], rng.choice(broken))  # a cut is always among them


def _cut_short(text: str, rng: random.Random) -> str:
    """A prefix: an object missing its closing brace never parses (what a truncated model emits)."""
    return text[: rng.randrange(max(1, len(text) // 2), len(text))]


def _unquoted_key(text: str, rng: random.Random) -> str | None:
    # json.dumps escapes quotes inside strings: a bare quote after "{" or ", " opens a key (or a
    # string in a list, as broken without it).
    keys = [m.end() - 1 for m in re.finditer(r'(?:\{|, )"', text)]
    if not keys:
        return None
    at = rng.choice(keys)
    return text[:at] + text[at + 1 :]


def _single_quotes(text: str, rng: random.Random) -> str:
    return text.replace('"', "'")


def _trailing_comma(text: str, rng: random.Random) -> str:
    return text[:-1] + ",}"


_BREAKERS: tuple[Callable[[str, random.Random], str | None], ...] = (
    _cut_short,
    _unquoted_key,
    _single_quotes,
    _trailing_comma,
)


def _invented_tool(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    index = rng.randrange(len(calls))
    function = calls[index]["function"]
    names = [n for n in _name_variants(function["name"]) if n != function["name"] and n not in context.schemas]
    if not names:
        raise _CannotApply("every invented name is an offered tool")
    return replaced(answer, index, rng.choice(names), function["arguments"])


_VERBS = ("get", "fetch", "find", "search", "lookup", "retrieve", "calculate", "compute", "create", "list")


def _name_variants(name: str) -> list[str]:
    """Names a model might invent for a tool: plural, other case style, other verb, no namespace."""
    namespace, dot, base = name.rpartition(".")
    bases = [base[:-1] if base.endswith("s") else base + "s"]
    if "_" in base:
        head, *rest = base.split("_")
        bases.append(head + "".join(word.capitalize() for word in rest))
    elif re.search(r"[a-z][A-Z]", base):
        bases.append(re.sub(r"(?<=[a-z])([A-Z])", r"_\1", base).lower())
    first = re.match(r"[A-Za-z][a-z]*", base)
    if first and first.group().lower() in _VERBS:
        tail = base[first.end() :]
        cased = str.capitalize if first.group()[0].isupper() else str.lower
        bases += [cased(verb) + tail for verb in _VERBS if verb != first.group().lower()]
    else:
        bases.append(("get_" + base) if "_" in base or base.islower() else "get" + base[:1].upper() + base[1:])
    names = [namespace + dot + b for b in bases]
    if namespace:
        names += [base, namespace.replace(".", "_") + "_" + base]
    return names


def _unasked_argument(answer: Message, context: _Context, rng: random.Random) -> Message:
    calls = answer["tool_calls"]
    slots = []
    for index, call in enumerate(calls):
        parameters = context.schemas.get(call["function"]["name"]) or {}
        required = set(parameters.get("required") or ())
        slots += [
            (index, name, schema)
            for name, schema in (parameters.get("properties") or {}).items()
            if name not in call["function"]["arguments"]
            and name not in required
            and isinstance(schema, dict)
            and not words(name) & context.said
        ]
    if not slots:
        raise _CannotApply("no optional parameter the user does not name is left out")
    rng.shuffle(slots)
    for index, name, schema in slots:
        function = calls[index]["function"]
        value = _unasked_value(schema, function["arguments"], context.names, rng)
        if value is not None:
            return replaced(answer, index, function["name"], {**function["arguments"], name: value})
    raise _CannotApply("no left-out parameter has a value to fill in")


def _unasked_value(schema: dict[str, Any], arguments: dict[str, Any], names: list[str], rng: random.Random) -> Any:
    """A value a model fills in unasked, never the parameter's default (which leaving it out
    means); None for arrays and objects, where there is no telling what it would write."""
    default = schema.get("default")

    def candidates(values: Iterable[Any]) -> list[Any]:
        return [v for v in values if v is not None and v != "" and canonical(v) != canonical(default)]

    if schema.get("enum"):
        members = candidates(schema["enum"])
        return rng.choice(members) if members else None
    kind = _schema_type(schema)
    if kind == "boolean":
        return not default if isinstance(default, bool) else True
    if kind in ("integer", "number"):
        number = default if isinstance(default, (int, float)) and not isinstance(default, bool) else None
        value = rng.choice([v for v in dict.fromkeys([(number or 0) + 1, (number or 1) * 10, 1, 10]) if v != number])
        return float(value) if kind == "number" else int(value)
    if kind == "string":
        copied = candidates(dict.fromkeys([*(v for v in arguments.values() if isinstance(v, str)), *names]))
        return rng.choice(copied) if copied else None
    return None


_CORRUPTIONS: dict[str, Callable[[Message, _Context, random.Random], Message]] = {
    "wrong_tool": _wrong_tool,
    "wrong_argument": _wrong_argument,
    "missing_argument": _missing_argument,
    "wrong_type": _wrong_type,
    "malformed_json": _malformed_json,
    "invented_tool": _invented_tool,
    "unasked_argument": _unasked_argument,
}


# ------------------------------------------------------------------------------------------------
# Shared


def unusable(example: Example) -> str | None:
    """Why an example has no tool call to contradict; None when it has."""
    answer = example.messages[-1] if example.messages else {}
    if answer.get("role") != "assistant" or not answer.get("tool_calls"):
        return "does not end with a tool call"
    if any(not isinstance(call["function"].get("arguments"), dict) for call in answer["tool_calls"]):
        return "has tool-call arguments that are not a dict"
    return None


def canonical(value: Any) -> str:
    """JSON text that tells 1, 1.0, true and "1" apart (Python's == does not) and ignores key order."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def replaced(answer: Message, index: int, name: str, arguments: dict[str, Any] | str) -> Message:
    """A copy of the answer with call `index` now `name(arguments)`; id and the other calls kept."""
    rejected = copy.deepcopy(answer)
    rejected["tool_calls"][index]["function"] = {"name": name, "arguments": copy.deepcopy(arguments)}
    return rejected


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "float": "number",
    "tuple": "array",
    "dict": "object",
}
"""JSON schema's types, and the Python names some tool specs use instead (BFCL's among them)."""


def _schema_type(schema: dict[str, Any]) -> str | None:
    """The JSON type a schema asks for; None for any (also "any", unions of several types)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return _JSON_TYPES.get(kind) if isinstance(kind, str) else None


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _same_type(a: Any, b: Any) -> bool:
    return _type_of(a) == _type_of(b)


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    if schema.get("enum"):
        return any(canonical(value) == canonical(member) for member in schema["enum"])
    wanted = _schema_type(schema)
    actual = _type_of(value)
    return wanted is None or actual == wanted or (wanted == "number" and actual == "integer")


def _plausible(schema: dict[str, Any]) -> Any:
    """A value a model would fill in from the schema alone."""
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None and _fits(schema["default"], schema):
        return schema["default"]
    kind = _schema_type(schema)
    if kind == "array":
        items = schema.get("items")
        return [_plausible(items)] if isinstance(items, dict) else []
    if kind == "object":
        return _arguments_for(schema, {})
    return {"integer": 1, "number": 1.0, "boolean": True}.get(kind or "", "example")
