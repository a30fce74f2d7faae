"""The load side of `proxy_overhead.py`: the request bodies, a lean HTTP/1.1 client for the timed
calls and the asyncio load, and the wrk driver. Kept beside it, imported as a sibling module."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from agent_call import MESSAGES, TOOLS

MODEL = "gpt-test"
BODY = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "temperature": 0.2, "max_tokens": 512}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


def request_bytes(port: int, body: dict[str, Any], extra: str = "") -> bytes:
    """The request's bytes; `extra`: more header lines, each ending in CRLF."""
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench-not-a-real-key\r\nx-fake-scenario: text\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


# ------------------------------------------------------------------------------------------------
# A lean HTTP/1.1 client: one parser for the timed calls and for the asyncio load


class Response:
    """A response fed the bytes as they arrive: headers, then a body by content-length or chunked;
    with `sse`, `first_content` turns true once an event with delta content is complete."""

    def __init__(self, sse: bool = False) -> None:
        self.sse, self.status, self.length, self.chunked, self.close = sse, 0, -1, False, False
        self.buf, self.body = bytearray(), bytearray()
        self.done = self.first_content = False
        self._scan = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        if not self.status:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "transfer-encoding":
                    self.chunked = "chunked" in value
                elif name == "connection":
                    self.close = value == "close"
            del self.buf[: end + 4]
        if self.chunked:
            self._dechunk()
        else:
            self.body += self.buf
            self.buf.clear()
            self.done = len(self.body) >= self.length >= 0
        if self.sse and not self.first_content:
            self._scan_events()

    def _dechunk(self) -> None:
        buf = self.buf
        while (nl := buf.find(b"\r\n")) >= 0:
            size = int(buf[:nl].split(b";", 1)[0], 16)
            if size == 0:  # the last chunk; no trailers expected
                if len(buf) >= nl + 4:
                    del buf[: nl + 4]
                    self.done = True
                return
            if len(buf) < nl + 4 + size:
                return
            self.body += buf[nl + 2 : nl + 2 + size]
            del buf[: nl + 4 + size]

    def _scan_events(self) -> None:
        while (nl := self.body.find(b"\n", self._scan)) >= 0:
            line = bytes(self.body[self._scan : nl]).strip()
            self._scan = nl + 1
            if line.startswith(b"data:") and _delta_text(line[5:].strip()):
                self.first_content = True
                return


def _delta_text(data: bytes) -> str:
    if data == b"[DONE]":
        return ""
    return "".join((c.get("delta") or {}).get("content") or "" for c in json.loads(data).get("choices") or [])


def answer_text(response: Response) -> str | None:
    """The assistant's text, or None when the response is not a complete 200 with an answer."""
    if response.status != 200 or not response.done:
        return None
    try:
        if not response.sse:
            return json.loads(response.body)["choices"][0]["message"]["content"]
        data = [
            line.strip()[5:].strip() for line in bytes(response.body).splitlines() if line.strip().startswith(b"data:")
        ]
        return "".join(map(_delta_text, data)) if data and data[-1] == b"[DONE]" else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class Connection:
    """A kept-alive socket; `call()` times one request: (response, total ns, first-token ns)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def call(self, request: bytes, sse: bool = False) -> tuple[Response, int, int]:
        clock, recv = time.perf_counter_ns, self.sock.recv
        response, first = Response(sse), 0
        t0 = clock()
        self.sock.sendall(request)
        while not response.done:
            data = recv(262144)
            if not data:
                break
            response.feed(data)
            if sse and not first and response.first_content:
                first = clock() - t0
        total = clock() - t0
        if response.close or not response.done:
            self.sock.close()
            self.sock = self._connect()
        return response, total, first


def sequential(port: int, sse: bool, calls: int, warmup: int, expected: str) -> dict[str, Any]:
    """Warm-up, then `calls` timed calls one after another: their times, and the checks."""
    conn, request = Connection(port), request_bytes(port, STREAM_BODY if sse else BODY)
    totals, firsts, ok = [], [], 0
    try:
        for n in range(warmup + calls):
            response, total, first = conn.call(request, sse)
            ok += answer_text(response) == expected
            if n >= warmup:
                totals.append(total)
                firsts.append(first)
    finally:
        conn.sock.close()
    return {"ns": totals, "first_ns": firsts, "ok": ok, "bad": warmup + calls - ok}


# ------------------------------------------------------------------------------------------------
# Load: wrk, or asyncio when wrk is missing

WRK_LUA = """\
wrk.method = "POST"
wrk.body = io.open([==[{body}]==], "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key"
wrk.headers["x-fake-scenario"] = "text"
local marker = [==[{marker}]==]
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 and body and body:find(marker, 1, true) then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local good, wrong = 0, 0
  for _, t in ipairs(threads) do good = good + t:get("ok"); wrong = wrong + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK {{"ok": %d, "bad": %d, "requests": %d, "duration_s": %f, "p50_us": %d, '
    .. '"p99_us": %d, "socket_errors": %d}}\\n', good, wrong, summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout))
end
"""


def load_wrk(port: int, seconds: float, args: argparse.Namespace, marker: str, tmp: Path) -> dict[str, Any]:
    body, script = tmp / "body.json", tmp / "post.lua"
    body.write_bytes(json.dumps(BODY, separators=(",", ":")).encode())
    script.write_text(WRK_LUA.format(body=body, marker=marker))
    cmd = [
        "wrk",
        "-t",
        str(args.wrk_threads),
        "-c",
        str(args.connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/v1/chat/completions",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK "):
            return json.loads(line[4:])
    raise RuntimeError(f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")


def load_asyncio(port: int, seconds: float, args: argparse.Namespace, marker: str) -> dict[str, Any]:
    """The fallback: one asyncio client per connection in this process, each sending its next
    request as soon as the answer is in."""
    request, needle, latencies = request_bytes(port, BODY), marker.encode(), []
    counts = {"ok": 0, "bad": 0, "socket_errors": 0}

    async def client(deadline: float) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["socket_errors"] += 1
            return
        while time.perf_counter() < deadline:
            t0, response = time.perf_counter_ns(), Response()
            writer.write(request)
            while not response.done:
                data = await reader.read(262144)
                if not data:
                    counts["socket_errors"] += 1
                    return
                response.feed(data)
            latencies.append(time.perf_counter_ns() - t0)
            counts["ok" if response.status == 200 and needle in response.body else "bad"] += 1
        writer.close()

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(t0 + seconds) for _ in range(args.connections)))
        return time.perf_counter() - t0

    duration = asyncio.run(run())
    latencies.sort()
    p50, p99 = (percentile(latencies, q) if latencies else 0.0 for q in (50, 99))
    return {**counts, "requests": counts["ok"] + counts["bad"], "duration_s": duration, "p50_us": p50, "p99_us": p99}


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    rank = max(1, -(-len(sorted_ns) * q // 100))
    return sorted_ns[int(rank) - 1] / 1000
