"""OpenAI fine-tuning JSONL: `{"messages": [...], "tools": [...], "parallel_tool_calls": …}` a line.

A line is a Chat Completions request body with the answer as its last message, so it is decoded by
the Chat Completions codec, as a captured request is: legacy `functions` / `function_call` become
`tools` / `tool_calls`, `parallel_tool_calls` goes to the request's params, and an optional `model`
is kept. Tool-call arguments are JSON strings there, as in the store. This is also the format
`agent-tracer traces export --format openai-jsonl` writes, so an export imports back unchanged.
"""

from __future__ import annotations

from typing import Any

from agent_tracer.formats.examples import Example, content_key
from agent_tracer.formats.imports import ExampleReader, ImportOptions, example_object, existing_file
from integrations.openai_chat import OpenAIChatCodec

FORMAT = "openai-jsonl"
_codec = OpenAIChatCodec()


def open_openai_jsonl(file: str, options: ImportOptions) -> ExampleReader:
    path = existing_file(file)

    def parse(item: Any, number: int, line: str) -> Example:
        body = example_object(item, "messages")
        request = _codec.decode_request(body)
        meta = {"format": FORMAT, "file": path.name, "line": number}
        return Example(
            key=content_key(FORMAT, body),
            messages=request.messages,
            tools=request.tools,
            name=path.stem,
            tags=[FORMAT],
            meta=meta,
            model=request.model,
            params=request.params,
            raw_request=line.strip(),
        )

    return ExampleReader(path, parse, options)
