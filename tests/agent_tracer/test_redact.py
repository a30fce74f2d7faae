"""Key-shaped strings are found and replaced, whatever provider they belong to."""

from __future__ import annotations

import pytest

from agent_tracer.redact import REDACTED, has_secret, safe_endpoint, scrub, scrub_text

KEYS = [
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "sk-ant-api03-abcdefghijklmnopqrstuv",
    "sk-abcdefghijklmnopqrstuvwx",
    "AKIAABCDEFGHIJKLMNOP",
    "AIza" + "A" * 35,
    "ghp_" + "a" * 36,
    "xoxb-1234567890-abcdef",
    "hf_" + "a" * 34,
    "Bearer abcdefghijklmnopqrstuvwxyz",
    "BEARER abcdefghijklmnopqrstuvwxyz",
    "bearer abcdefghijklmnopqrstuvwxyz",
    "BeaRer abcdefghijklmnopqrstuvwxyz",  # the scheme's case is free (RFC 9110)
    "bEARER\tabcdefghijklmnopqrstuvwxyz",
]


@pytest.mark.parametrize("key", KEYS)
def test_every_key_shape_is_found_and_replaced(key):
    text = f'{{"content": "my key is {key} thanks"}}'
    assert has_secret(text)
    assert key not in scrub_text(text) and REDACTED in scrub_text(text)
    assert scrub({"a": [text], "b": 1}) == {"a": [scrub_text(text)], "b": 1}


@pytest.mark.parametrize("text", ["plain words, high and through", "ask-me", "sk-short", "gh_not_a_token"])
def test_ordinary_text_is_left_alone(text):
    assert not has_secret(text) and scrub_text(text) == text


def test_endpoint_loses_query_and_user_info():
    assert safe_endpoint("https://user:pw@api.example.com:8443/v1/chat?api-key=sk-x#f") == (
        "https://api.example.com:8443/v1/chat"
    )
