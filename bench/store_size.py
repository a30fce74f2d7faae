"""Bytes a stored model call takes in SQLite, and where they go (issue 24).

    python bench/store_size.py [--runs 300] [--steps 6] [--seed 7]

`--runs` agent runs through the official `openai` SDK with `agent_tracer.init` (the transport
capture, the writer thread) against the loopback fake model, into a fresh SQLite file. Each run
is one agent loop of `--steps` model calls: a system prompt of about 1.5 KB, three tool
definitions, the user's question; the model calls a tool at each step but the last (each result
a JSON object of about 700 bytes of text), then answers. So each request carries the whole
conversation so far, as agents send it. The text is drawn from a vocabulary of 600 words with a
fixed seed: it compresses about as English does, not as a repeated string would.

Printed: the file's size (after a WAL checkpoint, and after VACUUM), bytes a call, each column's
share of `llm_calls` (`sum(length(...))`: characters of text, bytes of a blob), and each table's and
index's pages (SQLite's `dbstat`, when it is compiled in). Compare two versions by running this
script over each, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ("raw_request", "raw_response", "request", "response", "search_text")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for, in plain words."}},
                "required": ["query"],
            },
        },
    }
    for name, description in (
        ("search_orders", "Find a customer's orders by number, name or date, newest first."),
        ("search_policies", "Search the refund, shipping and warranty policies for a passage."),
        ("lookup_customer", "A customer's account: name, address, tier and open tickets."),
    )
]


def vocabulary(rng: random.Random) -> list[str]:
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 7, 7, 6, 6, 6, 5, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    return ["".join(rng.choices(letters, weights, k=rng.randint(2, 9))) for _ in range(600)]


def prose(rng: random.Random, words: list[str], size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out).capitalize() + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="Agent runs (default 300).")
    parser.add_argument("--steps", type=int, default=6, help="Model calls a run (default 6).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the text (default 7).")
    args = parser.parse_args()

    import openai

    import agent_tracer
    from agent_tracer.testing import FakeUpstream, Reply

    rng = random.Random(args.seed)
    words = vocabulary(rng)
    system = "You are the support desk's assistant. " + prose(rng, words, 1500)

    def script(body: dict[str, Any]) -> Reply:
        done = sum(1 for message in body.get("messages", []) if message.get("role") == "tool")
        if done < args.steps - 1:
            tool = TOOLS[done % len(TOOLS)]["function"]["name"]
            return Reply(calls=[(tool, {"query": prose(rng, words, 60)})])
        return Reply(content=prose(rng, words, 400))

    with tempfile.TemporaryDirectory(prefix="store-size-") as tmp, FakeUpstream(reply=script) as upstream:
        db = Path(tmp) / "size.db"
        agent_tracer.init(db=f"sqlite:///{db}", writer="thread", spill_path=str(Path(tmp) / "spill.jsonl"))
        client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-bench", max_retries=0)
        started = time.perf_counter()
        for run in range(args.runs):
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Ticket {run}: " + prose(rng, words, 200)},
            ]
            while True:
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                message = reply.choices[0].message
                if not message.tool_calls:
                    break
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    result = {"query": json.loads(call.function.arguments)["query"], "found": prose(rng, words, 700)}
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        assert agent_tracer.flush(timeout=120)
        elapsed = time.perf_counter() - started
        agent_tracer.uninstrument()

        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            calls = conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
            columns = conn.execute(
                "SELECT " + ", ".join(f"coalesce(sum(length({c})), 0)" for c in COLUMNS) + " FROM llm_calls"
            ).fetchone()
            try:
                pages = conn.execute(
                    "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 12"
                ).fetchall()
            except sqlite3.OperationalError:  # SQLite built without dbstat
                pages = []
        size = db.stat().st_size
        with sqlite3.connect(db) as conn:
            conn.execute("VACUUM")
        vacuumed = db.stat().st_size

    print(f"Python {platform.python_version()}, {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}")
    print(f"{args.runs} runs × {args.steps} steps: {calls} calls stored in {elapsed:.1f} s")
    print()
    print("| | bytes | a call |")
    print("|---|---|---|")
    print(f"| file (after a WAL checkpoint) | {size:,} | {size / calls:,.0f} |")
    print(f"| file after VACUUM | {vacuumed:,} | {vacuumed / calls:,.0f} |")
    for name, total in zip(COLUMNS, columns):
        print(f"| `llm_calls.{name}` | {total:,} | {total / calls:,.0f} |")
    for name, total in pages:
        print(f"| pages of `{name}` | {total:,} | {total / calls:,.0f} |")


if __name__ == "__main__":
    main()
