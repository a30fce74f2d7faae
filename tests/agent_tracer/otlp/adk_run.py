"""The two-tool loop as a Google ADK `LlmAgent` on Gemini, its own GenAI spans exported by the real
OTLP (protobuf) exporter from the global TracerProvider, as an ADK user sets it up (see
`test_google_adk_spans_over_otlp`): python adk_run.py GEMINI_BASE_URL OTLP_TRACES_URL NAME.
Prints the trace id."""

from __future__ import annotations

import asyncio
import os
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otlp_loop import QUESTION, SYSTEM, get_time, get_weather


def main(base_url: str, traces_url: str, name: str) -> None:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"  # ADK's content switch
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    trace.set_tracer_provider(provider)

    from google.adk.agents import LlmAgent
    from google.adk.models import Gemini
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    seen: list[str] = []

    def weather(city: str) -> dict:
        """The weather in a city."""
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return get_weather(city)

    def local_time(city: str) -> dict:
        """The local time in a city."""
        return get_time(city)

    weather.__name__, local_time.__name__ = "get_weather", "get_time"
    agent = LlmAgent(
        name=name,
        model=Gemini(model="gemini-2.0-flash", base_url=base_url),
        instruction=SYSTEM,
        tools=[weather, local_time],
    )

    async def run() -> None:
        runner = InMemoryRunner(agent=agent, app_name="weather-app")
        session = await runner.session_service.create_session(app_name="weather-app", user_id="user")
        message = types.Content(role="user", parts=[types.Part(text=QUESTION)])
        async for _ in runner.run_async(user_id="user", session_id=session.id, new_message=message):
            pass

    asyncio.run(run())
    provider.shutdown()  # exports what the processor holds
    print(seen[0])


if __name__ == "__main__":
    main(*sys.argv[1:4])
