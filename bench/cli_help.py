"""CLI start-up: how long `agent-tracer --help` and a subcommand's `--help` take (issue 20).

    python bench/cli_help.py [--runs 11] [--root CHECKOUT]

Each command runs N times in a fresh process, as a user's shell starts it: the installed
`agent-tracer` console script beside this Python (else `python -m agent_tracer.cli`), with
PYTHONPATH set to the checkout (`--root`, default the one holding this script), so an older
checkout can be timed by the same script. One untimed run first warms the file cache. Printed:
median, minimum and maximum wall-clock milliseconds per command, until the process has exited;
the first row, `python -c pass`, is the floor: starting the interpreter (and site) alone.

Goal: `agent-tracer --help` under 300 ms; a subcommand's `--help` no slower than before.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [["--help"], ["traces", "--help"], ["train", "sft", "--help"]]


def launcher() -> list[str]:
    script = Path(sys.executable).parent / "agent-tracer"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "agent_tracer.cli"]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="Timed runs per command (default 11).")
    parser.add_argument("--root", type=Path, default=ROOT, help="The checkout to time (default: this one).")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.root.resolve())}
    base = launcher()
    print(f"{' '.join(base)} from {args.root.resolve()}; Python {platform.python_version()}, {os.cpu_count()} cores")
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands.update({"agent-tracer " + " ".join(arguments): [*base, *arguments] for arguments in COMMANDS})
    rows = []
    for name, command in commands.items():
        timed(command, env)
        times = [timed(command, env) for _ in range(args.runs)]
        rows.append([name, statistics.median(times), min(times), max(times)])
    width = max(len(row[0]) for row in rows)
    print(f"{'command':<{width}}  runs  median ms  min ms  max ms")
    for name, median, low, high in rows:
        print(f"{name:<{width}}  {args.runs:>4}  {median:>9.0f}  {low:>6.0f}  {high:>6.0f}")


if __name__ == "__main__":
    main()
