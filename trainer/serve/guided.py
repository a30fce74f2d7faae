"""Guided tool calls: once the model opens a `<tool_call>`, what it writes up to `</tool_call>` is
held to the request's tools, so every call it makes parses and fits a tool's schema.

A small model knows *that* it should call and roughly *what*, but slips on the form: a brace too
few, an argument the tool does not have, a number in quotes, a value outside an enum. Constrained
decoding (llguidance, the engine behind OpenAI's structured outputs and vLLM's guided decoding)
removes those slips at the token level: at each step only the tokens that keep the call valid may be
chosen. What the model decides stays its own: whether to call at all (the text before `<tool_call>`
is free), which tool, and the values. The grammar follows the built-in chat template's call format:

    <tool_call>
    {"name": "<one of the tools>", "arguments": {<that tool's parameters, as its JSON schema says>}}
    </tool_call>

with JSON written as the template writes it (`", "` and `": "` separators), the schema's required
parameters present and no parameter the tool lacks. With `tool_choice` "required" (or one named
tool) the answer must open with a call. After `</tool_call>` the model is free again: it may call
once more or end its turn.

A call going round in a loop (the same few tokens again and again inside a value: small models do
this, and the call then runs to the token limit and never closes) loses the token that would
start the loop once more; see `looping`.

Fail open: tools whose schemas llguidance cannot compile are served unguided (counted in
`Guidance.unguided`, logged once per reason), and so is a call the model opens where the template
would not (text other than a newline after `<tool_call>`).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("trainer.serve")

OPEN, CLOSE = "<tool_call>", "</tool_call>"
JSON_STYLE = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False, "lenient": True}
"""How the chat template's `tojson` writes JSON; `lenient` lets schema keywords llguidance does not
enforce (formats, patterns it cannot compile) pass instead of failing the whole grammar."""
CACHED_GRAMMARS = 256
LOOP_PERIOD, LOOP_SPAN = 32, 16
"""A guided call looping: the same run of at most LOOP_PERIOD tokens, over LOOP_SPAN tokens or more."""


@dataclass(frozen=True)
class ToolGrammar:
    """One request's compiled tool-call grammars: `opened`, a call after the model wrote
    `<tool_call>`; `first`, when a call is required, the answer's opening call, tag included."""

    opened: str
    first: str | None = None


PROBE = ' {"name": "café", "arguments": {"n": 1}}\n\tok'
"""Text whose tokens llguidance must read back as its exact bytes: spaces, quotes, newline, tab and
a character of two bytes, the parts of a call a byte mix-up breaks."""


def read_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer as llguidance reads it, checked: its tokens must decode to the bytes the
    model's own tokenizer means. A byte-level BPE whose decoder is a sequence that also has
    ByteFallback (what transformers makes of some GGUF files) is read by llguidance as byte-fallback
    text, 'Ġ' as itself rather than a space, and every guided call then breaks at its first space:
    such a tokenizer is read again with its byte-level decoder alone. `ValueError` when the bytes
    still differ."""
    import llguidance
    import llguidance.hf

    ids = tokenizer.encode(PROBE, add_special_tokens=False)
    read = llguidance.hf.from_tokenizer(tokenizer)
    if read.decode_bytes(ids) == PROBE.encode():
        return read
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    decoders = (spec.get("decoder") or {}).get("decoders") or []
    byte_level = next((decoder for decoder in decoders if decoder.get("type") == "ByteLevel"), None)
    if byte_level is not None:
        spec["decoder"], spec["model"]["byte_fallback"] = byte_level, False
        spec["padding"] = spec["truncation"] = None
        read = llguidance.LLTokenizer(json.dumps(spec), eos_token=tokenizer.eos_token_id)
        if read.decode_bytes(ids) == PROBE.encode():
            return read
    raise ValueError(f"it reads {PROBE!r} back as {bytes(read.decode_bytes(ids))!r}")


class Guidance:
    """The engine's side of guided tool calls: the model's tokenizer as llguidance reads it (built
    once, ~0.3 s) and the grammars of recent tool lists (agents send the same tools every turn)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = read_tokenizer(tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        self.unguided = 0
        """Requests with tools that were served unguided (their schemas did not compile)."""
        self._grammars: OrderedDict[tuple[str, bool], ToolGrammar | None] = OrderedDict()
        self._reasons: set[str] = set()

    @classmethod
    def create(cls, tokenizer: Any) -> Guidance | None:
        """Guidance for this tokenizer, or None (logged) when llguidance is not installed or cannot
        read the tokenizer (it needs a fast one): the server then runs unguided."""
        try:
            return cls(tokenizer)
        except ImportError:
            logger.warning("tool calls are not guided: llguidance is not installed (pip install llguidance)")
        except (ValueError, RuntimeError) as exc:
            logger.warning(
                "tool calls are not guided: llguidance cannot read this tokenizer (%s)",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
        return None

    def grammar(self, tools: list[dict[str, Any]], required: bool) -> ToolGrammar | None:
        """The grammar for a request offering `tools`, None when there are none or it cannot be
        compiled (then the request is served unguided and counted)."""
        if not tools:
            return None
        key = (json.dumps(tools, sort_keys=True), required)
        if key in self._grammars:
            self._grammars.move_to_end(key)
            grammar = self._grammars[key]
        else:
            grammar = self._compile(tools, required)
            self._grammars[key] = grammar
            if len(self._grammars) > CACHED_GRAMMARS:
                self._grammars.popitem(last=False)
        if grammar is None:
            self.unguided += 1
        return grammar

    def matcher(self, grammar: str) -> Any:
        from llguidance import LLMatcher

        return LLMatcher(self.tokenizer, grammar, log_level=0)

    def _compile(self, tools: list[dict[str, Any]], required: bool) -> ToolGrammar | None:
        from llguidance import LLMatcher

        grammars = [
            LLMatcher.grammar_from_lark(call_grammar(tools, opened=opened))
            for opened in ((True, False) if required else (True,))
        ]
        for grammar in grammars:
            error = LLMatcher.validate_grammar(grammar, self.tokenizer)
            if error and not error.startswith("WARNING"):
                reason = error.strip().splitlines()[0][:200]
                if reason not in self._reasons:
                    self._reasons.add(reason)
                    logger.warning(
                        "tool calls for these tools are not guided: their schema does not compile (%s)", reason
                    )
                return None
        return ToolGrammar(*grammars)


def call_grammar(tools: list[dict[str, Any]], *, opened: bool) -> str:
    """The Lark grammar of one call to one of `tools`; `opened`: `<tool_call>` is already written
    (the model opened the call itself), else the grammar writes it first."""
    schema = {"anyOf": [_call_schema(tool["function"]) for tool in tools], "x-guidance": JSON_STYLE}
    head = "" if opened else f"{json.dumps(OPEN)} "
    return f'start: {head}"\\n"? call "\\n" {json.dumps(CLOSE)}\ncall: %json {json.dumps(schema)}\n'


def _call_schema(function: dict[str, Any]) -> dict[str, Any]:
    """`{"name": <this tool's name>, "arguments": <its parameters>}`, name first, as the template
    writes it; the arguments take no parameter the tool does not declare (unless it says otherwise)."""
    parameters = function.get("parameters")
    arguments = dict(parameters) if isinstance(parameters, dict) else {}
    arguments.setdefault("type", "object")
    if arguments.get("type") == "object":
        arguments.setdefault("properties", {})
        arguments.setdefault("additionalProperties", False)
    return {
        "type": "object",
        "properties": {"name": {"const": function.get("name", "")}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


class CallGuide:
    """One answer's guide, fed each token the model writes: free text until the model writes
    `<tool_call>` (or from the start, when a call is required), then the grammar's mask until the
    call is closed."""

    def __init__(self, guidance: Guidance, grammar: ToolGrammar) -> None:
        self.guidance = guidance
        self.grammar = grammar
        self.matcher = guidance.matcher(grammar.first) if grammar.first else None
        self.tail = ""
        """The answer's last characters while free, where `<tool_call>` is looked for."""
        self.written: list[int] = []
        """The last tokens of the call being written (as many as `looping` reads: three times
        LOOP_PERIOD), where a loop is looked for."""

    @property
    def active(self) -> bool:
        return self.matcher is not None

    def allowed(self) -> Any:
        """Which tokens may come next: a numpy array of 0/1, one per entry of the tokenizer's
        vocabulary (llguidance's packed mask unpacked; `llguidance.torch` is not imported, as it
        compiles a kernel with torch.compile on import)."""
        import numpy as np

        assert self.matcher is not None  # callers ask only while `active`
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: self.guidance.vocab_size]
        again = looping(self.written)
        if again is not None and again < len(allowed) and allowed[again] and allowed.sum() > 1:
            allowed[again] = 0
        return allowed

    def advance(self, token: int, text: str) -> None:
        """The model wrote `token`, which decoded to `text` (possibly "" while a character is split)."""
        if self.matcher is not None:
            self.written.append(token)
            if len(self.written) > 3 * LOOP_PERIOD:
                del self.written[0]
            if not self.matcher.consume_token(token) or self.matcher.is_stopped():
                if self.matcher.is_error():
                    logger.warning("a guided tool call went wrong: %s", self.matcher.get_error()[:200])
                self.matcher = None
                self.tail = ""
                self.written = []
            return
        self.tail = (self.tail + text)[-(len(OPEN) + 8) :]
        at = self.tail.find(OPEN)
        if at < 0:
            return
        rest = self.tail[at + len(OPEN) :]
        self.tail = ""
        if rest in ("", "\n"):  # else the model opened the call its own way: leave it be
            self.matcher = self.guidance.matcher(self.grammar.opened)


def looping(tokens: list[int]) -> int | None:
    """The token that would go round a loop once more, when `tokens` end in one: the same run of
    up to `LOOP_PERIOD` tokens, three times or more in a row, over at least `LOOP_SPAN` tokens.

    A small model that starts repeating inside a value ("1234567890" again and again, the same
    list item, a nested copy of the arguments) seldom stops before the token limit, and the call
    never closes. The guide takes that token away (when the grammar allows another), as the DRY
    sampler does, and the model goes on with its next choice, which may close the value (loops whose
    text varies as it repeats go on; BENCHMARKS.md, "Single-call categories only, and the loop
    guard"). A value that really is a long repetition (sixteen equal digits) is cut short; tool
    arguments seldom are."""
    for period in range(1, min(LOOP_PERIOD, len(tokens) // 3) + 1):
        times = max(3, -(-LOOP_SPAN // period))
        if len(tokens) >= period * times and tokens[-period * times :] == tokens[-period:] * times:
            return tokens[-period]
    return None
