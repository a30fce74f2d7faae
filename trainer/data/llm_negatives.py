"""Rejected answers for DPO written by a model: a plausible but wrong tool call for a correct one.

When the user names an OpenAI-compatible endpoint, each correct example (an `Example` ending with
the assistant's tool call) is shown to that model with its tools and conversation, and the model
writes ONE wrong call a careless assistant could have made instead (`INSTRUCTION` says what kind
of mistake: near-miss tools, plausible wrong values, a needed argument left out). The answer is
parsed leniently (prose, code fences, arguments as a string), checked to be a call that differs
from the correct one, and becomes a `Preference` with source and kind "llm". The rule-made kinds
are in `negatives.py`; this module shares its helpers.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_tracer.errors import ConfigError
from agent_tracer.messages import Message
from trainer.data.dedup import row_digest
from trainer.data.negatives import canonical, replaced, unusable
from trainer.data.rows import Example, Preference

if TYPE_CHECKING:
    from openai import OpenAI


@dataclass
class LLMConfig:
    base_url: str = field(metadata={"help": "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."})
    model: str = field(metadata={"help": "Model that writes the wrong tool calls."})
    api_key_env: str | None = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key; None for none."}
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the model."})
    max_tokens: int = field(default=1024, metadata={"help": "Most tokens the model may write per answer."})
    concurrency: int = field(default=4, metadata={"help": "Requests in flight at once."})
    timeout: float = field(default=60.0, metadata={"help": "Seconds per request (the SDK's timeout)."})
    max_retries: int = field(default=2, metadata={"help": "Retries of a failed request (the SDK's backoff)."})
    seed: int = field(default=0, metadata={"help": "Seed of which parallel call is replaced."})

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {self.concurrency}")


@dataclass
class LLMStats:
    examples: int = 0
    made: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    """Examples that gave no preference, by reason ("HTTP 500", "not JSON", "same as the chosen call", …)."""


INSTRUCTION = """\
You write wrong answers for training a tool-calling assistant to avoid its typical mistakes.

You are shown the tools the assistant may call, a conversation, and the correct tool call it made \
next. Write ONE tool call that a capable but careless assistant could plausibly have made instead, \
and that is wrong. Make the mistake subtle and realistic, such as:
- a near-miss tool: another available tool that sounds right for the request but does not do what was asked;
- a wrong but plausible argument value: off by one, the wrong unit or format, a neighbouring date, \
another entity mentioned in the conversation, a value taken from the wrong part of the request;
- an argument the request needed left out, or a value the user never gave guessed or assumed.
Keep everything else as in the correct call, so that the mistake is the only difference. Nothing \
absurd: no random strings, no invented nonsense, no syntax errors. It must not mean the same as the \
correct call.

Answer with only a JSON object, no prose and no code fence:
{"name": "<tool name>", "arguments": {<argument name>: <value>, ...}}"""


def llm_negatives(
    examples: Iterable[Example],
    config: LLMConfig,
    stats: LLMStats | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Preference]:
    """One preference per example whose wrong call the model wrote, in input order.

    Requests run `config.concurrency` at a time through the official `openai` SDK (its timeout and
    retries). A failed request or an unusable answer is counted in `stats.failed` and the run goes
    on. `progress(1)` is called once per example done (`tqdm.update` fits). A missing API key
    raises `ConfigError` at the call, before any example is read."""
    api_key = _api_key(config)
    return _ask_all(examples, config, api_key, stats if stats is not None else LLMStats(), progress)


def _ask_all(
    examples: Iterable[Example],
    config: LLMConfig,
    api_key: str,
    stats: LLMStats,
    progress: Callable[[int], None] | None,
) -> Iterator[Preference]:
    from openai import OpenAI

    client = OpenAI(base_url=config.base_url, api_key=api_key, timeout=config.timeout, max_retries=config.max_retries)
    pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="llm-negatives")
    pending: deque[Future[Preference]] = deque()
    try:
        for example in examples:
            pending.append(pool.submit(_ask, client, example, config))
            if len(pending) >= 2 * config.concurrency:  # bounded: a long stream is not read ahead
                yield from _settle(pending.popleft(), stats, progress)
        while pending:
            yield from _settle(pending.popleft(), stats, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        client.close()


class _Failed(Exception):
    """No preference from this example; the message is the reason, counted."""


def _api_key(config: LLMConfig) -> str:
    if config.api_key_env is None:
        return "none"  # the SDK insists on a key; endpoints without auth ignore it
    key = os.environ.get(config.api_key_env)
    if not key:
        raise ConfigError(f"${config.api_key_env} is not set: it should hold the API key of {config.base_url}")
    return key


def _settle(
    future: Future[Preference], stats: LLMStats, progress: Callable[[int], None] | None
) -> Iterator[Preference]:
    stats.examples += 1
    try:
        preference = future.result()
    except _Failed as why:
        stats.failed[str(why)] += 1
    else:
        stats.made += 1
        yield preference
    finally:
        if progress is not None:
            progress(1)


def _ask(client: OpenAI, example: Example, config: LLMConfig) -> Preference:
    """Runs in the pool: the model's wrong call as a preference, or `_Failed`."""
    import openai

    reason = unusable(example)
    if reason:
        raise _Failed(reason)
    answer = example.messages[-1]
    calls = answer["tool_calls"]
    index = random.Random(f"{config.seed}:{row_digest(example).hex()}").randrange(len(calls))
    try:
        completion = client.chat.completions.create(
            model=config.model,
            messages=_instruction(example, index),  # type: ignore[arg-type]  # chat-format dicts, not the SDK's TypedDicts
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
    except openai.APITimeoutError:
        raise _Failed("timeout") from None
    except openai.APIConnectionError:
        raise _Failed("connection error") from None
    except openai.APIStatusError as error:
        raise _Failed(f"HTTP {error.status_code}") from None
    except openai.APIError as error:
        raise _Failed(f"bad response ({type(error).__name__})") from None
    name, arguments = _parse_call(_answer_text(completion))
    chosen = calls[index]["function"]
    if _normalised(name, arguments) == _normalised(chosen["name"], chosen["arguments"]):
        raise _Failed("same as the chosen call")
    rejected = replaced(answer, index, name, arguments)
    return Preference(
        example.messages[:-1], [answer], [rejected], example.tools, source="llm", kind="llm", trace_id=example.trace_id
    )


def _instruction(example: Example, index: int) -> list[Message]:
    calls = [call["function"] for call in example.messages[-1]["tool_calls"]]
    lines = [
        "Tools:",
        *(json.dumps(tool, ensure_ascii=False) for tool in example.tools),
        "",
        "Conversation:",
        *(json.dumps(m, ensure_ascii=False) for m in example.messages[:-1]),
        "",
    ]
    if len(calls) == 1:
        lines += ["Correct tool call:", _call_json(calls[0])]
    else:
        lines += [
            "Correct tool calls, made together:",
            *(f"{i + 1}. {_call_json(c)}" for i, c in enumerate(calls)),
            "",
            f"Write a wrong call to take the place of call {index + 1} only.",
        ]
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": "\n".join(lines)}]


def _call_json(function: dict[str, Any]) -> str:
    return json.dumps({"name": function["name"], "arguments": function["arguments"]}, ensure_ascii=False)


def _answer_text(completion: Any) -> str:
    """The answer's text; a body that is not a chat completion (the SDK hands back text or a
    lenient model for what it cannot validate) fails."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        raise _Failed("not a chat completion")
    content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
    if not isinstance(content, str) or not content.strip():
        raise _Failed("empty answer")
    return content


def _parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """(name, arguments) from the first JSON object in the text (prose and code fences around it
    are common), whose arguments may also come as a JSON string or under "parameters" (as Llama
    models write calls). A name no tool has is kept: an invented tool is a realistic mistake."""
    decoder = json.JSONDecoder()
    call = None
    for match in re.finditer(r"\{", text):
        try:
            call, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        break
    if call is None:
        raise _Failed("not JSON")
    name = call.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Failed("no tool name")
    arguments = call.get("arguments", call.get("parameters"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise _Failed("arguments are not an object") from None
    if not isinstance(arguments, dict):
        raise _Failed("arguments are not an object")
    return name.strip(), arguments


def _normalised(name: str, arguments: dict[str, Any]) -> str:
    """A call's identity: keys in order, null arguments as good as absent."""
    return canonical([name, {k: v for k, v in arguments.items() if v is not None}])
