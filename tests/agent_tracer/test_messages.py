"""The message vocabulary: the rules every reader of conversations shares."""

from __future__ import annotations

import anthropic
import openai
import pytest

from agent_tracer import messages
from agent_tracer.messages import NotText, content_text, error_body, message_key, message_text, strict_text


def test_text_of_every_content_shape():
    assert content_text(None) == "" and content_text("hi") == "hi"
    parts = [
        {"type": "text", "text": "a"},
        {"type": "input_text", "text": "b"},
        {"type": "output_text", "text": "c"},
        {"type": "refusal", "refusal": "d"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
    ]
    assert content_text(parts) == "abcd"
    assert content_text(parts, placeholders=True) == "abcd[image_url]"
    assert strict_text(parts[:4]) == "abcd"
    with pytest.raises(NotText, match="has image_url content, not only text"):
        strict_text(parts)
    assert message_text({"role": "assistant", "content": None, "refusal": "No."}) == "No."
    assert message_text({"role": "assistant", "content": "Yes", "refusal": "No."}) == "Yes"


def test_a_message_sent_back_reformatted_is_the_same_turn():
    sent = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"b":1,"a":2}'}}],
    }
    back = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 2, "b": 1}'}}],
    }
    assert message_key(sent) == message_key(back)
    assert message_key({"role": "user", "content": "hi "}) == message_key(
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    )
    assert message_key({"role": "user", "content": "hi"}) != message_key({"role": "system", "content": "hi"})


def test_tool_call_shape():
    call = messages.tool_call("c1", "f", {"x": 1})
    assert call == {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    assert messages.arguments_json(None) == "{}" and messages.arguments_json('{"a":1}') == '{"a":1}'
    with pytest.raises(ValueError):
        messages.arguments_json("{not json")
    assert messages.parse_arguments('{"a": 1}') == {"a": 1} and messages.parse_arguments("{x") == "{x"


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
def test_error_bodies_raise_the_sdks_own_errors(status):
    """Each SDK turns our error body into its usual exception, with our message in it."""
    import httpx

    for api, make in (("openai", _openai_error), ("anthropic", _anthropic_error)):
        body = error_body(api, status, "it broke", "broken")
        error = make(httpx.Response(status, json=body, request=httpx.Request("POST", "http://127.0.0.1/")), body)
        assert "it broke" in str(error)
        assert error.status_code == status
    assert error_body("openai", 400, "x", param="messages")["error"]["param"] == "messages"
    assert error_body("openai", 401, "x")["error"]["code"] == "invalid_api_key"
    assert error_body("anthropic", 504, "x")["error"]["type"] == "timeout_error"


def _openai_error(response, body):
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    return client._make_status_error_from_response(response)


def _anthropic_error(response, body):
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="http://127.0.0.1:9")
    return client._make_status_error_from_response(response)
