"""The two-tool loop under the Traceloop SDK itself (`traceloop-sdk`): `Traceloop.init` with its
OpenAI instrumentation, the agent an `@agent` function and each tool a `@tool` function, exported
by the real OTLP (protobuf) exporter. Run in a process of its own with the SDK on its path (see
`test_traceloop_sdk_decorators`): python traceloop_sdk_run.py OPENAI_BASE_URL OTLP_TRACES_URL NAME
USER. Prints the trace id."""

from __future__ import annotations

import sys

import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from otlp_loop import QUESTION, TOOL_FUNCTIONS, agent_loop
from traceloop.sdk import Traceloop
from traceloop.sdk.associations.associations import AssociationProperty, Associations
from traceloop.sdk.decorators import agent, tool
from traceloop.sdk.instruments import Instruments


def main(base_url: str, traces_url: str, name: str, user: str) -> None:
    Traceloop.init(
        app_name=name,
        exporter=OTLPSpanExporter(endpoint=traces_url),
        disable_batch=True,
        telemetry_enabled=False,
        instruments={Instruments.OPENAI},
    )
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    tools = {tool_name: tool(name=tool_name)(function) for tool_name, function in TOOL_FUNCTIONS.items()}
    seen: list[str] = []

    @agent(name=name)
    def run(question: str) -> str:
        Associations.set([(AssociationProperty.USER_ID, user)])
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return agent_loop(client, question, lambda tool_name, arguments: tools[tool_name](**arguments))

    run(QUESTION)  # each span is exported as it ends (disable_batch)
    print(seen[0])


if __name__ == "__main__":
    main(*sys.argv[1:5])
