"""The two-tool loop under Traceloop's OpenAI instrumentation, in a process of its own (see
`test_traceloop_openai_spans`): python traceloop_run.py OPENAI_BASE_URL OTLP_TRACES_URL NAME.
Prints the trace id; the spans go to the OTLP endpoint."""

from __future__ import annotations

import sys

import openai
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from otlp_loop import genai_spans_loop, otlp_provider


def main(base_url: str, traces_url: str, name: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    with otlp_provider(traces_url) as provider:
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        print(genai_spans_loop(provider.get_tracer(__name__), client, name))


if __name__ == "__main__":
    main(*sys.argv[1:4])
