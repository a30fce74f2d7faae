"""Personal data out of what is stored and trained on: the redaction rules, shared by the capture
side (masking before storage: `init(mask=…)`, `agent-tracer proxy --mask`) and the dataset builder
(`trainer/data/pii.py`, which applies them to the rows a model learns from).

What a rule finds becomes a typed placeholder, so the text keeps its shape:

    [SECRET]  key-shaped strings, the shapes `agent_tracer.redact` already keeps out of the store
    [EMAIL]   name@domain.tld
    [CARD]    13-19 digits, alone or grouped by spaces or dashes, that pass the Luhn check and
              start like an issuer's number (2-6); a random 16-digit id passes 1 time in 20
    [PHONE]   international numbers written with a leading + (8-15 digits, any grouping), and
              North-American ones written with separators: (415) 555-0132, 415-555-0132,
              415.555.0132, 1-800-555-0199. A bare run of digits is never a phone number (it is
              an id, a timestamp, an amount), nor is a local 555-0132. What else takes these
              shapes is replaced too: three numbers 100 200 3000, an id 123-456-7890, and a
              number that follows a + number after one space ("+44 20 7946 0958 12 items")
    [IP]      IPv4 addresses that are globally routable; 127.0.0.1 and 10.x.x.x stay

The rules are pluggable: a `Redactor` is any callable with a `name` that maps a text to the
redacted text and the number of replacements. `RegexRule` makes one from a pattern, with an
optional check of each match (the Luhn test) and a cheap test of the whole text that skips the
regex when it cannot match ("@" for emails). `default_redactors` builds the set above minus the
kinds a `RedactionConfig` turns off; users append their own rules (`parse_rules`: "NAME=REGEX").

`Masker` applies rules (and a user's function) to the rows the capture writer is about to store
or spill: every string of a model call's request and response, its raw bodies and search text, a
run's task, input and output, a tool's arguments and result, feedback's comment and correction.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_tracer.errors import ConfigError
from agent_tracer.redact import KEY_PATTERN, has_secret, map_strings


class Redactor(Protocol):
    """A named rule: text in, (redacted text, replacements made) out."""

    name: str

    def __call__(self, text: str) -> tuple[str, int]: ...


class RegexRule:
    """Replaces every match of `pattern` with `placeholder`. `check(match_text)`, when given,
    keeps the matches it rejects; `hint(text)`, when given, is a cheap test that must be true
    for the pattern to match anywhere in the text (else the regex is not run). `shortest`: the
    fewest characters a match takes: a shorter text is returned as it is, before the hint (most
    strings of a request are a role, a name, an id)."""

    def __init__(
        self,
        name: str,
        pattern: str | re.Pattern[str],
        placeholder: str,
        check: Callable[[str], bool] | None = None,
        hint: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name
        self.pattern = re.compile(pattern)
        self.placeholder = placeholder
        self.check = check
        self.hint = hint
        self.shortest = _shortest(self.pattern)

    def __call__(self, text: str) -> tuple[str, int]:
        if len(text) < self.shortest or (self.hint is not None and not self.hint(text)):
            return text, 0
        check = self.check
        if check is None:
            return self.pattern.subn(lambda _: self.placeholder, text)
        replaced = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal replaced
            if not check(match.group()):
                return match.group()
            replaced += 1
            return self.placeholder

        return self.pattern.sub(replace, text), replaced

    def __repr__(self) -> str:
        return f"RegexRule({self.name!r}, {self.pattern.pattern!r}, {self.placeholder!r})"


EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])")
# CARD and IPV4 open with a digit and check what precedes it after that: a pattern that starts
# with a character class lets the regex engine skip to the next digit instead of trying a
# look-behind at every position (2-3 times faster).
CARD = re.compile(r"\d(?<!\d\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![ -]?\d)")
# PHONE likewise opens with its first character (+, a parenthesis or a digit), then checks the
# one before it, and each branch checks which first character it follows (2.7 times faster than
# the look-behind first; the same matches, checked on 200,000 random strings).
PHONE = re.compile(
    r"[+(\d](?<![\w+][+(\d])(?:"
    r"(?<=\+)(?:\d[ .()-]{0,2}){7,14}\d"  # international: + and 8-15 digits
    r"|(?<=1)[ .-](?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([ .-])\d{3}\1\d{4})"  # North American: 1-800-555-0199
    r"|(?<=\()\d{3}\) ?\d{3}[ .-]\d{4}"  # (415) 555-0132
    r"|(?<=\d)\d{2}([ .-])\d{3}\2\d{4}"  # 415-555-0132
    r")(?![\w-])"
)
IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")  # octets checked by `ipaddress`


def _shortest(pattern: re.Pattern[str]) -> int:
    """The fewest characters a match of `pattern` takes, from the regex parser (0 if unknown)."""
    try:
        parser = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")
        return int(min(parser.parse(pattern.pattern, pattern.flags).getwidth()[0], 1 << 20))
    except Exception:  # the parser is the standard library's own, not a public API: never fatal
        return 0


def _has_digit(text: str) -> bool:
    """Ten substring tests take a tenth of one regex scan."""
    return any(map(text.__contains__, "0123456789"))


# Hints of the card and phone rules. Raw JSON bodies hold digits at every turn (ids, counts,
# times), and the patterns try a match at each one; these find the digit groups a match needs in
# a tenth of the time, the text rewritten by bytes.translate (every digit a 0, separators out or
# marked) and searched for a fixed string. Only
# for ASCII text (`isascii` is free): `\d` matches other scripts' digits too, so other text goes
# to the regex as before.
_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _may_hold_card(text: str) -> bool:
    """13 digits or more, single spaces or dashes between them: 13 zeros once those are out."""
    if not text.isascii():
        return _has_digit(text)
    return b"0000000000000" in text.encode("ascii").translate(_TO_ZERO, b" -")


_TO_SHAPE = bytes.maketrans(b"0123456789 .-", b"0000000000sss")


def _may_hold_phone(text: str) -> bool:
    """+ and a digit (international), or the North-American groups: 3, a separator, 3, the same
    separator, 4 (digits as 0, separators as s), or 3 in parentheses. A bare run of digits, such
    as a JSON body's ten-digit "created" time, is neither."""
    if not text.isascii():
        return True
    shape = text.encode("ascii").translate(_TO_SHAPE)
    return b"+0" in shape or b"000s000s0000" in shape or b"(000)" in shape


# The IP rule's hint: a shape every match contains, opening with a literal, which the regex engine
# finds with a fast scan (a tenth of the full pattern's time over text with many digits).
_DOTTED_QUAD = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of a string of digits (what every payment card number satisfies)."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card_number(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")
    return digits[0] in "23456" and luhn_valid(digits)


def _public_address(match: str) -> bool:
    try:
        return ipaddress.IPv4Address(match).is_global
    except ValueError:  # an octet past 255, or with a leading zero: not an address
        return False


@dataclass
class RedactionConfig:
    secrets: bool = field(default=True, metadata={"help": "Replace API keys and bearer tokens with [SECRET]."})
    emails: bool = field(default=True, metadata={"help": "Replace email addresses with [EMAIL]."})
    cards: bool = field(default=True, metadata={"help": "Replace Luhn-valid payment card numbers with [CARD]."})
    phones: bool = field(
        default=True,
        metadata={"help": "Replace phone numbers with [PHONE] (+ international, or North-American with separators)."},
    )
    ip_addresses: bool = field(default=True, metadata={"help": "Replace public IPv4 addresses with [IP]."})


def default_redactors(config: RedactionConfig | None = None) -> list[Redactor]:
    """The built-in rules the config leaves on, in the order they must run: secrets before the
    rest (a key can hold digit runs and @), cards before phones (both are grouped digits)."""
    config = config if config is not None else RedactionConfig()
    rules: list[tuple[bool, Redactor]] = [
        (config.secrets, RegexRule("secret", KEY_PATTERN, "[SECRET]", hint=has_secret)),
        (config.emails, RegexRule("email", EMAIL, "[EMAIL]", hint=lambda text: "@" in text)),
        (config.cards, RegexRule("card", CARD, "[CARD]", check=_card_number, hint=_may_hold_card)),
        (config.phones, RegexRule("phone", PHONE, "[PHONE]", hint=_may_hold_phone)),
        (
            config.ip_addresses,
            RegexRule("ip", IPV4, "[IP]", check=_public_address, hint=lambda text: bool(_DOTTED_QUAD.search(text))),
        ),
    ]
    return [rule for enabled, rule in rules if enabled]


def parse_rules(rules: Sequence[str]) -> list[Redactor]:
    """Users' own rules, each "NAME=REGEX" (replaced by `[NAME]`); ConfigError for a bad one."""
    parsed: list[Redactor] = []
    for rule in rules:
        name, sep, pattern = rule.partition("=")
        name = name.strip()
        if not sep or not name or not pattern:
            raise ConfigError(f"a redaction rule is NAME=REGEX, not {rule!r}")
        try:
            parsed.append(RegexRule(name.lower(), pattern, f"[{name.upper()}]"))
        except re.error as exc:
            raise ConfigError(f"redaction rule {name}: not a regular expression ({exc})") from None
    return parsed


BUILT_IN = ("secret", "email", "card", "phone", "ip")
"""The built-in rules by name, as `--mask` takes them; "default" is all of them."""

MASKED_FIELDS: dict[str, tuple[str, ...]] = {
    "llm_call": ("request", "response", "raw_request", "raw_response", "search_text", "error"),
    "llm_call_update": ("request", "response", "raw_request", "raw_response", "search_text", "error"),
    "agent_run": ("input", "output", "error"),
    "tool_execution": ("arguments", "result", "error"),
    "trace": ("task", "error", "comment"),
    "feedback": ("comment", "correction"),
    "unmapped_span": ("attributes", "events", "error"),
}
"""Per kind of record, the fields that hold what the agent or its users said."""


def redactors_for(names: Sequence[str]) -> list[Redactor]:
    """The rules `mask` settings name: "default" (every built-in rule), a built-in rule's name
    (secret, email, card, phone, ip), or "NAME=REGEX" (your own, replaced by [NAME]). ConfigError
    for anything else, saying what is known."""
    wanted: set[str] = set()
    own: list[str] = []
    for name in names:
        name = name.strip()
        if "=" in name:
            own.append(name)
        elif name.lower() == "default":
            wanted.update(BUILT_IN)
        elif name.lower() in BUILT_IN:
            wanted.add(name.lower())
        elif name:
            raise ConfigError(f"mask {name!r}: not a rule (default, {', '.join(BUILT_IN)}, or NAME=REGEX)")
    config = RedactionConfig(**{kind: kind_name in wanted for kind, kind_name in _CONFIG_NAMES.items()})
    return [*default_redactors(config), *parse_rules(own)] if wanted else parse_rules(own)


_CONFIG_NAMES = {"secrets": "secret", "emails": "email", "cards": "card", "phones": "phone", "ip_addresses": "ip"}


class Masker:
    """Rules (and a user's function of a text, run after them) applied to every string of the
    records the capture writer stores or spills (`MASKED_FIELDS`), in the writer: the agent's own
    call is never touched. `found` counts the replacements per rule."""

    def __init__(self, redactors: Sequence[Redactor], function: Callable[[str], str] | None = None) -> None:
        self.redactors = tuple(redactors)
        self.function = function
        self.found: dict[str, int] = {}

    @classmethod
    def from_settings(cls, names: Sequence[str], function: Callable[[str], str] | None = None) -> Masker | None:
        """The masker of `init(mask=…, mask_function=…)`; None when neither is given."""
        if not names and function is None:
            return None
        return cls(redactors_for(names), function)

    def records(self, records: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        masked = []
        for kind, row in records:
            fields = MASKED_FIELDS.get(kind)
            if fields:
                row = {**row, **{name: self.value(row[name]) for name in fields if row.get(name) is not None}}
            masked.append((kind, row))
        return masked

    def value(self, value: Any) -> Any:
        return map_strings(value, self.text)

    def text(self, text: str) -> str:
        for redactor in self.redactors:
            text, replaced = redactor(text)
            if replaced:
                self.found[redactor.name] = self.found.get(redactor.name, 0) + replaced
        if self.function is not None and text:
            text = self.function(text)
        return text
