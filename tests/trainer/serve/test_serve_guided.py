"""Guided tool calls as a client sees them: the tiny Llama (random weights: left alone it writes
gibberish) is made to open a `<tool_call>`, and from there the guide alone keeps its call valid, for
every seed; tool_choice "required" and a named tool make it call; a schema llguidance cannot compile
is served unguided and counted; a call going round in a loop is steered out of it."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from trainer.serve import Engine, create_app, running
from trainer.serve.guided import LOOP_PERIOD, LOOP_SPAN, CallGuide, Guidance, call_grammar

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "An order's status.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_thermostat",
            "parameters": {
                "type": "object",
                "properties": {
                    "degrees": {"type": "integer"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["degrees", "unit"],
            },
        },
    },
]
CLOSED_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "set_mode",
            "parameters": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["eco", "boost", "off"]},
                    "confirm": {"type": "boolean"},
                },
                "required": ["mode"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lights",
            "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
        },
    },
]
"""Tools whose every argument has a few possible values, so even a random model's call ends (its
strings and numbers could otherwise run on to the token limit)."""
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS + CLOSED_TOOLS}
OPEN_MARKER = "[open]"


class OpenACall:
    """A logits processor: a row whose prompt holds `[open]` is made to write `<tool_call>\\n` and is
    then left to the (random) model, as a model that has learnt to open calls but not to write them."""

    def __init__(self, tokenizer) -> None:
        self.opening = tokenizer.encode("<tool_call>\n", add_special_tokens=False)
        self.marker = tokenizer.encode(OPEN_MARKER, add_special_tokens=False)
        self.header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)

    def __call__(self, input_ids, scores):
        for index, row in enumerate(input_ids.tolist()):
            start = max(i + len(self.header) for i in range(len(row)) if row[i : i + len(self.header)] == self.header)
            written = len(row) - start
            if written < len(self.opening) and _holds(row[:start], self.marker):
                scores[index] = float("-inf")
                scores[index, self.opening[written]] = 0.0
        return scores


def _holds(row: list[int], part: list[int]) -> bool:
    return any(row[i : i + len(part)] == part for i in range(len(row) - len(part) + 1))


@pytest.fixture(scope="module")
def guided(tiny_model_dir):
    """(client, base URL, engine) of the tiny Llama served guided, made to open calls on `[open]`."""
    from trainer.models import load_tokenizer

    engine = Engine.load(
        tiny_model_dir,
        device="cpu",
        max_batch=8,
        default_max_tokens=160,
        logits_processors=[OpenACall(load_tokenizer(tiny_model_dir))],
    )
    assert engine.guidance is not None
    with running(create_app(engine, "tiny")) as url:
        yield openai.OpenAI(base_url=url, api_key="sk-none", max_retries=0), url, engine


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assert_valid(call) -> None:
    """A call to one of TOOLS whose arguments are valid by that tool's schema, nothing more."""
    schema = {**SCHEMAS[call.function.name], "additionalProperties": False}
    jsonschema.validate(json.loads(call.function.arguments), schema)


@pytest.mark.parametrize("seed", range(6))
def test_a_call_the_model_opens_is_held_to_the_tools(guided, seed):
    client, _, _ = guided
    reply = client.chat.completions.create(
        model="tiny",
        messages=ask(f"Save energy. {OPEN_MARKER}"),
        tools=CLOSED_TOOLS,
        temperature=1.0,
        seed=seed,
        max_tokens=160,
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls, choice.message.content  # a random model's call, and still it parses
    for call in choice.message.tool_calls:
        assert_valid(call)


def test_unguided_the_same_model_writes_no_valid_call(tiny_model_dir):
    """The control: without the guide, the random model's opened calls do not parse."""
    from trainer.models import load_tokenizer

    engine = Engine.load(
        tiny_model_dir,
        device="cpu",
        default_max_tokens=160,
        guide_tool_calls=False,
        logits_processors=[OpenACall(load_tokenizer(tiny_model_dir))],
    )
    with running(create_app(engine, "tiny")) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-none", max_retries=0)
        replies = [
            client.chat.completions.create(
                model="tiny",
                messages=ask(f"Save energy. {OPEN_MARKER}"),
                tools=CLOSED_TOOLS,
                temperature=1.0,
                seed=seed,
                max_tokens=160,
            )
            for seed in range(3)
        ]
    assert all(reply.choices[0].message.tool_calls is None for reply in replies)
    assert all(reply.choices[0].message.content.startswith("<tool_call>") for reply in replies)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_required_and_named_make_the_model_call(guided, stream):
    client, _, _ = guided
    for choice, names in (
        ("required", {"lookup_order", "set_thermostat"}),
        ({"type": "function", "function": {"name": "set_thermostat"}}, {"set_thermostat"}),
    ):
        request = dict(
            model="tiny",
            messages=ask("Make it warmer."),
            tools=TOOLS,
            tool_choice=choice,
            temperature=0.8,
            seed=1,
            max_tokens=120,
        )
        if stream:
            calls = {}
            for chunk in client.chat.completions.create(stream=True, **request):
                for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                    calls.setdefault(delta.index, delta)
            first = calls[0]
        else:
            first = client.chat.completions.create(**request).choices[0].message.tool_calls[0]
        assert first.function.name in names
        assert_valid(first)


def test_tool_choice_naming_an_unknown_tool_is_a_400(guided):
    client, _, _ = guided
    with pytest.raises(openai.BadRequestError, match="tool_choice names 'cancel_order', which is not among the tools"):
        client.chat.completions.create(
            model="tiny",
            messages=ask("Cancel it."),
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "cancel_order"}},
        )


def test_a_schema_that_does_not_compile_is_served_unguided_and_counted(guided):
    client, url, engine = guided
    odd = [
        {
            "type": "function",
            "function": {
                "name": "odd",
                "parameters": {"type": "object", "properties": {"code": {"type": "string", "pattern": "(?<=a)b"}}},
            },
        }
    ]
    before = httpx.get(url.removesuffix("/v1") + "/healthz").json()["unguided"]
    reply = client.chat.completions.create(
        model="tiny", messages=ask(f"Go. {OPEN_MARKER}"), tools=odd, temperature=0, max_tokens=20
    )
    assert reply.choices[0].message.content.startswith("<tool_call>")  # answered all the same, unguided
    health = httpx.get(url.removesuffix("/v1") + "/healthz").json()
    assert health["guided_tool_calls"] is True and health["unguided"] == before + 1


THERMOSTAT_CALL = '\n{"name": "set_thermostat", "arguments": {"degrees": 21, "unit": "celsius"}}\n</tool_call>'


def acceptor(tokenizer):
    """Whether the guide for TOOLS takes a text, fed token by token after `<tool_call>`."""
    from llguidance import LLMatcher

    guidance = Guidance(tokenizer)

    def accepted(text: str) -> bool:
        matcher = LLMatcher(guidance.tokenizer, LLMatcher.grammar_from_lark(call_grammar(TOOLS, opened=True)))
        return matcher.consume_tokens(tokenizer.encode(text, add_special_tokens=False)) and matcher.is_accepting()

    return accepted


def test_the_grammar_takes_the_templates_own_call_and_refuses_what_the_tools_lack(tiny_tokenizer):
    """Token by token: the built-in template's rendering of a call is allowed at every step, and
    the guide refuses an argument the tool lacks, a quoted integer and a value outside the enum."""
    accepted = acceptor(tiny_tokenizer)
    assert accepted(THERMOSTAT_CALL)
    assert accepted('\n{"name": "lookup_order", "arguments": {"order_id": "A-17"}}\n</tool_call>')
    for wrong in (
        '{"name": "cancel_order", "arguments": {}}',
        '{"name": "lookup_order", "arguments": {}}',
        '{"name": "lookup_order", "arguments": {"order_id": "A", "reason": "late"}}',
        '{"name": "set_thermostat", "arguments": {"degrees": "21", "unit": "celsius"}}',
        '{"name": "set_thermostat", "arguments": {"degrees": 21, "unit": "kelvin"}}',
    ):
        assert not accepted(f"\n{wrong}\n</tool_call>"), wrong


def with_decoder(tokenizer, decoders: list[dict]):
    """The tokenizer with its byte-level decoder replaced by a sequence of `decoders`, and byte
    fallback on: what transformers makes of a byte-level BPE read from a GGUF file."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec["decoder"], spec["model"]["byte_fallback"] = {"type": "Sequence", "decoders": decoders}, True
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token=tokenizer.eos_token,
        pad_token=tokenizer.pad_token,
    )


GGUF_DECODERS = [
    {"type": "ByteFallback"},
    {"type": "Fuse"},
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
]


def test_a_byte_level_tokenizer_with_a_byte_fallback_decoder_is_guided_all_the_same(tiny_tokenizer):
    """SmolLM2's tokenizer as transformers 5.17 reads it from the GGUF file: llguidance took its
    'Ġ' for itself rather than a space, and every guided call broke at its first space."""
    tokenizer = with_decoder(tiny_tokenizer, GGUF_DECODERS)
    assert tokenizer.decode(tokenizer.encode(THERMOSTAT_CALL, add_special_tokens=False)) == THERMOSTAT_CALL
    accepted = acceptor(tokenizer)
    assert accepted(THERMOSTAT_CALL)
    assert not accepted(THERMOSTAT_CALL.replace("21", '"21"'))


def test_a_tokenizer_llguidance_misreads_is_served_unguided_with_the_reason(tiny_tokenizer, caplog):
    tokenizer = with_decoder(tiny_tokenizer, GGUF_DECODERS[:2])  # no byte-level decoder to read it with
    with caplog.at_level("WARNING", logger="trainer.serve"):
        assert Guidance.create(tokenizer) is None
    assert 'tool calls are not guided: llguidance cannot read this tokenizer (it reads \' {"name"' in caplog.text


def test_a_call_going_round_in_a_loop_is_steered_out_of_it(tiny_tokenizer):
    """A small model that starts repeating inside a value ("12345" over and over) runs to the token
    limit and its call never closes. Once the same tokens have come round over LOOP_SPAN tokens,
    the one that would start them again is taken away; the model may still close the value, or
    write anything else the grammar allows, and the loop's token is back once the loop is broken."""
    guidance = Guidance(tiny_tokenizer)
    guide = CallGuide(guidance, guidance.grammar(TOOLS, required=False))

    def write(text: str) -> None:
        for token in tiny_tokenizer.encode(text, add_special_tokens=False):
            guide.advance(token, tiny_tokenizer.decode([token]))

    write('<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "')
    assert guide.active
    one, two, quote, other = (tiny_tokenizer.encode(text, add_special_tokens=False) for text in ("1", "2345", '"', "9"))
    assert tiny_tokenizer.encode("12345", add_special_tokens=False) == one + two  # two tokens a round
    rounds = LOOP_SPAN // 2
    write("12345" * (rounds - 1))
    assert guide.allowed()[one[0]] == 1  # 14 tokens of repetition: a value may do that
    write("12345")
    allowed = guide.allowed()
    assert allowed[one[0]] == 0 and allowed[quote[0]] == 1 and allowed[other[0]] == 1
    write("9")
    assert guide.allowed()[one[0]] == 1
    write("12345" * 100)  # a long call keeps only what a loop is looked for in, and still finds it
    assert len(guide.written) == 3 * LOOP_PERIOD and guide.allowed()[one[0]] == 0
    write('"}}\n</tool_call>')
    assert not guide.active and guide.written == []
