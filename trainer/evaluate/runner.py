"""Sending every case to every endpoint: async, a bounded number in flight per endpoint, streamed.

Each request streams (`stream_options.include_usage` for the token counts), so the time to the
first token is measured where the user feels it: the first chunk that carries text or a tool call.
Latency is the whole request, from sending to the last chunk. Concurrency is per endpoint, so a
slow endpoint neither starves nor is flattered by the others.

Failures stay in their rows. A request that fails is a row with status "error" and the reason; an
endpoint that refuses connections `RunConfig.down_after` times in a row (or whose model cannot be
found out) is marked down, and its remaining rows fail at once with that reason instead of each
waiting out its timeout, while the other endpoints finish. The reason never holds the API key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from agent_tracer.console import OrNone
from agent_tracer.endpoints import PLACEHOLDER_KEY, Endpoint, safe_name
from trainer.evaluate.cases import Case
from trainer.evaluate.endpoints import price_of
from trainer.evaluate.grade import Grade, Reply, grade


@dataclass
class RunConfig:
    """How an evaluation sends its requests; `agent-tracer eval` makes an option of each field."""

    concurrency: int = field(
        default=4, metadata={"help": "Requests in flight per endpoint.", "type": click.IntRange(min=1)}
    )
    temperature: float | None = field(
        default=0.0,
        metadata={
            "help": "Sampling temperature sent with each request (none: the server's default).",
            "type": OrNone(click.FloatRange(min=0)),
        },
    )
    max_tokens: int | None = field(
        default=None,
        metadata={"help": "Most tokens an answer may have (default: the server's).", "type": click.IntRange(min=1)},
    )
    timeout: float = field(
        default=120.0,
        metadata={"help": "Seconds a request may take.", "type": click.FloatRange(min=0, min_open=True)},
    )
    retries: int = field(
        default=1,
        metadata={
            "help": "Retries of a request that failed to connect or got 429/5xx.",
            "type": click.IntRange(min=0),
        },
    )
    down_after: int = field(
        default=3,
        metadata={
            "help": "Connection failures in a row after which an endpoint is taken as down.",
            "type": click.IntRange(min=1),
        },
    )


@dataclass
class Row:
    """One case × one endpoint: the answer, its grade, its timings, tokens and cost."""

    case_id: str
    endpoint: str
    model: str | None
    status: str = "ok"
    """"ok", or "error" (the request failed, or the endpoint was down): `error` says why."""
    error: str | None = None
    reply: Reply | None = None
    grade: Grade | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    """US dollars for this request, where the model's price is known."""

    @property
    def success(self) -> bool:
        return self.grade is not None and self.grade.success

    def to_dict(self) -> dict[str, Any]:
        out = {key: value for key, value in vars(self).items() if key not in ("reply", "grade")}
        out["reply"] = self.reply.to_dict() if self.reply is not None else None
        out["grade"] = self.grade.to_dict() if self.grade is not None else None
        return out


class Target:
    """An endpoint while it is being evaluated: its client, its slots, whether it is down."""

    def __init__(self, endpoint: Endpoint, config: RunConfig, prices: dict[str, tuple[float, float]]) -> None:
        from openai import AsyncOpenAI

        self.endpoint = endpoint
        self.key = endpoint.api_key()
        self.client = AsyncOpenAI(
            base_url=endpoint.url, api_key=self.key, timeout=config.timeout, max_retries=config.retries
        )
        self.slots = asyncio.Semaphore(config.concurrency)
        self.prices = prices
        self.model = endpoint.model
        self.price: tuple[float, float] | None = None
        self.resolved = False
        self.down: str | None = None
        self.failures_in_a_row = 0
        self.down_after = config.down_after
        self._resolved = asyncio.Lock()

    async def resolve(self) -> None:
        """Find the model (the server's first, when none was given) and its price, once."""
        from openai import OpenAIError

        async with self._resolved:
            if self.resolved:
                return
            self.resolved = True
            if self.model is None:
                try:
                    page = await self.client.models.list()
                    self.model = page.data[0].id
                except (OpenAIError, IndexError) as exc:
                    self.down = f"no model given and GET /models failed: {self.clean(exc)}"
                    return
            self.price = price_of(self.endpoint, self.model, self.prices)

    def clean(self, exc: BaseException) -> str:
        """An exception as one line, without the API key."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text.replace(self.key, "***") if self.key != PLACEHOLDER_KEY else text


async def run_cases(
    cases: Sequence[Case],
    endpoints: Sequence[Endpoint],
    config: RunConfig,
    prices: dict[str, tuple[float, float]],
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every case against every endpoint; the rows in case order, endpoints in the order given."""
    targets = [Target(endpoint, config, prices) for endpoint in endpoints]
    try:

        async def one(case: Case, target: Target) -> Row:
            row = await _ask(case, target, config)
            if on_row is not None:
                on_row(row)
            return row

        return list(await asyncio.gather(*(one(case, target) for case in cases for target in targets)))
    finally:
        for target in targets:
            await target.client.close()


async def _ask(case: Case, target: Target, config: RunConfig) -> Row:
    from openai import APIConnectionError, OpenAIError

    async with target.slots:
        await target.resolve()
        row = Row(case.id, target.endpoint.name, target.model)
        if target.down is not None:
            row.status, row.error = "error", f"endpoint down: {target.down}"
            return row
        try:
            reply = await _stream(case, target, config, row)
        except APIConnectionError as exc:  # refused, reset, timed out: the endpoint may be down
            target.failures_in_a_row += 1
            row.status, row.error = "error", target.clean(exc)
            if target.failures_in_a_row >= target.down_after:
                target.down = f"{target.failures_in_a_row} connection failures in a row, the last: {row.error}"
            return row
        except OpenAIError as exc:
            row.status, row.error = "error", target.clean(exc)
            return row
        target.failures_in_a_row = 0
    row.reply = reply
    row.grade = grade(case, reply)
    if target.price is not None and row.input_tokens is not None and row.output_tokens is not None:
        row.cost = row.input_tokens / 1000 * target.price[0] + row.output_tokens / 1000 * target.price[1]
    return row


async def _stream(case: Case, target: Target, config: RunConfig, row: Row) -> Reply:
    """Send the case streamed; fill in the row's timings and tokens; the reply, names read back."""
    names = {safe_name(tool["function"]["name"]): tool["function"]["name"] for tool in case.tools}
    request: dict[str, Any] = {
        "model": target.model,
        "messages": case.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if case.tools:
        request["tools"] = case.tools
    if target.endpoint.safe_names:
        request["messages"], request["tools"] = _safe_names(case)
    if config.temperature is not None:
        request["temperature"] = config.temperature
    if config.max_tokens is not None:
        request["max_tokens"] = config.max_tokens
    content: list[str] = []
    calls: dict[int, list[str]] = {}  # index → [name, arguments]
    started = time.perf_counter()
    stream = await target.client.chat.completions.create(**request)
    async for chunk in stream:
        if chunk.usage is not None:
            row.input_tokens, row.output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            if row.ttft_ms is None and (delta.content or delta.tool_calls):
                row.ttft_ms = (time.perf_counter() - started) * 1000
            if delta.content:
                content.append(delta.content)
            for call in delta.tool_calls or ():
                slot = calls.setdefault(call.index, ["", ""])
                if call.function is not None:
                    slot[0] += call.function.name or ""
                    slot[1] += call.function.arguments or ""
    row.latency_ms = (time.perf_counter() - started) * 1000
    made = [
        (names.get(name, name) if target.endpoint.safe_names else name, arguments)
        for name, arguments in (calls[index] for index in sorted(calls))
    ]
    return Reply.from_message("".join(content), made)


def _safe_names(case: Case) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The case's messages and tools with tool names OpenAI accepts (see `Endpoint.safe_names`)."""
    tools = [
        {**tool, "function": {**tool["function"], "name": safe_name(tool["function"]["name"])}} for tool in case.tools
    ]
    messages = []
    for message in case.messages:
        if message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {**call, "function": {**call["function"], "name": safe_name(call["function"]["name"])}}
                    for call in message["tool_calls"]
                ],
            }
        if message.get("role") == "tool" and message.get("name"):
            message = {**message, "name": safe_name(message["name"])}
        messages.append(message)
    return messages, tools
