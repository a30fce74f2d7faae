"""SSEDecoder: the WHATWG event-stream rules, on chunks cut anywhere."""

from __future__ import annotations

import json
import random

import pytest
from openai._streaming import SSEDecoder as SDKDecoder

from integrations.sse import SSEDecoder


def decode(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def random_chunks(data: bytes, rng: random.Random, largest: int = 17) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[at : at + size])
        at += size
    return chunks


TRANSCRIPT = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"type": "message_start"}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 3000\n"
    b"data: line one\n"
    b"data: line two\n"
    b"\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    ("message_start", '{"type": "message_start"}'),
    (None, "line one\nline two"),
    (None, "café € 😀"),
    (None, "[DONE]"),
]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_line_endings(ending: bytes) -> None:
    assert decode([TRANSCRIPT.replace(b"\n", ending)]) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_split_point(ending: bytes) -> None:
    data = TRANSCRIPT.replace(b"\n", ending)
    for cut in range(len(data) + 1):
        assert decode([data[:cut], data[cut:]]) == EXPECTED, cut


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_byte_by_byte(ending: bytes) -> None:
    data = TRANSCRIPT.replace(b"\n", ending)
    assert decode([data[i : i + 1] for i in range(len(data))]) == EXPECTED


def test_cr_and_lf_in_separate_chunks_are_one_line_end() -> None:
    # Were "\r" | "\n" read as two line ends, the blank line would cut the event in two.
    assert decode([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [(None, "a\nb")]


def test_multibyte_character_split() -> None:
    data = "data: 日本語 ✓\n\n".encode()
    for cut in range(6, 18):
        assert decode([data[:cut], data[cut:]]) == [(None, "日本語 ✓")]


def test_events_returned_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: 2\n") == [(None, "1")]
    assert decoder.feed(b"\n") == [(None, "2")]
    assert decoder.feed(b"data: 3\n\ndata: 4\n\nda") == [(None, "3"), (None, "4")]
    assert decoder.feed(b"ta: 5") == []
    assert decoder.flush() == [(None, "5")]
    assert decoder.flush() == []


def test_flush_without_trailing_blank_line() -> None:
    assert decode([b"event: done\ndata: x\n"]) == [("done", "x")]
    assert decode([b"data: x\r"]) == [(None, "x")]
    assert decode([b"data: x"]) == [(None, "x")]
    assert decode([b""]) == []
    assert decode([]) == []


def test_field_rules() -> None:
    data = (
        b"data\n\n"  # no colon: the field name is the line, the value empty
        b"data:no-space\n\n"
        b"data:  two spaces\n\n"  # only one leading space is removed
        b"data: a: b\n\n"  # only the first colon separates
        b"event: only-a-name\n\n"  # no data: not dispatched
        b"event:\ndata: x\n\n"  # empty event name is no name
        b"unknown: field\ndata: y\n\n"
        b"\n\n\n"  # blank lines between events
        b"data: z\n\n"
    )
    assert decode([data]) == [
        (None, ""),
        (None, "no-space"),
        (None, " two spaces"),
        (None, "a: b"),
        (None, "x"),
        (None, "y"),
        (None, "z"),
    ]


def test_byte_order_mark_removed() -> None:
    bom = b"\xef\xbb\xbf"
    assert decode([bom + b"data: x\n\n"]) == [(None, "x")]
    assert decode([bom[:1], bom[1:2], bom[2:] + b"data: x\n\n"]) == [(None, "x")]
    assert decode([bom + b"data: x"]) == [(None, "x")]


def test_invalid_utf8_replaced() -> None:
    assert decode([b"data: \xff\n\n"]) == [(None, "\ufffd")]


def test_large_event_in_many_chunks() -> None:
    payload = json.dumps({"text": "x" * 200_000})
    data = f"event: response.completed\ndata: {payload}\n\n".encode()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert decode(chunks) == [("response.completed", payload)]


def _random_transcript(rng: random.Random) -> bytes:
    alphabet = ["a", "b", " ", ":", "{", "}", '"', "é", "😀", "data", "event"]
    out = []
    for _ in range(rng.randint(1, 12)):
        lines = []
        if rng.random() < 0.3:
            lines.append(": comment " + rng.choice(alphabet))
        if rng.random() < 0.5:
            lines.append("event: " + "".join(rng.choices(alphabet[:3], k=rng.randint(1, 5))).strip())
        if rng.random() < 0.2:
            lines.append(f"id: {rng.randint(1, 99)}")
        for _ in range(rng.randint(1, 3)):
            lines.append("data:" + "".join(rng.choices(alphabet, k=rng.randint(0, 20))))
        ending = rng.choice(["\n", "\r\n", "\r"])
        out.append(ending.join(lines) + ending + ending)
    return "".join(out).encode()


def test_agrees_with_the_openai_sdk_decoder() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        data = _random_transcript(rng)
        expected = [(sse.event or None, sse.data) for sse in SDKDecoder().iter_bytes(iter([data]))]
        assert decode(random_chunks(data, rng, largest=rng.choice([1, 3, 40]))) == expected, data
