"""Fixtures for the store tests: a store on each kind of database (see tests/conftest.py), and record builders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from agent_tracer.store import TraceStore

T0 = datetime(2024, 5, 1, 10, 0, 0)


@pytest.fixture
def store(store_url: str) -> Iterator[TraceStore]:
    trace_store = TraceStore(store_url)
    yield trace_store
    trace_store.close()


class Records:
    """Builders for store records, in the shapes the exporter writes (a fixture: `rec`)."""

    T0 = T0

    @staticmethod
    def at(seconds: float, start: datetime = T0) -> datetime:
        return start + timedelta(seconds=seconds)

    @staticmethod
    def trace_id(n: int) -> str:
        return f"{n:032x}"

    @staticmethod
    def span_id(n: int) -> str:
        return f"{n:016x}"

    def trace(self, n: int, *, start: float = 0.0, **fields: Any) -> tuple[str, dict[str, Any]]:
        row = {
            "id": self.trace_id(n),
            "name": "agent",
            "started_at": self.at(start),
            "ended_at": self.at(start + 1),
            "status": "ok",
            "source": "decorator",
            **fields,
        }
        return "trace", row

    def call(
        self,
        n: int,
        trace: str,
        *,
        model: str = "gpt-4o-mini",
        tool_calls: bool = False,
        start: float = 0.0,
        **fields: Any,
    ) -> tuple[str, dict[str, Any]]:
        message: dict[str, Any] = {"role": "assistant", "content": f"answer {n}"}
        if tool_calls:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{n}",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
        row = {
            "id": self.span_id(n),
            "trace_id": trace,
            "provider": "openai",
            "api": "openai.chat",
            "operation": "chat",
            "request_model": model,
            "response_model": f"{model}-2024",
            "request": {
                "model": model,
                "messages": [{"role": "user", "content": f"question {n}"}],
                "tools": [],
                "params": {},
                "stream": False,
            },
            "response": {
                "id": f"resp_{n}",
                "model": f"{model}-2024",
                "message": message,
                "finish_reasons": ["tool_calls" if tool_calls else "stop"],
                "input_tokens": 10,
                "output_tokens": 5,
            },
            "input_tokens": 10,
            "output_tokens": 5,
            "latency_ms": 100.0 + n,
            "started_at": self.at(start),
            "ended_at": self.at(start + 0.1),
            **fields,
        }
        return "llm_call", row


@pytest.fixture
def rec() -> Records:
    return Records()
