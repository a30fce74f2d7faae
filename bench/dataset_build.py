"""Dataset build throughput: traces in the store → SFT JSONL with deduplication and redaction (issue 4).

    python bench/dataset_build.py [--sizes 10000,100000] [--tokenizer none] [--repeats 1]

For each size, a fresh SQLite store is filled with that many agent runs, each a real-shaped tool
loop of two model calls (the 2.1 KB support-agent step of bench/agent_call.py: system prompt, a
customer question, a lookup_order call, its result, the answer), written as the capture writer
writes them. The runs vary: each question joins an opening, one of eight requests and two closing
sentences, with other order ids, products, names, emails and phone numbers (so redaction has
work); 4% are exact repeats of an earlier run and 4% repeat one with a word changed (so both
dedup steps drop rows); 80% are successful.

Then `build_sft` runs on all successful runs with the command's defaults (one row per run, PII
redaction, exact and near dedup at 0.9, a 10% eval split), in a child process of its own so
that its peak memory (the child's maximum resident set) is the build's and not the filling's.
`--tokenizer none` (the default) skips token counting, as the issue's goal measures; name a
model (smollm2) to see what measuring and truncating every row with its chat template costs.
examples/s counts the examples the build read and curated (rows in to the first curation
step), per second of the whole build (reading the store, curating, both passes, writing).

Goal: at least 5,000 examples/s, and memory that stays flat as the count grows (streamed, not
loaded whole). Every figure printed comes from this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's packages
    sys.path.insert(0, str(ROOT))

from agent_call import SYSTEM, TOOL_RESULT, TOOLS  # noqa: E402 (beside this script)

OPENINGS = [
    "Hi,",
    "Hello there.",
    "Good morning!",
    "Hey support,",
    "Dear team,",
    "Quick question:",
    "Help please.",
    "I'm writing again.",
    "Sorry to bother you,",
    "Thanks for the fast reply yesterday.",
]
ASKS = [
    "I ordered {item} last week, order {order}, and tracking has said label created for {days} days.",
    "order {order} ({item}) arrived damaged and I want a refund to my card.",
    "can you check order {order}? I need {item} by {day} and the page shows no update in {days} days.",
    "my name is {name} and I wonder whether order {order} with {item} has shipped; I paid for express.",
    "the {item} in order {order} is the wrong size, can I swap it before {day}?",
    "I was charged twice for order {order}, which only had {item} in it.",
    "is there a discount code for {item}? My last order was {order}.",
    "the courier left order {order} at the wrong address, a neighbour has my {item}.",
]
CLOSINGS = [
    "Will it arrive before my trip on {day}?",
    "You can reach me at {email}.",
    "Call me on {phone} if needed.",
    "I leave for the mountains on {day}.",
    "My partner {name} placed the order.",
    "Please hurry.",
    "The website chat did not help.",
    "I have been a customer for {days} years.",
    "",
]
ITEMS = [
    "a two-person tent",
    "hiking boots",
    "a down sleeping bag",
    "trekking poles",
    "a camp stove",
    "a headlamp",
    "a 40 l backpack",
    "a water filter",
    "rain trousers",
    "a foam mat",
]
NAMES = ["Ana Lima", "Tom Berg", "Wei Chen", "Sara Okafor", "Luca Rossi", "Mia Novak", "Ravi Iyer", "Eva Stone"]
DAYS = ["Saturday", "Friday", "Sunday", "Monday", "the 14th", "the 21st"]
BATCH = 2_000


def fill(path: Path, traces: int, seed: int = 0) -> int:
    """Write `traces` runs into a fresh store at `path`; returns the records written."""
    from agent_tracer.store import TraceStore

    rng = random.Random(seed)
    store = TraceStore(f"sqlite:///{path}")
    made: list[dict[str, Any]] = []
    written = 0
    batch: list[tuple[str, dict[str, Any]]] = []
    start = dt.datetime(2026, 1, 1)
    for n in range(traces):
        roll = rng.random()
        if made and roll < 0.04:  # an exact repeat of an earlier run's conversation
            question, order = made[rng.randrange(len(made))]["q"]
        else:
            order = f"A-{rng.randrange(10**5):05d}"
            template = " ".join([rng.choice(OPENINGS), rng.choice(ASKS), *rng.sample(CLOSINGS, 2)])
            question = template.format(
                item=rng.choice(ITEMS),
                order=order,
                days=rng.randrange(2, 9),
                day=rng.choice(DAYS),
                email=f"{rng.choice(NAMES).split()[0].lower()}{rng.randrange(100)}@example.com",
                phone=f"+1 415 555 {rng.randrange(10**4):04d}",
                name=rng.choice(NAMES),
            )
            if made and roll < 0.08:  # one word changed
                question = question.replace("Hi,", "Hello,") if "Hi," in question else question + " Thanks!"
            made.append({"q": (question, order)})
        batch += _run(n, question, order, start + dt.timedelta(seconds=n), success=rng.random() < 0.8)
        if len(batch) >= BATCH:
            written += store.write(batch)
            batch = []
    if batch:
        written += store.write(batch)
    store.close()
    return written


def _run(n: int, question: str, order: str, at: dt.datetime, success: bool) -> list[tuple[str, dict[str, Any]]]:
    """One traced run: the trace, two calls (the tool call, then the answer), its outcome."""
    trace_id = f"{n:032x}"
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    call = {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order})},
    }
    calling = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": f"call_{n}", "content": TOOL_RESULT.replace("A-10293", order)}
    answer = {
        "role": "assistant",
        "content": f"Order {order} is in transit with UPS and should arrive on June 6th, before your trip.",
    }
    records: list[tuple[str, dict[str, Any]]] = [
        (
            "trace",
            {
                "id": trace_id,
                "name": "support-agent",
                "task": question,
                "started_at": at,
                "ended_at": at,
                "status": "ok",
                "source": "decorator",
            },
        )
    ]
    for i, (request, response) in enumerate(((messages, calling), (messages + [calling, result], answer))):
        body = {"model": "gpt-4o-mini", "messages": request, "tools": TOOLS, "params": {}, "stream": False}
        records.append(
            (
                "llm_call",
                {
                    "id": f"{n * 2 + i:016x}",
                    "trace_id": trace_id,
                    "provider": "openai",
                    "api": "openai.chat",
                    "operation": "chat",
                    "request_model": "gpt-4o-mini",
                    "request": body,
                    "response": {
                        "id": f"r{n}-{i}",
                        "model": "gpt-4o-mini",
                        "message": response,
                        "finish_reasons": ["stop"],
                        "input_tokens": 400,
                        "output_tokens": 30,
                    },
                    "raw_request": json.dumps(body),
                    "status": "ok",
                    "started_at": at,
                    "ended_at": at,
                },
            )
        )
    records.append(
        (
            "feedback",
            {
                "id": f"f{n}",
                "trace_id": trace_id,
                "outcome": "success" if success else "failure",
                "rating": 5.0 if success else 1.0,
                "source": "bench",
            },
        )
    )
    return records


def child(db: Path, out: Path, tokenizer: str) -> None:
    """`--child`: one build, timed; prints its figures as JSON."""
    from agent_tracer.store import TraceStore
    from trainer.data.select import Selection
    from trainer.data.sft import SFTConfig, build_sft

    store = TraceStore(f"sqlite:///{db}", create=False)
    t0 = time.perf_counter()
    result = build_sft(store, Selection(outcome="success"), SFTConfig(out=str(out), model=tokenizer))
    seconds = time.perf_counter() - t0
    steps = {step.name: step.to_dict() for step in result.summary.steps}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "traces": steps["select"]["in"],
                "examples": steps["convert"]["out"],
                "rows": sum(result.summary.splits.values()),
                "dropped": {
                    name: sum(s["reasons"].values())
                    for name, s in steps.items()
                    if name in ("exact dedup", "near dedup")
                },
                "redacted_rows": steps.get("redact", {}).get("reasons", {}).get("rows changed", 0),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "reader_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "out_mb": out.stat().st_size / 2**20,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="traces in the store, comma-separated")
    parser.add_argument("--tokenizer", default="none", help="measure rows with this model's tokenizer (none: don't)")
    parser.add_argument("--repeats", type=int, default=1, help="builds per size (the median is reported)")
    parser.add_argument("--child", nargs=3, metavar=("DB", "OUT", "TOKENIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), Path(args.child[1]), args.child[2])
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp_name:
        tmp = Path(tmp_name)
        for size in sizes:
            db = tmp / f"traces-{size}.db"
            t0 = time.perf_counter()
            records = fill(db, size)
            print(f"filled {size:,} traces ({records:,} records) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            runs = []
            for _ in range(args.repeats):
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", str(db), str(tmp / f"sft-{size}.jsonl"), args.tokenizer],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                if proc.returncode:
                    raise SystemExit(f"the build failed:\n{proc.stderr[-2000:]}")
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            runs.sort(key=lambda r: r["seconds"])
            rows.append((size, runs[len(runs) // 2]))
    print(report(rows, args))


def report(rows: list[tuple[int, dict[str, Any]]], args: argparse.Namespace) -> str:
    header = [
        "traces",
        "successful",
        "examples",
        "rows written",
        "exact dups",
        "near dups",
        "redacted",
        "seconds",
        "examples/s",
        "peak RSS MB",
        "readers' MB",
        "JSONL MB",
    ]
    table = [
        [
            f"{size:,}",
            f"{r['traces']:,}",
            f"{r['examples']:,}",
            f"{r['rows']:,}",
            f"{r['dropped'].get('exact dedup', 0):,}",
            f"{r['dropped'].get('near dedup', 0):,}",
            f"{r['redacted_rows']:,}",
            f"{r['seconds']:.1f}",
            f"{r['examples'] / r['seconds']:,.0f}",
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['reader_rss_mb']:,.0f}" if r["reader_rss_mb"] else "-",
            f"{r['out_mb']:,.1f}",
        ]
        for size, r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(header)]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in [header, *table]]
    speeds = [r["examples"] / r["seconds"] for _, r in rows]
    rss = [r["peak_rss_mb"] for _, r in rows]
    lines += [
        "",
        "goals:",
        f"  at least 5,000 examples/s: {'met' if min(speeds) >= 5000 else 'NOT met'} "
        f"({', '.join(f'{s:,.0f}' for s in speeds)})",
        f"  memory flat as the count grows: peak RSS {' -> '.join(f'{m:,.0f}' for m in rss)} MB for "
        f"{' -> '.join(f'{size:,}' for size, _ in rows)} traces",
        "",
        f"tokenizer: {args.tokenizer}; machine: {os.cpu_count()} cores, {platform.system()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; date: "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"command: python bench/dataset_build.py {' '.join(sys.argv[1:])}".rstrip(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
