"""Full-text search over the calls' messages (issue 21): the index's size, and search time.

    python bench/ui_search.py [--calls 10000] [--repeats 30] [--pg postgresql+psycopg://…] [--write-calls N]

A fresh store is filled with `--calls` model calls (half as many agent runs of two calls each:
the support-agent runs of bench/dataset_build.py, written with `TraceStore.write` as the capture
writer writes them), on SQLite and, with `--pg` (a server where the role may CREATE DATABASE),
on PostgreSQL in a database of its own that is dropped afterwards.

Sizes: the store as written (VACUUMed), then the same store without migration m003's search
index (SQLite: the FTS5 table and its triggers dropped; PostgreSQL: the GIN index dropped), then
also without the `llm_calls.search_text` column's text (set to NULL), each VACUUMed (PostgreSQL:
VACUUM FULL, the tables with their indexes and TOAST). Search: `TraceStore.traces(text=…,
limit=50)`, the runs page's query, and `count_traces(text=…)`, each `--repeats` times per search,
p50 and p95 in ms, with the number of runs found, after the catch-up of the calls written (SQLite:
`TraceStore.index_search`, which every text search runs first). That catch-up is timed apart: the
first search on the store as filled (every call unindexed), then a search after each of `--repeats`
writes of 100 new calls, then searches with nothing new. With `--write-calls N`: `TraceStore.write`
of N calls in batches of 512 (as the capture writer's) into a fresh store, with and without the
index (SQLite: the FTS5 tables dropped; PostgreSQL: the GIN index dropped), alternated twice.

Goal (issue 21): full-text search at most 500 ms p95 at a million runs; this script measures the
store sizes the issue asks for, and the search time at the size it is run with.
Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's packages
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_build import ASKS, CLOSINGS, DAYS, ITEMS, NAMES, OPENINGS, _run  # noqa: E402 (beside this script)

SEARCHES = ["damaged", "okafor", "louisville", "sleeping bag", "charged twice", "neighbo", "zebra"]
"""Words of a few selectivities: one ask in eight, a name, every tool result, two words (twice),
a prefix (of "neighbour"), nothing."""


def records(calls: int, seed: int = 0, first: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """The records of `calls // 2` runs, numbered from `first` (their ids follow their numbers)."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    start = dt.datetime(2026, 1, 1)
    for n in range(first, first + calls // 2):
        order = f"A-{rng.randrange(10**5):05d}"
        question = " ".join([rng.choice(OPENINGS), rng.choice(ASKS), *rng.sample(CLOSINGS, 2)]).format(
            item=rng.choice(ITEMS),
            order=order,
            days=rng.randrange(2, 9),
            day=rng.choice(DAYS),
            email=f"{rng.choice(NAMES).split()[0].lower()}{rng.randrange(100)}@example.com",
            phone=f"+1 415 555 {rng.randrange(10**4):04d}",
            name=rng.choice(NAMES),
        )
        out += _run(n, question, order, start + dt.timedelta(seconds=n), success=rng.random() < 0.8)
    return out


def fill(url: str, calls: int) -> float:
    from agent_tracer.store import TraceStore

    rows = records(calls)
    began = time.perf_counter()
    with TraceStore(url) as store:
        for at in range(0, len(rows), 2000):
            store.write(rows[at : at + 2000])
    return time.perf_counter() - began


def catch_up(url: str, calls: int, repeats: int) -> list[dict[str, Any]]:
    """A search right after writing: the first one on the store as filled (every call unindexed
    on SQLite), then after each of `repeats` writes of 100 new calls, then with nothing new; each
    `traces(text="okafor", limit=50)`, the catch-up (`TraceStore.index_search`) included."""
    from agent_tracer.store import TraceStore

    def search(store: Any) -> float:
        began = time.perf_counter()
        store.traces(text="okafor", limit=50)
        return (time.perf_counter() - began) * 1000

    out = []
    with TraceStore(url) as store:
        out.append({"new": calls, "ms": [search(store)]})
        after_100 = []
        for rep in range(repeats):
            store.write(records(100, seed=rep + 1, first=calls + rep * 100))
            after_100.append(search(store))
        out.append({"new": 100, "ms": after_100})
        out.append({"new": 0, "ms": [search(store) for _ in range(repeats)]})
    return out


def write_cost(url: str, calls: int, with_index: bool) -> float:
    """µs a call of `TraceStore.write` in batches of 512 calls (as the capture writer's), into a
    fresh store at `url`, with or without migration m003's index (dropped before writing)."""
    from agent_tracer.store import TraceStore
    from agent_tracer.store.search import FTS_STATE, FTS_TABLE, PG_INDEX

    rows = records(calls)
    per_batch = 512 // 2 * 4  # 256 runs of 4 records (trace, two calls, feedback)
    with TraceStore(url) as store:
        if not with_index:
            with store.engine.begin() as conn:
                if store.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql(f"DROP TABLE {FTS_TABLE}")
                    conn.exec_driver_sql(f"DROP TABLE {FTS_STATE}")
                else:
                    conn.exec_driver_sql(f"DROP INDEX {PG_INDEX}")
        began = time.perf_counter()
        for at in range(0, len(rows), per_batch):
            store.write(rows[at : at + per_batch])
        seconds = time.perf_counter() - began
    return seconds / calls * 1e6


def timed(url: str, repeats: int) -> list[dict[str, Any]]:
    from agent_tracer.store import TraceStore

    results = []
    with TraceStore(url) as store:
        store.index_search()  # the catch-up after filling: measured by `catch_up`
        for text in SEARCHES:
            pages, counts = [], []
            found = 0
            for _ in range(repeats):
                began = time.perf_counter()
                store.traces(text=text, limit=50)
                pages.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                found = store.count_traces(text=text)
                counts.append((time.perf_counter() - began) * 1000)
            results.append({"text": text, "runs": found, "page": _pcts(pages), "count": _pcts(counts)})
    return results


def _pcts(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def sqlite_sizes(path: Path) -> list[int]:
    import sqlite3

    from agent_tracer.store.search import FTS_STATE, FTS_TABLE

    conn = sqlite3.connect(path, isolation_level=None)
    sizes = []
    for step in (
        [],
        [f"DROP TABLE {FTS_TABLE}", f"DROP TABLE {FTS_STATE}"],
        ["UPDATE llm_calls SET search_text = NULL"],
    ):
        for statement in step:
            conn.execute(statement)
        conn.execute("VACUUM")
        sizes.append(path.stat().st_size)
    conn.close()
    return sizes


def pg_sizes(url: str) -> list[int]:
    from agent_tracer.store.database import create_engine
    from agent_tracer.store.search import PG_INDEX

    engine = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    total = (
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'"
    )
    sizes = []
    with engine.connect() as conn:
        for step in ([], [f"DROP INDEX {PG_INDEX}"], ["UPDATE llm_calls SET search_text = NULL"]):
            for statement in step:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql("VACUUM FULL")
            sizes.append(int(conn.exec_driver_sql(total).scalar_one()))
    engine.dispose()
    return sizes


def pg_plan(url: str) -> str:
    """Whether PostgreSQL answers a search from the GIN index: the plan's index node, or its scan."""
    from agent_tracer.store import TraceStore
    from agent_tracer.store.queries import trace_query

    chosen = []
    with TraceStore(url) as store, store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        query = trace_query(text="okafor").limit(50)
        compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
        for setting in ("", "SET enable_seqscan = off; SET enable_indexscan = off"):
            if setting:
                conn.exec_driver_sql(setting)
            plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}")]
            node = [line for line in plan if "ix_llm_calls_search" in line or "Seq Scan on llm_calls" in line]
            chosen.append(node[0].strip().lstrip("-> ").split("  (")[0] if node else "?")
    return f"{chosen[0]} (the planner's choice); {chosen[1]} (with sequential scans off)"


def _in_fresh_pg(admin: Any, calls: int, with_index: bool) -> float:
    name = f"agent_tracer_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        return write_cost(admin.url.set(database=name).render_as_string(hide_password=False), calls, with_index)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mb(size: int) -> str:
    return f"{size / 2**20:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="model calls in the store (default 10000)")
    parser.add_argument("--repeats", type=int, default=30, help="times each search runs (default 30)")
    parser.add_argument("--pg", metavar="URL", help="also on PostgreSQL: a server where the role may CREATE DATABASE")
    parser.add_argument(
        "--write-calls",
        type=int,
        default=0,
        help="also time TraceStore.write of this many calls with and without the index, alternated twice",
    )
    args = parser.parse_args()

    stores: list[tuple[str, str, Any]] = []
    folder = Path(tempfile.mkdtemp(prefix="ui-search-"))
    path = folder / "traces.db"
    stores.append(("SQLite", f"sqlite:///{path}", lambda: sqlite_sizes(path)))
    admin = None
    if args.pg:
        from agent_tracer.store.database import create_engine

        admin = create_engine(args.pg).execution_options(isolation_level="AUTOCOMMIT")
        name = f"agent_tracer_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        pg_url = admin.url.set(database=name).render_as_string(hide_password=False)
        stores.append(("PostgreSQL", pg_url, lambda: pg_sizes(pg_url)))

    lines = []
    try:
        for label, url, sizes in stores:
            print(f"{label}: writing {args.calls:,} calls …", file=sys.stderr)
            seconds = fill(url, args.calls)
            caught = catch_up(url, args.calls, args.repeats)
            searches = timed(url, args.repeats)
            plan = pg_plan(url) if label == "PostgreSQL" else None
            full, no_index, no_text = sizes()
            lines.append(
                f"\n{label}: {args.calls:,} calls in {args.calls // 2:,} runs, written in {seconds:.1f} s "
                f"({args.calls / seconds:,.0f} calls/s)"
            )
            lines.append(
                f"store size, MiB: without m003's search (no index, search_text NULL) {mb(no_text)}; "
                f"with search_text, no index {mb(no_index)}; with the index {mb(full)} "
                f"(+{(full - no_text) / no_text:.0%})"
            )
            if plan:
                lines.append(f"plan of a search: {plan}")
            lines.append("search right after writing (traces(text='okafor', limit=50), the catch-up included):")
            for item in caught:
                p50, p95 = _pcts(item["ms"])
                lines.append(
                    f"  {item['new']:>6,} new calls: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({len(item['ms'])} searches)"
                )
            lines.append(f"\nthe searches below: on the {args.calls + 100 * args.repeats:,} calls stored by then")
            lines.append(f"{'search':<16} {'runs':>6}  {'page p50':>8} {'p95 ms':>7}  {'count p50':>9} {'p95 ms':>7}")
            for item in searches:
                (p50, p95), (c50, c95) = item["page"], item["count"]
                text = repr(item["text"])
                lines.append(f"{text:<16} {item['runs']:>6,}  {p50:>8.1f} {p95:>7.1f}  {c50:>9.1f} {c95:>7.1f}")
        for label, _url, _ in stores if args.write_calls else ():
            costs: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(2):
                for with_index in (True, False):
                    if label == "SQLite":
                        fresh = folder / f"write-{round_}-{with_index}.db"
                        costs[with_index].append(write_cost(f"sqlite:///{fresh}", args.write_calls, with_index))
                    else:
                        costs[with_index].append(_in_fresh_pg(admin, args.write_calls, with_index))
            on, off = costs[True], costs[False]
            lines.append(
                f"\n{label}: TraceStore.write of {args.write_calls:,} calls, µs a call (alternated): with the index "
                f"{' / '.join(f'{v:.0f}' for v in on)}, without {' / '.join(f'{v:.0f}' for v in off)} "
                f"({statistics.mean(on) / statistics.mean(off):.2f}×)"
            )
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()
    import sqlite3

    print("Full-text search (bench/ui_search.py)")
    print("\n".join(lines))
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )
    print(f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"command: python bench/ui_search.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
