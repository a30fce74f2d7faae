"""Web UI page times (issue 21): server time per page over a store of many runs.

    python bench/ui.py [--runs 100000] [--requests 30] [--store PATH]
                       [--pg postgresql+psycopg://… [--pg-db NAME] [--no-sqlite]]

A SQLite store of `--runs` runs (reused when `--store PATH` exists, else written there; without
`--store` a temporary one) is filled with `TraceStore.write` in batches of 2,000 records: runs of
five agents, one to three model calls each (four models, the support questions of
bench/dataset_build.py to search, a tool call in most, 3 % of calls failed), feedback with
outcomes and ratings on most, tags (10 % `held-out`), plus one run of 1,000 calls. A reused store
first gets the migrations it lacks. Each page is then requested in-process with starlette's
TestClient against `create_app(url, read_only=True)`, `--requests` times after two warm-up
requests (one, and fewer timed, for a page slower than 20 s in all), and its server time (the
request's wall time in this process, no network) is given as p50 and p95 in ms, with the rows
the page shows, and the machine's load average when the timing ended (other jobs skew it).
Sizes: the store (VACUUMed), and the same without migration m003's FTS5 index. With `--pg`: the
same on PostgreSQL, in a database of its own that is dropped afterwards, or in `--pg-db NAME`,
reused when it exists (else written) and kept (sizes: the tables with their indexes, and without
the GIN index); `--no-sqlite` times PostgreSQL only.

Goals (issue 21): the list and each filter at most 150 ms p95; search at most 500 ms p95 at a
million runs; a run page of 1,000 model calls at most 500 ms. Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import shutil
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

from dataset_build import ASKS, CLOSINGS, DAYS, ITEMS, NAMES, OPENINGS, TOOL_RESULT  # noqa: E402
from ui_search import _pcts, mb  # noqa: E402

AGENTS = ["support-agent", "billing-agent", "travel-planner", "code-reviewer", "research-agent"]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "qwen2.5-7b-instruct"]
TAGS = ["prod", "staging", "beta", "regression", "vip"]
BIG_RUN = "b" * 32
START = dt.datetime(2026, 1, 1)
PAGE_BUDGET_S = 20
"""A page's timed requests stop once they have taken this long (the count is then printed)."""


def _question(rng: random.Random, order: str) -> str:
    return " ".join([rng.choice(OPENINGS), rng.choice(ASKS), *rng.sample(CLOSINGS, 2)]).format(
        item=rng.choice(ITEMS),
        order=order,
        days=rng.randrange(2, 9),
        day=rng.choice(DAYS),
        email=f"{rng.choice(NAMES).split()[0].lower()}{rng.randrange(100)}@example.com",
        phone=f"+1 415 555 {rng.randrange(10**4):04d}",
        name=rng.choice(NAMES),
    )


def _call(trace_id: str, n: int, i: int, at: dt.datetime, model: str, question: str, rng: random.Random) -> dict:
    order = f"A-{rng.randrange(10**5):05d}"
    tool = rng.random() < 0.7
    failed = rng.random() < 0.03
    messages = [{"role": "user", "content": question}]
    if tool:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": f'{{"order_id": "{order}"}}'},
                }
            ],
        }
        messages.append({"role": "tool", "tool_call_id": f"call_{n}_{i}", "content": TOOL_RESULT})
    else:
        message = {"role": "assistant", "content": f"Order {order} is in transit and should arrive soon."}
    row: dict[str, Any] = {
        "id": f"{n:010x}{i:06x}",
        "trace_id": trace_id,
        "provider": "openai",
        "api": "openai.chat",
        "operation": "chat",
        "request_model": model,
        "request": {"model": model, "messages": messages, "params": {}, "stream": False},
        "status": "error" if failed else "ok",
        "started_at": at + dt.timedelta(milliseconds=300 * i),
        "ended_at": at + dt.timedelta(milliseconds=300 * i + 250),
        "latency_ms": 250.0,
        "input_tokens": rng.randrange(100, 900),
    }
    if failed:
        row.update(error="RateLimitError: 429 Too Many Requests", http_status=429)
    else:
        row.update(
            response={
                "id": f"r{n}-{i}",
                "model": model,
                "message": message,
                "finish_reasons": ["tool_calls" if tool else "stop"],
                "input_tokens": row["input_tokens"],
                "output_tokens": 30,
            },
            output_tokens=30,
        )
    return row


def records(runs: int, seed: int = 0) -> Any:
    """Batches of about 2,000 records: `runs` varied runs, then the run of 1,000 calls."""
    rng = random.Random(seed)
    batch: list[tuple[str, dict[str, Any]]] = []
    for n in range(runs):
        trace_id = f"{n:032x}"
        at = START + dt.timedelta(seconds=30 * n)
        question = _question(rng, f"A-{rng.randrange(10**5):05d}")
        tags = rng.sample(TAGS, rng.randrange(0, 3)) + (["held-out"] if rng.random() < 0.1 else [])
        model = rng.choice(MODELS)
        calls = [_call(trace_id, n, i, at, model, question, rng) for i in range(rng.randrange(1, 4))]
        failed = calls[-1]["status"] == "error"
        batch.append(
            (
                "trace",
                {
                    "id": trace_id,
                    "name": rng.choice(AGENTS),
                    "task": question,
                    "started_at": at,
                    "ended_at": at + dt.timedelta(milliseconds=300 * len(calls)),
                    "status": "error" if failed else "ok",
                    "source": "decorator",
                    "tags": tags,
                },
            )
        )
        batch += [("llm_call", call) for call in calls]
        if rng.random() < 0.8:
            success = not failed and rng.random() < 0.75
            batch.append(
                (
                    "feedback",
                    {
                        "id": f"f{n}",
                        "trace_id": trace_id,
                        "outcome": "success" if success else "failure",
                        "rating": float(rng.randrange(3, 6) if success else rng.randrange(1, 3)),
                        "source": "bench",
                    },
                )
            )
        if len(batch) >= 2000:
            yield batch
            batch = []
    at = START + dt.timedelta(seconds=30 * runs)
    batch.append(("trace", {"id": BIG_RUN, "name": "long-agent", "task": "a run of 1,000 calls", "started_at": at}))
    question = _question(rng, "A-00001")
    for i in range(1000):
        batch.append(("llm_call", _call(BIG_RUN, runs + 1, i, at, MODELS[0], question, rng)))
    yield batch


def fill(url: str, runs: int) -> float:
    from agent_tracer.store import TraceStore

    began = time.perf_counter()
    with TraceStore(url, create=True) as store:
        for batch in records(runs):
            store.write(batch)
        store.index_search()
    return time.perf_counter() - began


def pages(client: Any) -> list[tuple[str, str]]:
    """(label, path) of each page timed; the keyset step's cursor is read from the list's Next link."""
    first = client.get("/").text
    found = re.search(r'href="[^"]*[?&](?:amp;)?after=([^"&]+)', first)
    after = f"/?after={found.group(1)}" if found else "/?after=missing"
    return [
        ("runs list", "/"),
        ("next page (after=)", after.replace("&amp;", "&")),
        ("name=billing-agent", "/?name=billing-agent"),
        ("outcome=failure", "/?outcome=failure"),
        ("rating=4", "/?rating=4"),
        ("tag=vip", "/?tag=vip"),
        ("model=gpt-4o", "/?model=gpt-4o"),
        ("since+until (a week)", "/?since=2026-01-10&until=2026-01-17"),
        ("tools=no", "/?tools=no"),
        ("tools=yes", "/?tools=yes"),
        ("status=error", "/?status=error"),
        ("held_out=yes", "/?held_out=yes"),
        ("held_out=no", "/?held_out=no"),
        ("q=okafor", "/?q=okafor"),
        ("q=damaged", "/?q=damaged"),
        ("q=sleeping bag", "/?q=sleeping+bag"),
        ("q=zebra (none)", "/?q=zebra"),
        ("q=damaged&name=…&status=error", "/?q=damaged&name=support-agent&status=error"),
        ("run page, 3 calls", "/runs/" + f"{0:032x}"),
        ("run page, 1,000 calls", f"/runs/{BIG_RUN}"),
        ("overview", "/overview"),
        ("review", "/review"),
    ]


def _rows(path: str, html: str) -> str:
    """Rows shown: a list's table rows (less the header), a run page's waterfall rows."""
    if path.startswith("/runs/"):
        return str(html.count('class="wf-row'))
    if path.startswith("/?") or path == "/":
        return str(max(html.count("<tr") - 1, 0))
    return "-"


def timed(url: str, requests: int) -> tuple[list[tuple[str, float, float, str, int]], str]:
    """Each page's (label, p50, p95, rows, status), and when the timing ended with the load then."""
    from starlette.testclient import TestClient

    from agent_tracer.ui import create_app

    out = []
    from agent_tracer.store import TraceStore

    TraceStore(url).close()  # migrations this store lacks, before the clock starts
    with TestClient(create_app(url, read_only=True)) as client:
        for label, path in pages(client):
            began = time.perf_counter()
            response = client.get(path)
            if time.perf_counter() - began < 5:
                response = client.get(path)
            times: list[float] = []
            while len(times) < requests and sum(times) < PAGE_BUDGET_S * 1000:
                began = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - began) * 1000)
            if len(times) < requests:
                label = f"{label} (n={len(times)})"
            p50, p95 = _pcts(times)
            out.append((label, p50, p95, _rows(path, response.text), response.status_code))
    return out, f"{dt.datetime.now(dt.timezone.utc):%H:%M} UTC; load average {_load()}"


def sqlite_sizes(path: Path) -> tuple[int, int]:
    """The store's size VACUUMed, and again without the FTS5 index (on a copy)."""
    import sqlite3

    from agent_tracer.store.search import FTS_STATE, FTS_TABLE

    copy = path.with_name(path.name + ".copy")
    shutil.copy(path, copy)
    sizes = []
    conn = sqlite3.connect(copy, isolation_level=None)
    for step in ([], [f"DROP TABLE {FTS_TABLE}", f"DROP TABLE {FTS_STATE}"]):
        for statement in step:
            conn.execute(statement)
        conn.execute("VACUUM")
        sizes.append(copy.stat().st_size)
    conn.close()
    copy.unlink()
    return sizes[0], sizes[1]


def pg_sizes(url: str) -> tuple[int, int]:
    from agent_tracer.store.database import create_engine
    from agent_tracer.store.search import PG_INDEX

    engine = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    total = (
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'"
    )
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        full = int(conn.exec_driver_sql(total).scalar_one())
        index = int(conn.exec_driver_sql(f"SELECT pg_relation_size('{PG_INDEX}')").scalar_one())
    engine.dispose()
    return full, full - index


def report(label: str, runs: int, seconds: float | None, timing: tuple[list, str], sizes: tuple[int, int]) -> list[str]:
    results, when = timing
    full, no_index = sizes
    lines = [f"\n{label}: {runs:,} runs + one of 1,000 calls" + (f", written in {seconds:.0f} s" if seconds else "")]
    lines.append(f"timed by {when}")
    if full:
        lines.append(
            f"store size: {mb(full)} MiB; without the search index {mb(no_index)} MiB "
            f"(index {mb(full - no_index)} MiB, {(full - no_index) / full:.0%})"
        )
    lines.append(f"{'page':<32} {'p50 ms':>7} {'p95 ms':>7} {'rows':>5}")
    for name, p50, p95, rows, status in results:
        lines.append(f"{name:<32} {p50:>7.1f} {p95:>7.1f} {rows:>5}" + ("" if status == 200 else f"  HTTP {status}"))
    return lines


def on_postgresql(server: str, keep: str | None, runs: int, requests: int) -> list[str]:
    """The PostgreSQL half: in the database `keep` (reused when it exists, else written there, and
    kept), or in one of its own that is dropped afterwards."""
    from agent_tracer.store.database import create_engine

    admin = create_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    name = keep or f"agent_tracer_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        exists = conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        pg_url = admin.url.set(database=name).render_as_string(hide_password=False)
        seconds = None
        if not exists:
            print(f"PostgreSQL: writing {runs:,} runs …", file=sys.stderr)
            seconds = fill(pg_url, runs)
        from agent_tracer.store import TraceStore

        TraceStore(pg_url).close()  # migrations this store lacks, before its size
        sizes = pg_sizes(pg_url)
        print("PostgreSQL: timing pages …", file=sys.stderr)
        return report("PostgreSQL", runs, seconds, timed(pg_url, requests), sizes)
    finally:
        if keep is None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _load() -> str:
    """The 1, 5 and 15 minute load averages (other jobs on the machine skew the times)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store (default 100000)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (default 30)")
    parser.add_argument("--store", type=Path, help="SQLite file: reused if it exists, else written there")
    parser.add_argument("--pg", metavar="URL", help="also on PostgreSQL: a server where the role may CREATE DATABASE")
    parser.add_argument(
        "--pg-db", metavar="NAME", help="with --pg: this database, reused if it exists, else written; kept"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL (with --pg)")
    parser.add_argument(
        "--no-sizes", action="store_true", help="skip the SQLite store's sizes (a copy, VACUUMed twice)"
    )
    args = parser.parse_args()

    folder = None
    path = args.store
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="ui-bench-"))
        path = folder / "traces.db"
    lines: list[str] = []
    try:
        url = f"sqlite:///{path}"
        seconds = None
        if not args.no_sqlite:
            if not path.exists():
                print(f"SQLite: writing {args.runs:,} runs …", file=sys.stderr)
                seconds = fill(url, args.runs)
            print("SQLite: timing pages …", file=sys.stderr)
            sizes = (0, 0) if args.no_sizes else sqlite_sizes(path)
            lines += report("SQLite", args.runs, seconds, timed(url, args.requests), sizes)
        if args.pg:
            lines += on_postgresql(args.pg, args.pg_db, args.runs, args.requests)
    finally:
        if folder is not None:
            shutil.rmtree(folder)
    import sqlite3

    print("Web UI page times (bench/ui.py)")
    print("\n".join(lines))
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )
    print(f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"command: python bench/ui.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
