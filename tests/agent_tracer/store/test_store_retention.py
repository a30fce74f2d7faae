"""Retention on SQLite and PostgreSQL: `agent-tracer traces prune` deletes old runs with every row
that hangs off them, keeps what it is told to keep, says what it removed, never breaks search,
and lets a writer go on writing while it runs."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from test_store_search import integrity_check

from agent_tracer.cli import main
from agent_tracer.store.retention import prune

DAY = 86400.0
CUTOFF_DAYS = 30


def run_records(rec, n: int, start: float, **trace_fields):
    """A run as the capture writes one: its trace, an agent run, a model call and a tool execution."""
    trace = rec.trace_id(n)
    span = {"trace_id": trace, "started_at": rec.at(start), "ended_at": rec.at(start + 1)}
    return [
        rec.trace(n, start=start, **trace_fields),
        ("agent_run", {"id": rec.span_id(1000 + n), "name": "agent", **span}),
        rec.call(n, trace, start=start),
        ("tool_execution", {"id": rec.span_id(2000 + n), "name": "lookup", "arguments": {"n": n}, **span}),
    ]


def fill(store, rec) -> None:
    """Runs 1-4 are 40 days older than 5-6; of the old ones 2 is rated, 3 tagged `keep`, 4 has a
    feedback label only."""
    records = []
    for n in range(1, 7):
        records += run_records(rec, n, 0.0 if n <= 4 else 40 * DAY, **({"tags": ["keep"]} if n == 3 else {}))
    store.write(records)
    store.record_feedback(rec.trace_id(2), rating=5)
    store.record_feedback(rec.trace_id(4), label="looked-at", source="ui")
    if store.engine.dialect.name == "sqlite":
        store.index_search()  # the calls are in the full-text index before they are pruned


def counts(store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in ("traces", "llm_calls", "agent_runs", "tool_executions", "feedback")
        }


def ids(traces) -> set[str]:
    return {trace.id for trace in traces}


def test_old_runs_go_with_their_rows_and_the_kept_ones_stay(store, rec):
    fill(store, rec)
    cutoff = rec.at(CUTOFF_DAYS * DAY)
    before = counts(store)

    dry = prune(store.engine, cutoff, keep_rated=True, keep_tags=["keep"], dry_run=True)
    assert (dry.runs, dry.rows["llm_calls"], dry.rows["tool_executions"], dry.rows["agent_runs"]) == (1, 1, 1, 1)
    assert counts(store) == before  # a dry run deletes nothing

    kept = prune(store.engine, cutoff, keep_rated=True, keep_tags=["keep"], batch=1)
    assert kept.runs == 1 and kept.rows["llm_calls"] == 1 and kept.rows["feedback"] == 0
    assert ids(store.traces()) == {rec.trace_id(n) for n in (2, 3, 4, 5, 6)}

    every = prune(store.engine, cutoff, batch=2)  # two batches: runs 2 and 3, then 4
    assert (every.runs, every.rows["feedback"], every.rows["llm_calls"]) == (3, 2, 3)
    assert ids(store.traces()) == {rec.trace_id(5), rec.trace_id(6)}
    assert counts(store) == {"traces": 2, "llm_calls": 2, "agent_runs": 2, "tool_executions": 2, "feedback": 0}
    assert {c.trace_id for c in store.calls()} == {rec.trace_id(5), rec.trace_id(6)}

    # search finds only what is left, and SQLite's full-text index is whole
    assert ids(store.traces(text="question")) == {rec.trace_id(5), rec.trace_id(6)}
    assert store.traces(text="question 1") == []
    if store.engine.dialect.name == "sqlite":
        integrity_check(store)
    assert prune(store.engine, cutoff).runs == 0  # nothing more to do


def test_the_command_says_what_it_deleted_and_vacuum_gives_the_space_back(store, rec):
    records = []
    for n in range(1, 301):
        records += run_records(rec, n, 0.0 if n <= 250 else 40 * DAY)
    store.write(records)
    url = store.url
    runner = CliRunner()
    cutoff = (rec.at(CUTOFF_DAYS * DAY)).date().isoformat()

    dry = runner.invoke(main, ["traces", "prune", "--older-than", cutoff, "--dry-run", "--db", url])
    assert dry.exit_code == 0, dry.output
    assert "would delete 250 runs that started before" in dry.output and "250 model calls" in dry.output

    done = runner.invoke(main, ["traces", "prune", "--older-than", cutoff, "--vacuum", "--json", "--db", url])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert (result["runs"], result["llm_calls"], result["tool_executions"], result["vacuumed"]) == (250, 250, 250, True)
    if store.engine.dialect.name == "sqlite":
        assert result["size_after"] < 0.6 * result["size_before"]  # the file shrank
    assert counts(store)["traces"] == 50

    again = runner.invoke(main, ["traces", "prune", "--older-than", "2024-01-01", "--db", url])
    assert again.exit_code == 0 and "deleted 0 runs" in again.output
    bad = runner.invoke(main, ["traces", "prune", "--older-than", "soon", "--db", url])
    assert bad.exit_code == 2 and "not a time: 'soon'" in bad.output


def test_a_writer_keeps_writing_while_a_prune_runs(store, rec):
    store.write([record for n in range(1, 1201) for record in run_records(rec, n, 0.0)])
    cutoff = rec.at(DAY)
    failures: list[BaseException] = []
    written = []

    def write_new_runs() -> None:
        try:
            for n in range(5001, 5201):
                store.write(run_records(rec, n, 40 * DAY))
                written.append(n)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failures.append(exc)

    thread = threading.Thread(target=write_new_runs)
    thread.start()
    pruned = prune(store.engine, cutoff, batch=50)
    thread.join(60)
    assert not failures and len(written) == 200
    assert pruned.runs == 1200
    assert counts(store)["traces"] == 200 and counts(store)["llm_calls"] == 200
    assert min(t.started_at for t in store.traces()) >= rec.at(40 * DAY) - timedelta(seconds=1)


def test_erase_deletes_a_users_and_a_sessions_runs_and_leaves_no_copy(store, rec):
    secret = "zebrapass4711"
    records = []
    for n, meta in ((1, {"user.id": "u-1"}), (2, {"user.id": "u-1", "session.id": "s-1"}), (3, {"session.id": "s-2"}),
                    (4, {"user.id": "u-2"}), (5, {})):  # fmt: skip
        records += run_records(rec, n, n * DAY, meta=meta)
    request = {"model": "m", "messages": [{"role": "user", "content": f"my password is {secret}"}], "tools": []}
    records.append(rec.call(99, rec.trace_id(1), search_text=f"my password is {secret}", request=request))
    store.write(records)
    if store.engine.dialect.name == "sqlite":
        store.index_search()
        store.engine.dispose()
    sqlite_files = lambda: b"".join(  # noqa: E731
        path.read_bytes() for path in (Path(store.engine.url.database), Path(f"{store.engine.url.database}-wal"))
        if path.exists()
    )  # fmt: skip
    if store.engine.dialect.name == "sqlite":
        assert secret.encode() in sqlite_files()  # the check below can see it

    runner = CliRunner()
    dry = runner.invoke(main, ["traces", "erase", "--user", "u-1", "--session", "s-2", "--dry-run", "--db", store.url])
    assert dry.exit_code == 0 and "would delete 3 runs of user u-1 or session s-2, with 4 model calls" in dry.output
    done = runner.invoke(main, ["traces", "erase", "--user", "u-1", "--session", "s-2", "--db", store.url])
    assert done.exit_code == 0, done.output
    assert "deleted 3 runs of user u-1 or session s-2, with 4 model calls" in done.output
    assert ids(store.traces()) == {rec.trace_id(4), rec.trace_id(5)}
    assert store.traces(text=secret) == []
    if store.engine.dialect.name == "sqlite":
        integrity_check(store)
        store.engine.dispose()
        assert secret.encode() not in sqlite_files()  # not in free pages, the index or the log
    nobody = runner.invoke(main, ["traces", "erase", "--db", store.url])
    assert nobody.exit_code == 2 and "--user ID or --session ID" in nobody.output
