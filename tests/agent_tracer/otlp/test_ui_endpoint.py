"""`agent-tracer ui` takes OTLP exports at /v1/traces and /v1/logs too, under the UI's own rules: a
key when keys are required (as a bearer token; no CSRF token, it is no form), nothing in read-only
mode."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

pytest.importorskip("opentelemetry.proto")

from otlp_bodies import log, logs_protobuf, new_span_id, new_trace_id, protobuf  # noqa: E402
from test_receiver import PB, chat_span  # noqa: E402

from agent_tracer.store import TraceStore  # noqa: E402
from agent_tracer.ui import create_app  # noqa: E402

KEY = "ui-otlp-key-0123456789abcdef"


def test_the_ui_stores_otlp_exports(tmp_path):
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    trace_id = new_trace_id()
    with TestClient(create_app(url, create=True)) as client:
        assert client.post("/v1/traces", content=protobuf(chat_span(trace_id)), headers=PB).status_code == 200
        assert client.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        page = client.get(f"/runs/{trace_id}")
        assert page.status_code == 200 and "Hello" in page.text
        span_id = new_span_id()
        bare = chat_span(trace_id, span_id=span_id)
        del bare["attributes"]["gen_ai.input.messages"]
        question = log("gen_ai.user.message", {"content": "Hi from a log event"}, trace_id=trace_id, span_id=span_id)
        assert client.post("/v1/traces", content=protobuf(bare), headers=PB).status_code == 200
        assert client.post("/v1/logs", content=logs_protobuf(question), headers=PB).status_code == 200
        assert "Hi from a log event" in client.get(f"/runs/{trace_id}").text
    with TraceStore(url) as store:
        assert store.get_trace(trace_id).calls[0].request_model == "gpt-test"


def test_the_ui_asks_its_key_and_refuses_in_read_only_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    body = protobuf(chat_span(new_trace_id()))
    with TestClient(create_app(url, create=True, keys=[KEY])) as client:
        assert client.post("/v1/traces", content=body, headers=PB).status_code == 401
        answer = client.post("/v1/traces", content=body, headers={**PB, "authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200
        assert client.post("/v1/logs", content=b"", headers=PB).status_code == 401
    with TestClient(create_app(url, read_only=True)) as client:
        assert client.post("/v1/traces", content=body, headers=PB).status_code == 403
        assert client.post("/v1/logs", content=b"", headers=PB).status_code == 403
