"""The spill file: append, read back, crash leftovers, damage, and loading it into the store."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from agent_tracer.errors import StoreError
from agent_tracer.spill import append_spill, read_spill


def test_round_trip_with_datetimes_as_iso_strings(tmp_path):
    path = tmp_path / "deep" / "dir" / "spill.jsonl"  # parent folders are created
    records = [
        ("trace", {"id": "a" * 32, "started_at": datetime(2024, 5, 1, 10, 0, 0, 123456), "tags": ["x"]}),
        ("llm_call", {"id": "1" * 16, "trace_id": "a" * 32, "request": {"messages": [{"content": "Grüße\nzwei"}]}}),
    ]
    assert append_spill(path, records[:1]) == 1
    assert append_spill(path, records[1:]) == 1
    assert append_spill(path, []) == 0
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == 2  # one record a line, newlines inside strings escaped
    assert json.loads(lines[0]) == {
        "kind": "trace",
        "row": {"id": "a" * 32, "started_at": "2024-05-01T10:00:00.123456", "tags": ["x"]},
    }
    reader = read_spill(path)
    back = list(reader)
    assert back[0] == ("trace", {"id": "a" * 32, "started_at": "2024-05-01T10:00:00.123456", "tags": ["x"]})
    assert back[1][1]["request"]["messages"][0]["content"] == "Grüße\nzwei"
    assert (reader.records, reader.truncated) == (2, 0)


def test_a_truncated_last_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "spill.jsonl"
    append_spill(path, [("trace", {"id": "a" * 32}), ("trace", {"id": "b" * 32})])
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "llm_call", "row": {"id": "12')  # the crash
    reader = read_spill(path)
    assert [row["id"] for _, row in reader] == ["a" * 32, "b" * 32]
    assert (reader.records, reader.truncated) == (2, 1)


def test_an_append_after_a_crash_cuts_the_partial_line_first(tmp_path, caplog):
    path = tmp_path / "spill.jsonl"
    append_spill(path, [("trace", {"id": "a" * 32})])
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "trace", "row": {"id": "bb')
    append_spill(path, [("trace", {"id": "c" * 32})])
    assert "partial record" in caplog.text
    reader = read_spill(path)
    assert [row["id"] for _, row in reader] == ["a" * 32, "c" * 32]
    assert reader.truncated == 0


def test_an_append_to_a_file_that_is_only_a_partial_line(tmp_path):
    path = tmp_path / "spill.jsonl"
    path.write_bytes(b'{"kind": "tr')
    append_spill(path, [("trace", {"id": "c" * 32})])
    assert [row["id"] for _, row in read_spill(path)] == ["c" * 32]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (b"{not json\n", "Expecting property name"),
        (b'["trace", {}]\n', "expected"),
        (b'{"kind": "trace", "row": "x"}\n', "expected"),
    ],
)
def test_a_malformed_line_in_the_middle_names_its_number(tmp_path, bad_line, message):
    path = tmp_path / "spill.jsonl"
    append_spill(path, [("trace", {"id": "a" * 32})])
    with open(path, "ab") as handle:
        handle.write(bad_line)
    append_spill(path, [("trace", {"id": "b" * 32})])
    reader = read_spill(path)
    with pytest.raises(StoreError, match=rf"spill\.jsonl:2: not a spill record \(.*{message}"):
        list(reader)


def test_a_malformed_last_line_with_its_newline_is_damage_not_a_crash(tmp_path):
    path = tmp_path / "spill.jsonl"
    path.write_bytes(b'{"kind": "trace", "row": {"id": "a"}}\n\n{oops\n')
    with pytest.raises(StoreError, match=":3:"):
        list(read_spill(path))


def test_append_failure_is_an_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        append_spill(blocker / "spill.jsonl", [("trace", {"id": "a" * 32})])


def test_a_spill_file_loads_into_the_store_once(store, rec, tmp_path):
    path = tmp_path / "spill.jsonl"
    tid = rec.trace_id(1)
    records = [
        rec.trace(1, authoritative=True),
        rec.call(1, tid),
        rec.call(2, tid, tool_calls=True),
        ("feedback", {"id": "f" * 32, "trace_id": tid, "rating": 4.0, "created_at": rec.at(9)}),
    ]
    append_spill(path, records)
    assert store.write(read_spill(path)) == 4
    assert store.write(read_spill(path)) == 0  # a second import adds nothing
    detail = store.get_trace(tid)
    assert detail.trace.started_at == rec.at(0) and detail.trace.rating == 4.0
    assert [call.started_at for call in detail.calls] == [rec.at(0), rec.at(0)]
    assert detail.calls[1].has_tool_calls and detail.feedback[0].created_at == rec.at(9)
