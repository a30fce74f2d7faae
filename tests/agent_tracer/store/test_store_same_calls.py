"""One model call written twice, by the wire (the transport or the proxy: raw bodies) and from a
framework's span (no raw bodies), is stored once (`store/same_calls.py`), on both databases: matched
by response id and overlapping times, in either order, in one batch or two. What a user checks:
one call in the agent's trace with the wire's bodies, no empty trace left, the merge counted, and
a search finding the call by its text."""

from __future__ import annotations

from typing import Any

import pytest

RESPONSE_ID = "chatcmpl-abc123"


def wire_copy(rec: Any, *, trace: int = 1, start: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """The transport's copy: in a trace of its own (the context did not reach it), raw bodies."""
    kind, call = rec.call(1, rec.trace_id(trace), start=start, raw_request='{"model": "gpt-4o-mini"}')
    call["id"] = "aaaaaaaaaaaaaaaa"
    call["response"].update(id=RESPONSE_ID, message={"role": "assistant", "content": "wirewords here"})
    call["raw_response"] = '{"id": "%s"}' % RESPONSE_ID
    return [rec.trace(trace, start=start, name="chat gpt-4o-mini"), (kind, call)]


def span_copy(rec: Any, *, trace: int = 2, start: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """A framework's chat span of the same call: in the agent's trace, under its agent run."""
    kind, call = rec.call(2, rec.trace_id(trace), start=start, api=None, parent_span_id="00000000000000a1")
    call["response"].update(id=RESPONSE_ID, message={"role": "assistant", "content": "spanwords here"})
    call["response_id"] = RESPONSE_ID
    run = {"id": "00000000000000a1", "trace_id": rec.trace_id(trace), "name": "agent", "started_at": rec.at(start)}
    return [rec.trace(trace, start=start, name="agent", authoritative=True), ("agent_run", run), (kind, call)]


def the_call(store: Any) -> Any:
    [summary] = store.traces()
    [call] = store.get_trace(summary.id).calls
    return summary, call


@pytest.mark.parametrize("order", ["wire first", "span first", "one batch"])
def test_a_call_seen_on_the_wire_and_in_a_span_is_stored_once(store, rec, order):
    wire, span = wire_copy(rec), span_copy(rec)
    if order == "one batch":
        store.write([*wire, *span])
    else:
        first, second = (wire, span) if order == "wire first" else (span, wire)
        store.write(first)
        if order == "span first":  # a search indexes the span's copy: its text must leave the index
            assert [t.id for t in store.traces(text="spanwords")] == [rec.trace_id(2)]
        store.write(second)
    summary, call = the_call(store)  # the wire's own trace is gone: nothing was left in it
    assert summary.id == rec.trace_id(2) and summary.name == "agent"
    assert call.id == "aaaaaaaaaaaaaaaa" and call.raw_request == '{"model": "gpt-4o-mini"}'  # the wire's copy
    assert call.response["message"]["content"] == "wirewords here" and call.api == "openai.chat"
    assert (call.trace_id, call.parent_span_id) == (rec.trace_id(2), "00000000000000a1")  # in the span's place
    assert store.calls_merged == 1
    assert [t.id for t in store.traces(text="wirewords")] == [rec.trace_id(2)]
    assert store.traces(text="spanwords") == []


def test_writing_either_copy_again_changes_nothing(store, rec):
    store.write(span_copy(rec))
    store.write(wire_copy(rec))
    store.write(wire_copy(rec))
    store.write(span_copy(rec))
    summary, call = the_call(store)
    assert call.id == "aaaaaaaaaaaaaaaa" and call.trace_id == summary.id == rec.trace_id(2)


def test_same_trace_copies_merge_and_the_trace_stays(store, rec):
    store.write(wire_copy(rec, trace=2))
    store.write(span_copy(rec, trace=2))
    summary, call = the_call(store)
    assert summary.name == "agent" and call.parent_span_id == "00000000000000a1"


def test_a_reused_response_id_at_another_time_is_another_call(store, rec):
    """Some local servers draw response ids from a few hundred: far apart in time, not one call."""
    store.write(wire_copy(rec, start=0))
    store.write(span_copy(rec, start=3600))
    assert len(store.traces()) == 2 and store.calls_merged == 0


def test_two_copies_of_one_kind_are_both_kept(store, rec):
    """Two wire copies (the proxy's and the transport's) or two spans: not merged."""
    store.write(wire_copy(rec))
    kind, other = wire_copy(rec, trace=3)[1]
    store.write([rec.trace(3), (kind, {**other, "id": "bbbbbbbbbbbbbbbb"})])
    assert len(store.traces()) == 2 and store.calls_merged == 0


def test_a_reused_response_id_with_other_token_counts_is_another_call(store, rec):
    store.write(wire_copy(rec))
    kind, call = span_copy(rec)[2]
    store.write([*span_copy(rec)[:2], (kind, {**call, "input_tokens": 99})])
    assert len(store.traces()) == 2 and store.calls_merged == 0


def test_copies_of_other_calls_are_left_alone(store, rec):
    kind, other = span_copy(rec, trace=3)[2]
    store.write([rec.trace(3), (kind, {**other, "id": "cccccccccccccccc", "response_id": "chatcmpl-other"})])
    store.write(wire_copy(rec))
    assert len(store.traces()) == 2 and store.calls_merged == 0


# ------------------------------------------------------------------------------------------------
# A span without a response id (OpenInference's, Google ADK's): matched by the call's text.

QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
CALLED = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def unnamed_span_copy(rec: Any, *, start: float = 0.0, arguments: str = '{"city":"Paris"}', **fields: Any) -> list:
    """A span of the call that carries its messages but no response id; its tool call's arguments
    spaced as the library wrote them again."""
    records = span_copy(rec, start=start)
    kind, call = records[2]
    answer = {"role": "assistant", "content": None, "tool_calls": [{**CALLED, "function": {**CALLED["function"]}}]}
    answer["tool_calls"][0]["function"]["arguments"] = arguments
    call["request"]["messages"] = QUESTION
    call["response"].update(id=None, message=answer)
    call.update({"response_id": None, **fields})
    return [*records[:2], (kind, call)]


def texted_wire_copy(rec: Any) -> list:
    records = wire_copy(rec)
    kind, call = records[1]
    call["request"]["messages"] = QUESTION
    call["response"]["message"] = {"role": "assistant", "content": None, "tool_calls": [CALLED]}
    return [records[0], (kind, call)]


@pytest.mark.parametrize("order", ["wire first", "span first", "one batch"])
def test_a_span_without_a_response_id_is_matched_by_the_calls_text(store, rec, order):
    wire, span = texted_wire_copy(rec), unnamed_span_copy(rec)
    if order == "one batch":
        store.write([*wire, *span])
    else:
        first, second = (wire, span) if order == "wire first" else (span, wire)
        store.write(first)
        store.write(second)
    summary, call = the_call(store)
    assert summary.id == rec.trace_id(2) and call.id == "aaaaaaaaaaaaaaaa"  # the wire's copy, in the agent's trace
    assert call.response_id == RESPONSE_ID and call.raw_request == '{"model": "gpt-4o-mini"}'
    assert call.parent_span_id == "00000000000000a1"
    assert store.calls_merged == 1


@pytest.mark.parametrize(
    "change",
    [
        {"arguments": '{"city": "Lyon"}'},  # another answer
        {"start": 3600},  # the same words an hour later
        {"response_id": "chatcmpl-other"},  # a span with an id of its own is matched by it or not at all
        {"input_tokens": 99},
    ],
    ids=["other text", "other time", "own response id", "other tokens"],
)
def test_a_span_without_a_response_id_and_another_call_are_both_kept(store, rec, change):
    store.write(texted_wire_copy(rec))
    store.write(unnamed_span_copy(rec, **change))
    assert len(store.traces()) == 2 and store.calls_merged == 0


def test_a_span_without_its_messages_is_never_merged(store, rec):
    """Content capture off: no text, no key."""
    store.write(texted_wire_copy(rec))
    records = unnamed_span_copy(rec)
    kind, call = records[2]
    call.update(request={"model": "gpt-4o-mini", "messages": []}, response={"message": None})
    store.write([*records[:2], (kind, call)])
    assert len(store.traces()) == 2 and store.calls_merged == 0
