"""The HTTP protocol the proxy, `collect` and `ui` serve with: a request's head must be whole
within its time limit (closed otherwise, with a 408 if part of it came), its body and the idle time between kept-alive
requests are not held to it. A real uvicorn server on 127.0.0.1, the limit shortened for the test.
(The 64 KiB size limit is tested through the real proxy, collector and UI processes.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from agent_tracer import http_protocol
from agent_tracer.loopback import free_port

LIMIT_S = 0.6


async def echo_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b"got %d bytes" % len(body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT_S", LIMIT_S)
    chosen = free_port()
    config = uvicorn.Config(
        echo_app, host="127.0.0.1", port=chosen, http=http_protocol.HeaderLimitedProtocol, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield chosen
    server.should_exit = True
    thread.join(timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def request(body: bytes = b"") -> bytes:
    return b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port):
    """As nginx does: a 408 there would be read by a browser as the answer to the request it
    sends next on the connection it opened ahead."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        answer = read_all(sock)
        waited = time.monotonic() - started
    assert answer == b""
    assert LIMIT_S * 0.9 < waited < LIMIT_S + 3


def test_headers_sent_too_slowly_get_a_408(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = request()
        sent = 0
        deadline = time.monotonic() + LIMIT_S * 2
        try:
            while time.monotonic() < deadline and sent < len(head) - 1:  # never the last byte
                sock.sendall(head[sent : sent + 1])
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"The request's headers did not arrive in time.\n")


def test_a_slow_body_and_idle_time_between_kept_alive_requests_are_not_held_to_the_limit(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        body = b"x" * 100
        sock.sendall(request(body)[:-50])  # the head whole, half the body
        time.sleep(LIMIT_S * 1.5)
        sock.sendall(body[-50:])
        assert sock.recv(65536).endswith(b"got 100 bytes")
        time.sleep(LIMIT_S * 1.5)  # idle between requests (uvicorn closes after 5 s)
        sock.sendall(request(b"abc"))
        assert sock.recv(65536).endswith(b"got 3 bytes")
