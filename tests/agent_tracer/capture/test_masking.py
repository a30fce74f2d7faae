"""Masking before storage: with `init(mask=…)` or `agent-tracer proxy --mask`, what must never be
stored never is (the canonical call, its raw bytes, the search index, the spill file), while the
agent's own call goes out and comes back unchanged. Real SDK calls to the loopback fake model,
which echoes the prompt back, so the answer carries the personal data too."""

from __future__ import annotations

import openai
import pytest

import agent_tracer
from agent_tracer.errors import ConfigError
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore

PROMPT = "Mail jane.doe@example.com about card 4111 1111 1111 1111, ticket T-204981, for ACME."
SECRETS = ("jane.doe@example.com", "4111 1111 1111 1111", "T-204981", "ACME")


def company(text: str) -> str:
    """A user's own masking function (module level: the writer process imports it by name)."""
    return text.replace("ACME", "[COMPANY]")


def ask(base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
    return answer.choices[0].message.content


def stored_text(db_url: str) -> str:
    """Everything stored of the calls, as one text to search."""
    with TraceStore(db_url) as store:
        calls = store.calls()
        assert calls and store.traces(text="jane") == []  # the search index never saw it
        return "\n".join(repr((c.request, c.response, c.raw_request, c.raw_response, c.search_text)) for c in calls)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_what_is_stored_is_masked_and_the_call_is_not(upstream, tmp_path, writer):
    url = f"sqlite:///{tmp_path}/t.db"
    agent_tracer.init(
        db=url, spill_path=str(tmp_path / "s.jsonl"), writer=writer, flush_interval_s=0.02,
        mask=("default", r"ticket=T-\d{6}"), mask_function=company,
    )  # fmt: skip
    try:
        assert ask(upstream.openai_base_url) == f"Echo: {PROMPT}"  # the agent's call, unchanged
        assert agent_tracer.flush()
    finally:
        agent_tracer.uninstrument()
    assert upstream.requests[-1]["json"]["messages"][0]["content"] == PROMPT  # sent as the agent wrote it
    stored = stored_text(url)
    assert not any(secret in stored for secret in SECRETS)
    assert "Mail [EMAIL] about card [CARD], ticket [TICKET], for [COMPANY]." in stored


def test_the_spill_file_is_masked_too(upstream, tmp_path):
    (tmp_path / "a-file").write_text("")
    spill = tmp_path / "s.jsonl"
    agent_tracer.init(db=f"sqlite:///{tmp_path}/a-file/t.db", spill_path=str(spill), mask="default",
                      retry_backoff_s=0.01, flush_interval_s=0.02)  # fmt: skip
    try:
        ask(upstream.openai_base_url)
        assert agent_tracer.flush() and agent_tracer.stats()["spilled"] == 1
    finally:
        agent_tracer.uninstrument()
    text = spill.read_text()
    assert "[EMAIL]" in text and "jane.doe" not in text and "4111 1111" not in text


def test_a_mask_that_cannot_work_is_refused_at_init():
    with pytest.raises(ConfigError, match=r"redaction rule ticket: not a regular expression"):
        agent_tracer.init(db="sqlite:///:memory:", mask="ticket=T-(")
    with pytest.raises(ConfigError, match="mask 'emails': not a rule"):
        agent_tracer.init(db="sqlite:///:memory:", mask="emails")
    with pytest.raises(ConfigError, match="must be a module-level function"):
        agent_tracer.init(db="sqlite:///:memory:", mask_function=lambda text: text)


def test_the_proxy_masks_what_it_stores_and_forwards_the_call_unchanged(upstream, tmp_path):
    db = tmp_path / "traces.db"
    process = ProxyProcess(upstream.url, db, "--mask", "default", "--mask", r"ticket=T-\d{6}")
    try:
        assert ask(process.openai_base_url) == f"Echo: {PROMPT}"
    finally:
        output = process.stop()
    assert process.stopped_cleanly, output
    assert upstream.requests[-1]["json"]["messages"][0]["content"] == PROMPT
    stored = stored_text(f"sqlite:///{db}")
    assert "[EMAIL]" in stored and "[TICKET]" in stored and "jane.doe" not in stored and "T-204981" not in stored


def test_texts_as_short_as_a_rules_shortest_match_are_still_masked():
    """A rule skips texts shorter than its shortest match: not texts that long."""
    from agent_tracer.masking import Masker, redactors_for

    masker = Masker(redactors_for(["default", "code=X\\d"]))
    row = {"role": "user", "id": "X1", "phone": "+12345678", "ip": "8.8.8.8", "mail": "a@b.co", "n": [7, "ab"]}
    assert masker.value(row) == {
        "role": "user",
        "id": "[CODE]",
        "phone": "[PHONE]",
        "ip": "[IP]",
        "mail": "[EMAIL]",
        "n": [7, "ab"],
    }
    assert masker.found == {"code": 1, "phone": 1, "ip": 1, "email": 1}

    class Upper:  # a rule of one's own, with no `shortest`
        name = "upper"

        def __call__(self, text: str) -> tuple[str, int]:
            return text.upper(), int(text != text.upper())

    assert Masker([Upper()]).text("a") == "A"
