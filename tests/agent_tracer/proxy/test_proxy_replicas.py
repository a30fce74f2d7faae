"""Replicas behind one route: three loopback upstreams as the primary of `agent-tracer proxy
--routes`, a frontier stand-in as the fallback, a load of a few thousand requests from several
clients, one replica killed and restarted in the middle. What a user checks: no request fails,
the load spreads over the replicas, the dead one is taken out by its breaker and put back when
it answers again, and every answer is recorded with the replica that gave it."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import httpx

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.testing.upstream import FakeUpstream

REQUESTS = 2400
CLIENTS = 8
KILL_AT, RESTART_AT = 600, 1500
COOLDOWN_S = 0.5


def routes_yaml(replicas: list[FakeUpstream], fallback: FakeUpstream) -> str:
    listed = "".join(f'      - {{url: "{r.openai_base_url}", model: tuned}}\n' for r in replicas)
    return (
        "routes:\n  support-agent:\n    mode: fallback\n    primary:\n"
        + listed
        + f'    fallback: {{url: "{fallback.openai_base_url}", model: frontier}}\n'
        + f"    breaker: {{failures: 2, cooldown_s: {COOLDOWN_S}}}\n"
    )


def test_three_replicas_share_a_load_and_a_killed_one_loses_no_request(tmp_path):
    with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c, FakeUpstream() as frontier:
        replicas = [a, b, c]
        (tmp_path / "routes.yaml").write_text(routes_yaml(replicas, frontier))
        proxy = ProxyProcess(frontier.url, tmp_path / "traces.db", "--routes", str(tmp_path / "routes.yaml"))
        try:
            sent, statuses, routes_seen = [0], Counter(), Counter()
            lock = threading.Lock()
            at_restart: list[int] = []
            outage: list[float] = []
            resume_at = [0.0]

            def client() -> None:
                with httpx.Client(base_url=proxy.openai_base_url, timeout=30) as http:
                    while True:
                        with lock:
                            if sent[0] >= REQUESTS:
                                return
                            sent[0] += 1
                            number = sent[0]
                            if number == RESTART_AT:
                                # the clients wait out b's cool-down once, so that b's return is seen
                                # however fast this machine answers the rest of the load
                                resume_at[0] = time.monotonic() + 2 * COOLDOWN_S
                        if number == KILL_AT:
                            b.stop()
                            outage.append(time.monotonic())
                        if number == RESTART_AT:
                            b.start()
                            outage.append(time.monotonic())
                            at_restart.append(len(b.requests))
                        time.sleep(max(0.0, resume_at[0] - time.monotonic()))
                        body = {"model": "support-agent", "messages": [{"role": "user", "content": f"hi {number}"}]}
                        answer = http.post("/chat/completions", json=body)
                        with lock:
                            statuses[answer.status_code] += 1
                            routes_seen[answer.headers.get("x-agent-route")] += 1

            threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            metrics = httpx.get(f"{proxy.url}/metrics").text
        finally:
            output = proxy.stop()
        assert proxy.stopped_cleanly, output

        assert statuses == {200: REQUESTS}  # no client request failed
        # a killed replica's calls went to another replica; only calls it had begun answering
        # when it was killed (at most one a client) could need the fallback
        assert routes_seen["fallback"] <= CLIENTS and routes_seen["primary"] >= REQUESTS - CLIENTS

        served = [len(r.requests) for r in replicas]
        assert min(served[0], served[2]) > REQUESTS / 4  # the load is spread
        assert served[1] > REQUESTS / 10 and served[1] - at_restart[0] > 100  # b is back after its restart

        # b's breaker took it out: while it was down it was tried a few times a cool-down, not a
        # third of the calls
        failed = re.search(r'replica_calls_total\{route="support-agent",replica="[^"]*' + str(b.port)
                           + r'[^"]*",reason="connect_error"\} (\d+)', metrics)  # fmt: skip
        assert failed is not None, metrics
        down_s = outage[1] - outage[0]
        assert int(failed.group(1)) <= 2 + CLIENTS + 2 * down_s / COOLDOWN_S < (RESTART_AT - KILL_AT) / 6

        # each answer is recorded once, with the replica that gave it
        store = TraceStore(proxy.db_url)
        try:
            answered = [c for c in store.calls(limit=10 * REQUESTS) if c.status == "ok"]
        finally:
            store.close()
        number = re.compile(r"hi (\d+)")
        assert sorted(int(number.search(c.raw_request).group(1)) for c in answered) == list(range(1, REQUESTS + 1))
        received = {
            f"{r.openai_base_url}/chat/completions": {number.search(q["json"]["messages"][0]["content"]).group(1)
                                                     for q in r.requests if q["json"]}
            for r in [*replicas, frontier]
        }  # fmt: skip
        for call in answered:
            assert number.search(call.raw_request).group(1) in received[call.endpoint]
        assert {c.endpoint for c in answered if c.route == "primary"} == set(list(received)[:3])
