"""Serving fixtures: the tiny Llama behind a real server on loopback, with a logits processor that
makes it write known answers (a random model writes no tool calls of its own), and the official
SDK pointed at it."""

from __future__ import annotations

import functools
import threading

import openai
import pytest

from trainer.serve import Engine, create_app, running

ANSWERS = {
    "[text]": "Order A-17 has shipped.",
    "[call]": '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-17"}}\n</tool_call>',
    "[two-calls]": 'Let me check.\n<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "B-42"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "[broken]": '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": }\n</tool_call>',
}
"""A marker in the conversation → the answer the model is made to write."""


class ForceAnswers:
    """A logits processor (given to the engine as `logits_processors`): a row whose prompt holds
    one of `ANSWERS`' markers gets that answer's tokens, one a step, then the end token; other rows
    are left to the model. Stateless: where the answer begins is found in the row itself (after
    the last `<|im_start|>assistant\\n`), so it holds in any batch, padded or not."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self.answers = {
            marker: tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
            for marker, text in ANSWERS.items()
        }

    def __call__(self, input_ids, scores):
        for index, row in enumerate(input_ids.tolist()):
            start = self._answer_start(row)
            answer = self._answer(tuple(row[:start]))
            written = len(row) - start
            if answer is not None and written < len(answer):
                scores[index] = float("-inf")
                scores[index, answer[written]] = 0.0
        return scores

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one instance, for the session)
    def _answer(self, prompt: tuple[int, ...]) -> list[int] | None:
        text = self.tokenizer.decode(prompt)
        return next((ids for marker, ids in self.answers.items() if marker in text), None)

    def _answer_start(self, row: list[int]) -> int:
        width = len(self.header)
        return max(i + width for i in range(len(row) - width + 1) if row[i : i + width] == self.header)


class Gate:
    """A logits processor that holds generation until `release()`: requests pile up behind it."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()

    def __call__(self, input_ids, scores):
        self.entered.set()
        self.opened.wait(10)
        return scores

    def release(self) -> None:
        self.opened.set()


@pytest.fixture(scope="session")
def engine(tiny_model_dir):
    """The tiny Llama loaded as `agent-tracer serve` loads a model, made to write `ANSWERS`:
    unguided, since a guided engine would never let the broken call through (test_serve_guided.py)."""
    from trainer.models import load_tokenizer

    return Engine.load(
        tiny_model_dir,
        device="cpu",
        max_batch=8,
        default_max_tokens=256,
        logits_processors=[ForceAnswers(load_tokenizer(tiny_model_dir))],
        guide_tool_calls=False,
    )


@pytest.fixture(scope="session")
def base_url(engine):
    with running(create_app(engine, "tiny")) as url:
        yield url


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="sk-none", max_retries=0)


@pytest.fixture
def async_client(base_url):
    return openai.AsyncOpenAI(base_url=base_url, api_key="sk-none", max_retries=0)


@pytest.fixture
def answers():
    return ANSWERS


@pytest.fixture
def gated(tiny_model_dir):
    """(base URL, engine, gate) of a server with a batch of one and a queue of one, whose
    generation waits for `gate.release()`."""
    gate = Gate()
    engine = Engine.load(tiny_model_dir, device="cpu", max_batch=1, max_queue=1, logits_processors=[gate])
    try:
        with running(create_app(engine, "tiny")) as url:
            yield url, engine, gate
    finally:
        gate.release()
