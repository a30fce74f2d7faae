"""uvicorn's httptools protocol with a limit on a request's head: 431 past 64 KiB, read no further.

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
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
# After the 431: what is still read and dropped, and for how long, before the connection is closed.
LINGER_BYTES = 256 * 1024
LINGER_S = 2.0
WARN_EVERY_S = 60.0
_refused = 0  # in this process
_warned_at = -WARN_EVERY_S

_MESSAGE = b"Request header fields too large: at most 64 KiB.\n"
_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


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

    def data_received(self, data: bytes) -> None:
        if self._dropped is not None:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        marks = self._marks
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._over:
            self._refuse()
        elif self._marks != marks:  # a request began, its head ended or it was whole within this chunk
            self._head_read = 0
        elif self._in_head:
            self._head_read += len(data)
            if self._head_read > MAX_HEADER_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._marks += 1
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._marks += 1
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

    def _refuse(self) -> None:
        global _refused, _warned_at
        _refused += 1
        now = time.monotonic()
        if now - _warned_at >= WARN_EVERY_S:  # a flood of them is one line a minute, not one a request
            _warned_at = now
            who = "%s:%d" % self.client if self.client else "a client"
            self.logger.warning("Request headers over 64 KiB from %s answered 431 (%d so far).", who, _refused)
        self._unset_keepalive_if_required()
        self._dropped = 0
        self.transport.write(_ANSWER)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is whole; the client's close ends the connection
        transport = self.transport
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)


def serve(app: Any, *, host: str, port: int, log_level: str) -> None:
    """Serve an ASGI app (`collect`, `ui`) until Ctrl-C / SIGTERM, with the head limit."""
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


__all__ = ["MAX_HEADER_BYTES", "HeaderLimitedProtocol", "serve"]
