"""What masking before storage costs the writer a call (issue 24).

    python bench/masking_cost.py [--calls 4000]

The records of real captured calls (`capture_write.py`'s payloads: the `openai` SDK's calls to the
loopback fake model with agent-tracer on, taken on their way to the writer), masked as
`init(mask=…)` masks them in the writer (`Masker.records`): with the `default` rules, with each rule
alone, with none (the walk over every string), then the same records written to SQLite for scale.
Best of 3, µs a call. The agent's path pays none of it: masking runs where the rows are written
(the writer process by default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capture_write import _captured_payloads, _replicas  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls masked per try (default 4000)")
    args = parser.parse_args()

    from agent_tracer.masking import Masker, redactors_for
    from agent_tracer.store import TraceStore
    from agent_tracer.testing import FakeUpstream

    with FakeUpstream() as upstream, tempfile.TemporaryDirectory(prefix="bench-mask-") as tmp:
        captured = _captured_payloads(upstream.openai_base_url, Path(tmp))
        records = [payload.records() for payload in _replicas(captured, args.calls)]
        size = statistics.mean(len(p.raw_request) + len(p.raw_response) for p in captured)
        print(f"{args.calls} calls, raw bodies {size:,.0f} bytes a call on average")
        print("| rules | µs a call |")
        print("|---|---|")
        for names in (["default"], ["secret"], ["email"], ["card"], ["phone"], ["ip"], []):
            masker = Masker(redactors_for(names))
            tries = []
            for _ in range(3):
                started = time.perf_counter()
                for call in records:
                    masker.records(call)
                tries.append((time.perf_counter() - started) / args.calls * 1e6)
            print(f"| {' '.join(names) or 'none (the walk over every string)'} | {min(tries):,.0f} |")
        with TraceStore(f"sqlite:///{Path(tmp) / 'write.db'}") as store:
            started = time.perf_counter()
            for first in range(0, args.calls, 512):
                store.write([record for call in records[first : first + 512] for record in call])
            print(
                f"| (for scale: writing them to SQLite) | {(time.perf_counter() - started) / args.calls * 1e6:,.0f} |"
            )


if __name__ == "__main__":
    main()
