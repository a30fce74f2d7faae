"""The server as a client sees it: the official SDK (sync, async, streaming) against the tiny Llama
on loopback, plain answers, tool calls, usage, errors, a full queue, batching and hang-ups."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]},
        },
    }
    for name, field in (("lookup_order", "order_id"), ("get_weather", "city"))
]


def ask(marker: str, question: str = "What is the status of order A-17?") -> list[dict]:
    return [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": f"{question} {marker}".strip()},
    ]


def prompt_tokens(engine, messages, tools=None) -> int:
    tokenizer = engine.tokenizer
    text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_tokens(engine, text: str) -> int:
    return len(engine.tokenizer.encode(text, add_special_tokens=False)) + 1  # and the end token


def streamed(client, **request):
    """(content, tool calls by index, finish_reason, usage, chunks) of a streamed answer."""
    content, calls, finish, usage, chunks = "", {}, None, None, 0
    for chunk in client.chat.completions.create(model="tiny", stream=True, **request):
        chunks += 1
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                calls[call.index] = call
    return content, calls, finish, usage, chunks


def test_a_plain_answer_with_usage_counted_by_the_tokenizer(client, engine, answers):
    messages = ask("[text]")
    reply = client.chat.completions.create(model="anything", messages=messages, temperature=0)
    choice = reply.choices[0]
    assert choice.message.content == answers["[text]"] and choice.finish_reason == "stop"
    assert choice.message.tool_calls is None and reply.model == "tiny" and reply.id.startswith("chatcmpl-")
    assert reply.usage.prompt_tokens == prompt_tokens(engine, messages)
    assert reply.usage.completion_tokens == answer_tokens(engine, answers["[text]"])
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_a_stream_is_the_plain_answer_in_pieces_and_ends_with_done(client, base_url):
    request = dict(messages=ask("", "Tell me about order B-42."), temperature=0, max_tokens=24)
    plain = client.chat.completions.create(model="tiny", **request)
    content, calls, finish, usage, chunks = streamed(client, stream_options={"include_usage": True}, **request)
    assert content == plain.choices[0].message.content and finish == plain.choices[0].finish_reason == "length"
    assert usage == plain.usage and usage.completion_tokens == 24 and not calls
    assert chunks > 5  # token by token, not one lump
    raw = httpx.post(f"{base_url}/chat/completions", json={"model": "tiny", "stream": True, **request}).text
    assert raw.endswith("data: [DONE]\n\n") and '"usage"' not in raw  # usage only when asked for


def test_tool_calls_come_back_as_tool_calls(client):
    reply = client.chat.completions.create(model="tiny", messages=ask("[call]"), tools=TOOLS, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function" and call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order_id": "A-17"}

    content, calls, finish, _, _ = streamed(client, messages=ask("[call]"), tools=TOOLS, temperature=0)
    assert (content, finish, list(calls)) == ("", "tool_calls", [0])
    assert calls[0].function.name == "lookup_order" and json.loads(calls[0].function.arguments) == {"order_id": "A-17"}
    assert calls[0].id.startswith("call_") and calls[0].type == "function"


def test_text_then_two_calls_in_a_stream_and_whole(client):
    request = dict(messages=ask("[two-calls]"), tools=TOOLS, temperature=0)
    message = client.chat.completions.create(model="tiny", **request).choices[0].message
    content, calls, finish, _, _ = streamed(client, **request)
    assert message.content == content == "Let me check." and finish == "tool_calls"
    whole = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    pieces = [(calls[i].function.name, json.loads(calls[i].function.arguments)) for i in sorted(calls)]
    assert whole == pieces == [("lookup_order", {"order_id": "B-42"}), ("get_weather", {"city": "Paris"})]


def test_a_malformed_call_stays_in_the_content_as_written(client, answers):
    request = dict(messages=ask("[broken]"), tools=TOOLS, temperature=0)
    choice = client.chat.completions.create(model="tiny", **request).choices[0]
    assert choice.message.content == answers["[broken]"] and choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    content, calls, finish, _, _ = streamed(client, **request)
    assert (content, calls, finish) == (answers["[broken]"], {}, "stop")


def test_stop_strings_and_token_limits(client, answers):
    request = dict(messages=ask("[text]"), temperature=0, stop=["has", "never"])
    choice = client.chat.completions.create(model="tiny", **request).choices[0]
    assert (choice.message.content, choice.finish_reason) == ("Order A-17 ", "stop")
    assert streamed(client, **request)[:3] == ("Order A-17 ", {}, "stop")
    reply = client.chat.completions.create(model="tiny", messages=ask("[text]"), max_completion_tokens=3)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3
    assert answers["[text]"].startswith(reply.choices[0].message.content)  # forced: sampling cannot stray


def test_seeded_sampling_repeats(client):
    request = dict(model="tiny", messages=ask("", "Where is my parcel?"), temperature=1.0, top_p=0.9, max_tokens=12)
    first, second = (client.chat.completions.create(seed=7, **request).choices[0].message.content for _ in range(2))
    greedy = client.chat.completions.create(**{**request, "temperature": 0}).choices[0].message.content
    assert first == second and first != greedy


async def test_concurrent_requests_are_batched_and_answer_as_one_at_a_time(client, async_client, engine):
    questions = [f"Question {i}: where is order {i}? " + "More words. " * i for i in range(6)]
    requests = [dict(model="tiny", messages=ask("", q), temperature=0, max_tokens=16) for q in questions]
    alone = [client.chat.completions.create(**r).choices[0].message.content for r in requests]
    batches, rows = engine.stats.batches, engine.stats.rows
    together = await asyncio.gather(*(async_client.chat.completions.create(**r) for r in requests))
    assert [reply.choices[0].message.content for reply in together] == alone
    assert engine.stats.rows - rows == 6 and engine.stats.batches - batches <= 3  # left-padded rows, batched


def test_models_and_healthz(client, base_url):
    assert [model.id for model in client.models.list()] == ["tiny"]
    health = httpx.get(base_url.removesuffix("/v1") + "/healthz").json()
    assert health["status"] == "ok" and health["model"] == "tiny" and health["batches"] >= 0
    missing = httpx.get(f"{base_url}/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "The request body must be a JSON object."),
        (b'{"model": "tiny"}', "messages must be a non-empty list of messages."),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', "Unknown role 'robot'"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 2}', "n must be 1"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "has image_url content"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 3}', "temperature must be a number"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}', "max_tokens is 5000"),
    ],
)
def test_bad_requests_get_400_in_openais_error_shape(base_url, body, message):
    response = httpx.post(f"{base_url}/chat/completions", content=body, headers={"content-type": "application/json"})
    error = response.json()["error"]
    assert response.status_code == 400 and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and message in error["message"]
    assert error["message"].endswith(".") and "\n" not in error["message"]  # one sentence


def test_sdk_errors_for_n_and_a_prompt_longer_than_the_context(client):
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="tiny", messages=ask(""), n=2)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="tiny", messages=ask("", "order " * 5000))
    assert raised.value.code == "context_length_exceeded" and "this model's context is 4096 tokens" in str(raised.value)
    assert client.chat.completions.create(model="tiny", messages=ask("[text]")).choices[0].finish_reason == "stop"


def test_a_full_queue_answers_503_with_retry_after(gated):
    url, engine, gate = gated
    client = openai.OpenAI(base_url=url, api_key="sk-none", max_retries=0)
    replies = []

    def ask_in_a_thread() -> threading.Thread:
        thread = threading.Thread(
            target=lambda: replies.append(client.chat.completions.create(model="tiny", messages=ask(""), max_tokens=2))
        )
        thread.start()
        return thread

    first = ask_in_a_thread()
    assert gate.entered.wait(10)  # the first is generating: the batch of one is full
    second = ask_in_a_thread()
    while engine.waiting < 1:  # the second waits: the queue of one is full
        time.sleep(0.01)
    response = httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": ask("")})
    error = response.json()["error"]
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert error["code"] == "queue_full" and error["type"] == "server_error" and "retry" in error["message"]
    gate.release()
    first.join(10), second.join(10)
    assert [reply.usage.completion_tokens for reply in replies] == [2, 2]


def test_a_client_that_hangs_up_stops_its_generation(base_url, engine):
    before = engine.stats.cancelled
    request = {
        "model": "tiny",
        "messages": ask("", "Tell me everything."),
        "temperature": 0,
        "max_tokens": 3000,
        "stream": True,
    }
    with httpx.stream("POST", f"{base_url}/chat/completions", json=request) as response:
        next(response.iter_lines())  # the first event: generating
    with pytest.raises(httpx.ReadTimeout):  # a plain answer whose client gives up waiting
        httpx.post(f"{base_url}/chat/completions", json={**request, "stream": False}, timeout=0.5)
    deadline = time.monotonic() + 5
    while (engine.stats.cancelled < before + 2 or engine.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.stats.cancelled == before + 2 and engine.running == 0
