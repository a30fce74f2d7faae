"""What noting a call's span costs the agent's thread, before and past the note's limit.

    python bench/wire_calls.py [--calls 60000]

The transport capture notes the span each model call was recorded in (`recorder.WireCalls`, up
to 16,384 span ids, the oldest dropped first) on the agent's thread, as the request goes out. A
process that makes more calls than that, with no framework span taking them (`@trace_agent`, the
plain capture), runs past the limit from then on: this prints µs per note below the limit and
past it, with real OpenTelemetry SDK spans (one run's span as every call's parent).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60_000)
    args = parser.parse_args()

    from opentelemetry.sdk.trace import TracerProvider

    from agent_tracer.recorder import WireCalls

    tracer = TracerProvider().get_tracer("bench")
    with tracer.start_as_current_span("agent run"):
        spans = [tracer.start_span("call") for _ in range(args.calls)]
    below, past = spans[:10_000], spans[20_000:]
    print("| calls noted | µs a note (best of 3) |")
    print("|---|---|")
    cases = (("the first 10,000 (below the limit)", [], below), ("past the limit", spans[:20_000], past))
    for label, warm, timed in cases:
        best = float("inf")
        for _ in range(3):
            calls = WireCalls()
            for span in warm:
                calls.add(span)
            started = time.perf_counter()
            for span in timed:
                calls.add(span)
            best = min(best, (time.perf_counter() - started) / len(timed) * 1e6)
        print(f"| {label} | {best:.2f} |")


if __name__ == "__main__":
    main()
