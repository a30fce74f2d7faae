"""OTLP ingest: spans from any OpenTelemetry-instrumented agent, stored as our own capture stores them.

    agent-tracer collect                    # http://127.0.0.1:4318/v1/traces and /v1/logs, the default store
    agent-tracer ui                         # the UI serves the same endpoints

Point an exporter at it (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces`,
protobuf or JSON, gzip or not) and model-call spans become `llm_call` rows, agent spans traces and
`agent_run` rows, tool spans `tool_execution` rows; the datasets, evals and UI read them unchanged.

- `spans.py`: the request body (protobuf or OTLP/JSON) → plain `Span` objects;
- `layouts.py`: a model-call span's messages and tools from each layout (GenAI conventions current
  and event-based, OpenInference, OpenLLMetry/Traceloop, the flat body), and which one wins;
- `mapping.py`: a span → the store's records (or an unmapped span, kept and counted);
- `logs.py`: `/v1/logs`: GenAI message events sent as log records, joined to their span's call;
- `receiver.py`: the HTTP endpoint: limits, status codes, partial success, writing, metrics;
- `app.py`: the small app `agent-tracer collect` serves.
"""
