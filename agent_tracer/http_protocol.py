"""uvicorn's httptools protocol with limits on a request's head: 431 past 64 KiB, 408 past 60 s.

httptools (llhttp) has no limit of its own: a client could send megabytes of headers, and each
was parsed, held and, by the proxy, forwarded upstream, the worker busy all the while (a flood of
1 MB headers added 18 ms to other clients' calls; BENCHMARKS.md, "Bad clients"). uvicorn's
`h11_max_incomplete_event_size` is for h11 only. Here a head is refused when its URL and header
fields come to more than `MAX_HEADER_BYTES`, or when more than that has arrived and the head is
still incomplete (a header too long to finish is not parsed to its end). The client gets
`431 Request Header Fields Too Large` and nothing more of what it sends is parsed: the rest is
read and dropped for a moment, so that its kernel does not reset the connection before the 431
is read, then the connection is closed. 64 KiB is 4 times Node's and h11's 16 KiB and twice
nginx's 32 KiB: no SDK comes near it.

Nor has uvicorn a time limit on a head: a connection that never sends a byte, or sends its
headers a byte a minute, held its socket for ever (10,000 of them cost nothing but 10,000 file
descriptors, and the open-files limit is soon reached). Here a head must be whole within
`HEAD_TIMEOUT_S` of the connection's opening or of its request's first byte, else the connection
is closed: with `408 Request Timeout` when part of a head had come, without a word when nothing
had (a browser's pre-opened connection takes a 408 on it for the answer to its next request):
nginx's `client_header_timeout` and Node's `headersTimeout`, both 60 s. An idle kept-alive
connection is uvicorn's to close (5 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 60.0
# After a 431: what is still read and dropped, and for how long, before the connection is closed.
LINGER_BYTES = 256 * 1024
LINGER_S = 2.0
WARN_EVERY_S = 60.0


def _answer(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message
    )


_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"Request header fields too large: at most 64 KiB.\n")
_TOO_SLOW = _answer(b"408 Request Timeout", b"The request's headers did not arrive in time.\n")
_refused = {"431": 0, "408": 0}  # in this process
_warned_at = {"431": -WARN_EVERY_S, "408": -WARN_EVERY_S}


class HeaderLimitedProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http=HeaderLimitedProtocol)`: see the module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until a request's headers are complete, and again once it is whole
        self._marks = 0  # requests begun, heads complete, requests whole: where counting restarts
        self._head_read = 0  # bytes read while the head was incomplete
        self._head_size = 0  # the URL's and the header fields' bytes, as the parser hands them over
        self._over = False  # a complete head over the limit: answered once the parser returns
        self._dropped: int | None = None  # bytes read after a 431, or None before one
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False  # a byte of the coming head has arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._dropped is not None:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head:
            self._head_started = True
        marks = self._marks
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._marks != marks:  # a request began, its head ended or it was whole within this chunk
            self._head_read = 0
        elif self._in_head:
            self._head_read += len(data)
        if self._over or self._head_read > MAX_HEADER_BYTES:
            self._refuse(_TOO_LARGE, "431", "Request headers over 64 KiB")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._marks += 1
        self._head_size = 0
        if self._head_timer is None:  # a kept-alive connection's next request: its head's own time
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_started = False
        self._marks += 1
        self._disarm_head_timer()
        if self._head_size > MAX_HEADER_BYTES:
            self._over = True  # no request is started; what follows in this chunk is ignored
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._over:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._over:
            return
        super().on_message_complete()
        self._in_head = True
        self._marks += 1

    # -- the limits

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._dropped is not None:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # still answering the request before (pipelined): not now
            return
        if self._head_started:
            self._refuse(_TOO_SLOW, "408", f"No whole request head in {HEAD_TIMEOUT_S:g} s")
        else:
            _refused["408"] += 1
            self.transport.close()

    def _refuse(self, answer: bytes, code: str, why: str) -> None:
        _refused[code] += 1
        now = time.monotonic()
        if now - _warned_at[code] >= WARN_EVERY_S:  # a flood of them is one line a minute, not one a request
            _warned_at[code] = now
            who = "%s:%d" % self.client if self.client else "a client"
            self.logger.warning("%s from %s: answered %s (%d so far).", why, who, code, _refused[code])
        self._unset_keepalive_if_required()
        self._disarm_head_timer()
        self._dropped = 0
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is whole; the client's close ends the connection
        self.loop.call_later(LINGER_S, self.transport.close)


def refused() -> dict[str, int]:
    """Requests this process refused before they reached the app, by status: "431" (head too
    large), "408" (head too slow, or no request at all in that time: closed without an answer);
    the proxy's `/metrics` shows them."""
    return dict(_refused)


def refused_lines(counts: dict[str, int]) -> list[str]:
    """`refused()` counts (summed over a proxy's workers) as a Prometheus family."""
    lines = [
        "# HELP agent_tracer_http_refused_total Requests refused before the app: 431 (headers over 64 KiB),"
        " 408 (headers not whole in 60 s; a connection that sent nothing is closed without an answer).",
        "# TYPE agent_tracer_http_refused_total counter",
    ]
    return lines + [f'agent_tracer_http_refused_total{{code="{code}"}} {n}' for code, n in sorted(counts.items())]


def serve(app: Any, *, host: str, port: int, log_level: str) -> None:
    """Serve an ASGI app (`collect`, `ui`) until Ctrl-C / SIGTERM, with the head's limits."""
    import uvicorn

    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            server_header=False,
            lifespan="on",
            http=HeaderLimitedProtocol,
        )
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down
        pass


__all__ = ["HEAD_TIMEOUT_S", "MAX_HEADER_BYTES", "HeaderLimitedProtocol", "refused", "refused_lines", "serve"]
