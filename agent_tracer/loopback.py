"""An HTTP/1.1 server on loopback, answering from a background thread (standard library only).

A `LoopbackServer` subclass names its `handler`, a `LoopbackHandler` subclass whose `answer()`
answers one request, and holds what it answers from (the handler reaches it as `self.owner`).
The handler gets keep-alive, TCP_NODELAY, request bodies plain or chunked, and answers as one
body or as chunked server-sent events; `stop()` wakes handlers waiting on `stopping`, drops open
connections and keeps the port for a restart.

The quickstart's stand-in frontier runs on it, and so does the fake upstream of the tests and
benchmarks (`FakeUpstream`, in the testing package): no web framework to start, and fast enough that a
benchmark measures the client, not the server.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

__all__ = ["LoopbackHandler", "LoopbackServer", "free_port", "json_bytes"]

_S = TypeVar("_S", bound="LoopbackServer")


def free_port() -> int:
    """A loopback port nothing listens on (free when asked; bind it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_bytes(obj: Any) -> bytes:
    """Compact JSON, UTF-8, as the model APIs write it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class LoopbackHandler(BaseHTTPRequestHandler):
    """Answers the requests of one connection; a subclass implements `answer()`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    @property
    def owner(self) -> Any:
        """The `LoopbackServer` this handler answers for."""
        return self.server.owner

    def answer(self) -> None:
        """Answer the request in `self.command`, `self.path`, `self.headers` (body: `read_body()`)."""
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Keep quiet: no request log."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's naming)
        try:
            self.answer()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    # -- reading ------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";", 1)[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    # -- answering ----------------------------------------------------------------------------

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        """The status line and headers, to be written with the start of the body (one send)."""
        reason = self.responses.get(status, ("Error",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def send_body(self, status: int, content_type: str, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        head = [("content-type", content_type), ("content-length", str(len(body))), *headers]
        self.wfile.write(self.head(status, head) + body)

    def send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_body(status, "application/json", json_bytes(obj), headers)

    def start_events(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A 200 answer of server-sent events, sent in chunks: `send_event` each, then `end_events`."""
        head = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
            ("cache-control", "no-cache"),
            *headers,
        ]
        self.wfile.write(self.head(200, head))

    def send_event(self, event: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))

    def end_events(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def drop_connection(self) -> None:
        """Close the socket with the answer unfinished, so the client sees a broken body."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], owner: LoopbackServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, owner.handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection, so no handler thread answers after `stop()`."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up while we read its request
        super().handle_error(request, client_address)


class LoopbackServer:
    """Context manager: serves `handler` on `host:port` (port 0: a free one) from a daemon thread."""

    handler: ClassVar[type[LoopbackHandler]]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT`; the port is known once started."""
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started: its port is not chosen yet")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The `base_url` an OpenAI client takes."""
        return self.url + "/v1"

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def stopping(self) -> threading.Event:
        """Set by `stop()`: a handler that waits waits on it, so that a stop does not wait for it."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not serving")
        return self._server.stopping

    def start(self: _S) -> _S:
        """Bind and serve in a daemon thread; a second call does nothing."""
        if self._server is None:
            server = _Server((self.host, self.port), self)
            self.port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}-{self.port}",
                daemon=True,
            )
            self._server = server
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake waiting handlers, drop open connections. Keeps the port for a restart."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
