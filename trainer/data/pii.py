"""Personal data and secrets out of the training rows: what a fine-tuned model must never learn to say.

Every string a model sees is redacted: each message's content (system, user, assistant, tool
results) and every string inside tool-call arguments, however deeply nested. What a rule finds
becomes a typed placeholder, so the model still learns that an email address goes there:

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
kinds a `RedactionConfig` turns off; users append their own rules (`parse_rules`: "NAME=REGEX",
as `agent-tracer dataset … --redact-rule` takes them).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from agent_tracer.errors import ConfigError
from agent_tracer.messages import Message
from agent_tracer.redact import KEY_PATTERN, has_secret
from trainer.data.rows import Example
from trainer.data.summary import Step


class Redactor(Protocol):
    """A named rule: text in, (redacted text, replacements made) out."""

    name: str

    def __call__(self, text: str) -> tuple[str, int]: ...


class RegexRule:
    """Replaces every match of `pattern` with `placeholder`. `check(match_text)`, when given,
    keeps the matches it rejects; `hint(text)`, when given, is a cheap test that must be true
    for the pattern to match anywhere in the text (else the regex is not run)."""

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

    def __call__(self, text: str) -> tuple[str, int]:
        if self.hint is not None and not self.hint(text):
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
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+(?:\d[ .()-]{0,2}){7,14}\d"  # international: + and 8-15 digits
    r"|(?:1[ .-])?(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([ .-])\d{3}\1\d{4})"  # North American
    r")(?![\w-])"
)
IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")  # octets checked by `ipaddress`
_CACHED_TEXTS = 256
_CACHED_LENGTH = 16_384


def _has_digit(text: str) -> bool:
    """The hint of the card rule: ten substring tests take a tenth of one regex scan."""
    return any(map(text.__contains__, "0123456789"))


# Hints for the costlier rules: shapes every match contains, as patterns that open with a literal
# or a character class, which the regex engine scans for quickly (the full patterns open with
# look-behinds, tried at every position). Dates and ids (2025-06-03, A-10293) do not pass them.
_PHONE_SHAPED = re.compile(r"\+\d|\(\d{3}\)|\d{3}[ .-]\d{3}")
_DOTTED_QUAD = re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d")


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
        (config.cards, RegexRule("card", CARD, "[CARD]", check=_card_number, hint=_has_digit)),
        (config.phones, RegexRule("phone", PHONE, "[PHONE]", hint=lambda text: bool(_PHONE_SHAPED.search(text)))),
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


def redaction(rules: Sequence[str], counts: Step) -> Redaction:
    """The built-in rules, then the user's own (`parse_rules`), counted into `counts`."""
    return Redaction([*default_redactors(), *parse_rules(rules)], counts)


class Redaction:
    """Streams examples with every redactor applied to every string a model sees; an example
    nothing was found in passes through as the same object.

    `counts.reasons` holds the replacements per rule name and "rows changed". The last
    `_CACHED_TEXTS` distinct texts (of at most `_CACHED_LENGTH` characters, so the cache stays a
    few MB) and what was found in them are remembered: an agent's system prompt, often the
    longest text of an example, is the same in every one of them."""

    def __init__(self, redactors: Sequence[Redactor] | None = None, counts: Step | None = None) -> None:
        self.redactors = tuple(redactors) if redactors is not None else tuple(default_redactors())
        self.counts = counts if counts is not None else Step("redact")
        self._replaced = 0
        self._cached = functools.lru_cache(maxsize=_CACHED_TEXTS)(self._apply_all)

    def __call__(self, examples: Iterable[Example]) -> Iterator[Example]:
        for example in examples:
            self.counts.rows_in += 1
            self.counts.rows_out += 1
            yield self.example(example)

    def example(self, example: Example) -> Example:
        before = self._replaced
        messages = [self._message(message) for message in example.messages]
        if self._replaced == before:
            return example
        self.counts.reasons["rows changed"] += 1
        return replace(example, messages=messages)

    def text(self, text: str) -> str:
        if not text:
            return text
        text, found = (self._cached if len(text) <= _CACHED_LENGTH else self._apply_all)(text)
        for name, replaced in found:
            self.counts.reasons[name] += replaced
            self._replaced += replaced
        return text

    def _apply_all(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        found = []
        for redactor in self.redactors:
            text, replaced = redactor(text)
            if replaced:
                found.append((redactor.name, replaced))
        return text, tuple(found)

    def _message(self, message: Message) -> Message:
        redacted = {**message, "content": self.text(message["content"])}
        if message.get("tool_calls"):
            redacted["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": self._value(call["function"]["arguments"])}}
                for call in message["tool_calls"]
            ]
        return redacted

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(item) for item in value]
        return value
