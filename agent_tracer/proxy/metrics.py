"""The proxy's counters, served at `/metrics` in Prometheus' text exposition format.

    agent_tracer_proxy_requests_total{api,recorded,code}       requests answered, by HTTP status
    agent_tracer_proxy_request_duration_seconds{api}           arrival to the end of the answer's body
    agent_tracer_proxy_upstream_errors_total{api,reason}       unreachable, timeout, broken_body,
                                                               http_429, http_5xx
    agent_tracer_proxy_routed_total{route,answered_by,reason}  routed calls (`--routes`): answered by
                                                               primary or fallback (and shadow calls
                                                               made), with the fallback reason
    agent_tracer_proxy_replica_calls_total{route,replica,reason}
                                                               calls to each primary replica (its URL),
                                                               reason "" when its answer was kept
    agent_tracer_http_refused_total{code}                      requests refused before the app: 431 (head
                                                               over 64 KiB), 408 (head not whole in 60 s)
    agent_tracer_proxy_requests_in_flight                      being answered now
    agent_tracer_proxy_pruned_runs_total                       runs deleted by --retention
    agent_tracer_store_up                                      0 while the store refuses writes
    agent_tracer_writer_queued                                 calls captured, not yet written or spilled
    agent_tracer_writer_oldest_unwritten_seconds               how long the oldest of them has waited
    agent_tracer_spill_bytes                                   the spill file's size (loaded back and
                                                               emptied once the store is up again)
    agent_tracer_store_writes_total, _write_seconds_total      batches written and their time
    agent_tracer_spans_total{stage}                            the store writer's counts: captured,
                                                               written, retried, spilled, reloaded,
                                                               dropped, lost (held by a killed process,
                                                               counted at the next start),
                                                               capture_errors, merged
    agent_tracer_otlp_*                                        OTLP exports at /v1/traces and /v1/logs:
                                                               requests by code, spans and log records
                                                               by result, the OTLP writer's counts
                                                               (`agent_tracer/otlp/receiver.py`;
                                                               this worker's only, with --workers)

Kept in plain dicts, not a metrics library: one proxy request adds two counts and one histogram
observation under the event loop's single thread, and nothing more needs to be paid on the hot path.

With several workers (`agent-tracer proxy --workers N`), a scrape reaches one of them; each worker
writes its totals to a file of its own in a shared folder once a second and when it stops, and
`/metrics` adds up its own live totals and the other workers' files. A worker that died keeps its
counts in the sum (counters never go down), but not its in-flight gauge.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds of the duration histogram, in seconds: model calls take milliseconds to minutes."""

UPSTREAM_ERROR_REASONS = ("unreachable", "timeout", "broken_body", "http_429", "http_5xx")


class Metrics:
    """One worker's counts. `stats` returns the store writer's span counts (`CaptureStats`)."""

    def __init__(
        self,
        stats: Callable[[], dict[str, int]],
        directory: str | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._stats = stats
        self._health = health
        self._directory = Path(directory) if directory else None
        self.requests: dict[tuple[str, bool, int], int] = defaultdict(int)
        self.upstream_errors: dict[tuple[str, str], int] = defaultdict(int)
        self.routes: dict[tuple[str, str, str], int] = defaultdict(int)
        self.replicas: dict[tuple[str, str, str], int] = defaultdict(int)
        self.pruned_runs = 0
        self.durations: dict[str, list[float]] = {}
        """api → per-bucket counts (len(BUCKETS) + 1, the last for +Inf), then sum, then count."""
        self.in_flight = 0

    # -- counting (the event loop's thread only)

    def observe(self, api: str, recorded: bool, code: int, seconds: float) -> None:
        """One request answered with `code`, `seconds` after it arrived."""
        self.requests[(api, recorded, code)] += 1
        histogram = self.durations.get(api)
        if histogram is None:
            histogram = self.durations[api] = [0.0] * (len(BUCKETS) + 3)
        histogram[bisect.bisect_left(BUCKETS, seconds)] += 1
        histogram[-2] += seconds
        histogram[-1] += 1

    def upstream_error(self, api: str, reason: str) -> None:
        self.upstream_errors[(api, reason)] += 1

    def routed(self, route: str, answered_by: str, reason: str) -> None:
        """A routed call answered by "primary" or "fallback" (or a "shadow" call made); `reason`
        is the fallback reason, "" for none."""
        self.routes[(route, answered_by, reason)] += 1

    def pruned(self, runs: int) -> None:
        """Runs deleted by this worker's --retention."""
        self.pruned_runs += runs

    def replica(self, route: str, url: str, reason: str) -> None:
        """A call to one of a route's primary replicas: `reason` "" when its answer was kept, else
        why not (the fallback reason, or why the next replica was asked)."""
        self.replicas[(route, url, reason)] += 1

    # -- sharing between workers

    def snapshot(self) -> dict[str, Any]:
        from agent_tracer.http_protocol import refused  # with uvicorn's protocol: loaded by then

        return {
            "pid": os.getpid(),
            "requests": [[api, recorded, code, n] for (api, recorded, code), n in self.requests.items()],
            "upstream_errors": [[api, reason, n] for (api, reason), n in self.upstream_errors.items()],
            "routed": [[*key, n] for key, n in self.routes.items()],
            "replicas": [[*key, n] for key, n in self.replicas.items()],
            "pruned_runs": self.pruned_runs,
            "refused": refused(),
            "durations": {api: list(counts) for api, counts in self.durations.items()},
            "in_flight": self.in_flight,
            "spans": self._stats(),
            "health": self._health() if self._health is not None else None,
        }

    def save(self) -> None:
        """Write this worker's totals for the others to read (atomically: a reader never sees half)."""
        if self._directory is None:
            return
        path = self._directory / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.snapshot()))
        os.replace(temporary, path)

    def _all_snapshots(self) -> list[dict[str, Any]]:
        own = self.snapshot()
        snapshots = [own]
        if self._directory is None:
            return snapshots
        for path in sorted(self._directory.glob("*.json")):
            if path.stem == str(own["pid"]):
                continue
            try:
                snapshot = json.loads(path.read_text())
            except (OSError, ValueError):  # being replaced right now: its last totals are a second old
                continue
            if not _alive(snapshot.get("pid")):
                snapshot["in_flight"] = 0
            snapshots.append(snapshot)
        return snapshots

    # -- exposition

    def render(self) -> str:
        """All workers' totals in the Prometheus text format (version 0.0.4)."""
        from agent_tracer.http_protocol import refused_lines

        requests: dict[tuple[str, bool, int], int] = defaultdict(int)
        errors: dict[tuple[str, str], int] = defaultdict(int)
        routed: dict[tuple[str, str, str], int] = defaultdict(int)
        replicas: dict[tuple[str, str, str], int] = defaultdict(int)
        durations: dict[str, list[float]] = {}
        spans: dict[str, int] = defaultdict(int)
        refused: dict[str, int] = defaultdict(int)
        in_flight = pruned = 0
        healths = []
        for snapshot in self._all_snapshots():
            for api, recorded, code, n in snapshot["requests"]:
                requests[(api, recorded, code)] += n
            for api, reason, n in snapshot["upstream_errors"]:
                errors[(api, reason)] += n
            for route, answered_by, reason, n in snapshot.get("routed", ()):
                routed[(route, answered_by, reason)] += n
            for route, url, reason, n in snapshot.get("replicas", ()):
                replicas[(route, url, reason)] += n
            for api, counts in snapshot["durations"].items():
                total = durations.setdefault(api, [0.0] * len(counts))
                for i, value in enumerate(counts):
                    total[i] += value
            for stage, n in snapshot["spans"].items():
                spans[stage] += n
            for code, n in snapshot.get("refused", {}).items():
                refused[code] += n
            in_flight += snapshot["in_flight"]
            pruned += snapshot.get("pruned_runs", 0)
            if snapshot.get("health") and _alive(snapshot.get("pid")):
                healths.append(snapshot["health"])

        out: list[str] = []
        _family(
            out,
            "agent_tracer_proxy_requests_total",
            "counter",
            "Requests the proxy answered, by API, whether the call was recorded, and HTTP status.",
        )
        for (api, recorded, code), n in sorted(requests.items()):
            out.append(
                f'agent_tracer_proxy_requests_total{{api="{api}",recorded="{str(recorded).lower()}",code="{code}"}} {n}'
            )
        name = "agent_tracer_proxy_request_duration_seconds"
        _family(out, name, "histogram", "From a request's arrival to the end of its answer's body.")
        for api, counts in sorted(durations.items()):
            cumulative = 0.0
            for bound, count in zip((*BUCKETS, float("inf")), counts):
                cumulative += count
                out.append(f'{name}_bucket{{api="{api}",le="{_le(bound)}"}} {cumulative:g}')
            out.append(f'{name}_sum{{api="{api}"}} {counts[-2]!r}')
            out.append(f'{name}_count{{api="{api}"}} {counts[-1]:g}')
        _family(
            out,
            "agent_tracer_proxy_upstream_errors_total",
            "counter",
            "Upstream failures: unreachable, timeout, broken_body, http_429, http_5xx.",
        )
        for (api, reason), n in sorted(errors.items()):
            out.append(f'agent_tracer_proxy_upstream_errors_total{{api="{api}",reason="{reason}"}} {n}')
        _family(
            out,
            "agent_tracer_proxy_routed_total",
            "counter",
            "Routed calls by route, by who answered (primary, fallback; shadow calls made) and fallback reason.",
        )
        for (route, answered_by, reason), n in sorted(routed.items()):
            out.append(
                f'agent_tracer_proxy_routed_total{{route="{_label(route)}",answered_by="{answered_by}",'
                f'reason="{reason}"}} {n}'
            )
        _family(
            out,
            "agent_tracer_proxy_replica_calls_total",
            "counter",
            'Calls to each primary replica of a route, by why its answer was not kept ("" when it was).',
        )
        for (route, url, reason), n in sorted(replicas.items()):
            out.append(
                f'agent_tracer_proxy_replica_calls_total{{route="{_label(route)}",replica="{_label(url)}",'
                f'reason="{reason}"}} {n}'
            )
        out.extend(refused_lines(refused))
        _family(out, "agent_tracer_proxy_requests_in_flight", "gauge", "Requests being answered now.")
        out.append(f"agent_tracer_proxy_requests_in_flight {in_flight}")
        _family(out, "agent_tracer_proxy_pruned_runs_total", "counter", "Runs deleted by --retention.")
        out.append(f"agent_tracer_proxy_pruned_runs_total {pruned}")
        if healths:
            _health_lines(out, healths)
        _family(
            out,
            "agent_tracer_spans_total",
            "counter",
            "Recorded spans by stage of the store writer: captured, written, retried, spilled, reloaded, "
            "dropped, lost (held by a killed process, counted at the next start), capture_errors, merged.",
        )
        for stage, n in sorted(spans.items()):
            out.append(f'agent_tracer_spans_total{{stage="{stage}"}} {n}')
        return "\n".join(out) + "\n"


def _health_lines(out: list[str], healths: list[dict[str, Any]]) -> None:
    """The writers' health, over the live workers: the store is up only if every worker writes;
    queues add up; the oldest wait and the spill file (one, shared) are the largest seen."""
    gauges = (
        ("agent_tracer_store_up", "Whether the trace store takes writes (0 while writes fail and calls are spilled).",
         int(all(h["store"] == "ok" for h in healths))),
        ("agent_tracer_writer_queued", "Calls captured and not yet written or spilled.",
         sum(h["queued"] for h in healths)),
        ("agent_tracer_writer_oldest_unwritten_seconds", "How long the oldest call not yet written has waited.",
         max(h["oldest_unwritten_s"] for h in healths)),
        ("agent_tracer_spill_bytes", "Size of the spill file, loaded back once the store takes writes again.",
         max(h["spill_bytes"] for h in healths)),
    )  # fmt: skip
    for name, help_text, value in gauges:
        _family(out, name, "gauge", help_text)
        out.append(f"{name} {value:g}")
    _family(out, "agent_tracer_store_writes_total", "counter", "Batches written to the trace store.")
    out.append(f"agent_tracer_store_writes_total {sum(h['writes'] for h in healths)}")
    _family(out, "agent_tracer_store_write_seconds_total", "counter", "Time spent writing those batches.")
    out.append(f"agent_tracer_store_write_seconds_total {sum(h['write_seconds'] for h in healths):g}")


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _label(value: str) -> str:
    """A label value escaped as the exposition format asks (route names come from a user's file)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


__all__ = ["BUCKETS", "Metrics", "UPSTREAM_ERROR_REASONS"]
