"""`init(otlp_endpoint=…)` sends the same spans to any OTLP/HTTP collector."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import agent_tracer


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802
        self.received.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_reach_an_otlp_collector(upstream, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
    agent_tracer.init(db=f"sqlite:///{tmp_path}/t.db", spill_path=str(tmp_path / "s.jsonl"), otlp_endpoint=endpoint)
    try:

        @agent_tracer.trace_agent(name="otlp-agent")
        def run():
            c = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "secret prompt"}])

        run()
    finally:
        agent_tracer.uninstrument()  # shuts the OTLP processor down, which exports what it holds
        server.shutdown()
    spans = {}
    for body in Collector.received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.name] = {a.key: a.value for a in span.attributes}
    assert {"chat m", "invoke_agent otlp-agent"} <= set(spans)
    chat = spans["chat m"]
    assert chat["gen_ai.provider.name"].string_value == "openai"
    assert chat["gen_ai.usage.output_tokens"].int_value > 0
    assert b"secret prompt" not in b"".join(Collector.received)  # content is opt-in
