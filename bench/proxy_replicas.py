"""Replicas behind one route: requests/s through `agent-tracer proxy --routes` with 1, 2 and 3
primary replicas, and what choosing a replica adds to a call (issue 23).

    python bench/proxy_replicas.py [--replicas 1,2,3] [--calls 1000] [--duration 10] [--connections 32]

Each replica is a loopback fake model in its own process (`proxy_overhead.py --serve-upstream`),
as is the fallback; the proxy (one worker, recording into SQLite through its writer process) has
one route whose primary lists the first N replicas. For each N, in rotation `--repeats` times:

- one client, one call after another (`--calls`, after `--warmup`): the p50 of a call's time;
- a load from `--connections` connections for `--duration` seconds (wrk when installed, else the
  asyncio client of `proxy_clients.py`): requests/s, and how the replicas shared it.

The balancing's own cost is also timed in this process: `Router.pick` over the route's replicas
(the fewest calls under way, ties in turn, each replica's breaker asked), the work that one
replica's route does not need, per call in µs (median of timed loops). On a 2-core machine the
load's figures say what the proxy does with the cores the fake replicas leave it: more replicas
do not make the machine faster.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_clients import BODY, load_asyncio, load_wrk, sequential  # noqa: E402
from proxy_overhead import Upstream, probe_expected  # noqa: E402


def routes_yaml(replicas: list[Upstream], fallback: Upstream) -> str:
    listed = "".join(f'      - {{url: "{r.url}/v1", model: tuned}}\n' for r in replicas)
    return (
        f'routes:\n  {BODY["model"]}:\n    primary:\n{listed}    fallback: {{url: "{fallback.url}/v1", model: big}}\n'
    )


def one_round(count: int, upstreams: list[Upstream], fallback: Upstream, args: argparse.Namespace, expected: str):
    from agent_tracer.proxy.process import ProxyProcess

    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "routes.yaml").write_text(routes_yaml(upstreams[:count], fallback))
        proxy = ProxyProcess(fallback.url, tmp / "traces.db", "--routes", str(tmp / "routes.yaml"))
        try:
            timed = sequential(proxy.port, False, args.calls, args.warmup, expected)
            load = load_wrk if args.wrk else (lambda port, s, a, m, _tmp: load_asyncio(port, s, a, m))
            marker = json.dumps(expected)[1:41]  # the answer's start as it reads inside a JSON body
            load(proxy.port, 2.0, args, marker, tmp)  # warm-up
            loaded = load(proxy.port, args.duration, args, marker, tmp)
        finally:
            proxy.stop()
    p50 = statistics.median(timed["ns"]) / 1000
    bad = timed["bad"] + loaded["bad"] + loaded.get("socket_errors", 0)
    return {
        "p50_us": p50,
        "rps": loaded["requests"] / loaded["duration_s"],
        "load_p50_us": loaded["p50_us"],
        "bad": bad,
    }


def pick_us(count: int) -> float:
    """µs per `Router.pick` over `count` replicas, all closed and idle (median of 7 loops)."""
    from agent_tracer.proxy.router import Router
    from agent_tracer.proxy.routes import parse_routes

    replicas = [{"url": f"http://127.0.0.1:{9000 + n}/v1", "model": "tuned"} for n in range(count)]
    spec = {"primary": replicas, "fallback": {"url": "http://127.0.0.1:8999/v1", "model": "big"}}
    route = parse_routes({"routes": {"r": spec}})["r"]
    router = Router(None, None, None, None)  # type: ignore[arg-type]  # picking needs none of them
    loops, times = 20000, []
    for _ in range(7):
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            router.pick(route, route.primaries)
        times.append((time.perf_counter_ns() - t0) / loops / 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts (1 is the baseline)")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls one after another, per round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--python-load", action="store_true", help="the asyncio load even when wrk is there")
    args = parser.parse_args()
    args.wrk = shutil.which("wrk") is not None and not args.python_load
    counts = [int(n) for n in args.replicas.split(",")]
    expected = probe_expected()
    upstreams = [Upstream() for _ in range(max(counts))]
    fallback = Upstream()
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    served: dict[int, list[int]] = {}
    try:
        for _ in range(args.repeats):
            for count in counts:
                rounds[count].append(one_round(count, upstreams, fallback, args, expected))
                print(f"{count} replica(s): {rounds[count][-1]}", file=sys.stderr)
    finally:
        for index, upstream in enumerate(upstreams):
            served[index] = upstream.stop()
        fallback_received = fallback.stop()

    print(f"\nOne route, N primary replicas (loopback fakes), {'wrk' if args.wrk else 'asyncio'} load of "
          f"{args.connections} connections for {args.duration:g} s, {args.repeats} rounds (medians)")  # fmt: skip
    print(f"{'replicas':>8} {'p50 one client µs':>18} {'vs 1':>8} {'requests/s':>11} {'load p50 µs':>12} {'bad':>4}")
    base = statistics.median(r["p50_us"] for r in rounds[counts[0]])
    for count in counts:
        p50 = statistics.median(r["p50_us"] for r in rounds[count])
        rps = statistics.median(r["rps"] for r in rounds[count])
        load_p50 = statistics.median(r["load_p50_us"] for r in rounds[count])
        bad = sum(r["bad"] for r in rounds[count])
        print(f"{count:>8} {p50:>18.0f} {p50 - base:>+8.0f} {rps:>11,.0f} {load_p50:>12.0f} {bad:>4}")
    print(f"requests each replica received over all rounds: {served}; the fallback: {fallback_received}")
    print("\nRouter.pick, µs per call: " + ", ".join(f"{n} replica(s) {pick_us(n):.2f}" for n in counts))


if __name__ == "__main__":
    main()
