"""The search index's idle catch-up (issue 21): what the UI's task saves the first search.

    python bench/ui_catchup.py --store PATH [--text damaged]

On a SQLite store written by bench/ui.py (`--store`; it is changed: its FTS5 index is emptied
twice, and left whole again at the end), the index is emptied (`'delete-all'`, the catch-up's
`last_rowid` set to 0), then a search (`TraceStore.traces(text=…, limit=51)`) times the catch-up
it must do first. The index is emptied again and the UI is started (starlette's TestClient over
`create_app(url, read_only=True)`, whose task indexes in idle time): the runs list is requested
every 0.2 s until every call is indexed (its server time p50 and p95 in ms), then the same search
is requested through the app. Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's packages
    sys.path.insert(0, str(ROOT))


def empty_index(path: Path) -> int:
    """Empty the FTS5 index and its state; return the calls there are to index."""
    from agent_tracer.store.search import FTS_STATE, FTS_TABLE

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('delete-all')")
    conn.execute(f"UPDATE {FTS_STATE} SET last_rowid = 0")
    calls = int(conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0])
    conn.close()
    return calls


def main() -> None:
    from starlette.testclient import TestClient

    from agent_tracer.store import TraceStore
    from agent_tracer.store.search import unindexed_calls
    from agent_tracer.ui import create_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a SQLite store written by bench/ui.py")
    parser.add_argument("--text", default="damaged", help="the search (default: damaged)")
    args = parser.parse_args()
    url = f"sqlite:///{args.store}"

    calls = empty_index(args.store)
    with TraceStore(url, create=False) as store:
        began = time.perf_counter()
        store.traces(text=args.text, limit=51)
        without = time.perf_counter() - began
    empty_index(args.store)
    times: list[float] = []
    with TestClient(create_app(url, read_only=True)) as client, TraceStore(url, create=False) as store:
        began = time.perf_counter()
        while True:
            with store.engine.connect() as conn:
                if not unindexed_calls(conn):
                    break
            start = time.perf_counter()
            client.get("/")
            times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.2)
        caught_up = time.perf_counter() - began
        start = time.perf_counter()
        client.get("/", params={"q": args.text})
        first = (time.perf_counter() - start) * 1000
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))] if times else float("nan")
    print(f"calls to index: {calls:,}")
    print(f"first search ({args.text!r}) without the idle catch-up: {without:.1f} s")
    print(f"idle catch-up while the app ran: {caught_up:.1f} s")
    print(f"runs list meanwhile: {len(times)} requests, p50 {statistics.median(times):.0f} ms, p95 {p95:.0f} ms")
    print(f"first search after it, through the app: {first:.0f} ms")
    print(f"load average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(f"command: python bench/ui_catchup.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
