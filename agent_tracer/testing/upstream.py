"""A fake OpenAI and Anthropic API on loopback, for tests, benchmarks and demos.

`FakeUpstream` is a real HTTP/1.1 server (standard library only: keep-alive, chunked server-sent
events, TCP_NODELAY) answering with exactly the shapes the official SDKs parse:

    POST /v1/chat/completions   OpenAI Chat Completions, plain and `"stream": true`
    POST /v1/responses          OpenAI Responses API, plain and streamed
    POST /v1/messages           Anthropic Messages, plain and streamed
    GET  /v1/models             an OpenAI model list
    anything else               404 in OpenAI's error shape

The header `x-fake-scenario` picks the behaviour per request (SDKs send it with `extra_headers=`);
several may be joined with commas, e.g. `stall:0.2,parallel_tools`:

    auto                 (default) a call to the first tool when the request has tools, unless the
                         conversation ends with tool results; otherwise text: "Echo: <last user
                         text>", or "Echo: <tool results>" after tool results (so agent loops end)
    text                 always text
    parallel_tools       text, then two tool calls (first and second tool, or the first twice); in a
                         stream the text comes first and the two calls' argument deltas interleave
    error:CODE           that status with the API's own error body (429 also sends retry-after: 0)
    stall:SECONDS        wait that long before answering
    cut                  a stream stops after a few events without its terminating chunk; a plain
                         answer declares a longer content-length than it sends; then the socket closes
    slow_stream:SECONDS  wait that long between stream events
    empty                no text and no tool call
    tool_text            a `<tool_call>` block that never closes, as text
    bad_tool:KIND        (with tools) the call names a tool the request lacks (unknown), has
                         arguments that are not JSON (json), or lacks required ones (schema)

`FakeUpstream(scenario=...)` sets the scenario for requests without the header (a primary that
always fails, say, behind a proxy that forwards the same headers to its fallback).

Token usage is deterministic: input = whitespace-separated words of every message text (system and
instructions included), output = words of the answer text plus `len(arguments) // 4 + 1` per call.

Run it in the foreground with `python -m agent_tracer.testing.upstream --port 8000`.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent_tracer.messages import error_body
from agent_tracer.testing.wire import (
    CUT_AFTER,
    MODELS,
    SCENARIO_HEADER,
    ResponsesBuilder,
    Scenario,
    anthropic_message,
    anthropic_stream,
    chat_completion,
    chat_stream,
    decide_answer,
    dumps,
    example_arguments,
    new_id,
    view_chat,
    view_messages,
    view_responses,
)

__all__ = ["FakeUpstream", "SCENARIO_HEADER", "example_arguments"]


# ------------------------------------------------------------------------------------------------
# The HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1"
    disable_nagle_algorithm = True
    server: _Server

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
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    # -- one request --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer

    def _handle(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        self.server.upstream._record({"method": self.command, "path": self.path, "headers": headers, "json": body})

        api = "anthropic" if path == "/v1/messages" else "openai"
        try:
            scenario = Scenario.parse(headers.get(SCENARIO_HEADER) or self.server.upstream.scenario)
        except ValueError as exc:
            return self._send_error(api, 400, str(exc))
        if scenario.stall:
            self.server.stopping.wait(scenario.stall)
        route = _ROUTES.get((self.command, path))
        if route is None:
            return self._send_error("openai", 404, f"Unknown request URL: {self.command} {path}.")
        if scenario.error:
            message = f"Fake upstream error {scenario.error} (scenario {headers.get(SCENARIO_HEADER)!r})."
            return self._send_error(api, scenario.error, message)
        if self.command == "GET":
            return route(self, {}, scenario)
        if bad_json or not isinstance(body, dict):
            return self._send_error(api, 400, "We could not parse the JSON body of your request.")
        route(self, body, scenario)

    def _read_body(self) -> bytes:
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

    # -- answers ------------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        reason = self.responses.get(status, ("Error",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def _request_id_header(self, api: str) -> tuple[str, str]:
        return ("request-id" if api == "anthropic" else "x-request-id", new_id("req_"))

    def _send_json(
        self, api: str, status: int, obj: Any, scenario: Scenario | None = None, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        body = dumps(obj)
        cut = scenario is not None and scenario.cut
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body) + 64 if cut else len(body))),
            self._request_id_header(api),
            *extra,
        ]
        self.wfile.write(self._head(status, headers) + body)
        if cut:
            self._drop_connection()

    def _send_error(self, api: str, status: int, message: str) -> None:
        extra = (("retry-after", "0"),) if status == 429 else ()
        self._send_json(api, status, error_body(api, status, message), extra=extra)

    def _send_stream(self, api: str, events: list[bytes], scenario: Scenario) -> None:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
            ("cache-control", "no-cache"),
            self._request_id_header(api),
        ]
        self.wfile.write(self._head(200, headers))
        cut_at = min(CUT_AFTER, len(events) - 1) if scenario.cut else len(events)
        for number, event in enumerate(events[:cut_at]):
            if number and scenario.slow_stream:
                self.server.stopping.wait(scenario.slow_stream)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        if scenario.cut:
            self._drop_connection()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _drop_connection(self) -> None:
        """Close the socket with the answer unfinished, so the client sees a broken body."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    # -- endpoints ----------------------------------------------------------------------------

    def _chat_completions(self, body: dict[str, Any], scenario: Scenario) -> None:
        answer = decide_answer(view_chat(body), body, scenario, "call_")
        if body.get("stream"):
            self._send_stream("openai", chat_stream(answer, body), scenario)
        else:
            self._send_json("openai", 200, chat_completion(answer), scenario)

    def _responses(self, body: dict[str, Any], scenario: Scenario) -> None:
        builder = ResponsesBuilder(decide_answer(view_responses(body), body, scenario, "call_"), body)
        if body.get("stream"):
            self._send_stream("openai", builder.events(), scenario)
        else:
            self._send_json("openai", 200, builder.response(), scenario)

    def _messages(self, body: dict[str, Any], scenario: Scenario) -> None:
        answer = decide_answer(view_messages(body), body, scenario, "toolu_")
        if body.get("stream"):
            self._send_stream("anthropic", anthropic_stream(answer), scenario)
        else:
            self._send_json("anthropic", 200, anthropic_message(answer, new_id("msg_"), done=True), scenario)

    def _models(self, body: dict[str, Any], scenario: Scenario) -> None:
        data = [{"id": model, "object": "model", "created": 1700000000, "owned_by": "agent-tracer"} for model in MODELS]
        self._send_json("openai", 200, {"object": "list", "data": data}, scenario)


_ROUTES: dict[tuple[str, str], Callable[[_Handler, dict[str, Any], Scenario], None]] = {
    ("POST", "/v1/chat/completions"): _Handler._chat_completions,
    ("POST", "/v1/responses"): _Handler._responses,
    ("POST", "/v1/messages"): _Handler._messages,
    ("GET", "/v1/models"): _Handler._models,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class FakeUpstream:
    """Context manager; starts the server in a background thread on a free port.

    with FakeUpstream() as upstream:
        client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert upstream.requests[-1]["path"] == "/v1/chat/completions"
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, scenario: str | None = None) -> None:
        self.host = host
        self.port = port
        self.scenario = scenario
        """The scenario of requests that name none (may be changed while serving)."""
        self.requests: list[dict[str, Any]] = []
        """Every request received, in arrival order: {"method", "path" (as sent, query included),
        "headers" (lower-case names, credentials included), "json" (the parsed body, or None)}."""
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT`; the port is known once started."""
        if not self.port:
            raise RuntimeError("FakeUpstream is not started: its port is not chosen yet")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic SDK appends `/v1/messages` itself."""
        return self.url

    def start(self) -> FakeUpstream:
        """Bind and serve in a daemon thread; a second call does nothing."""
        if self._server is None:
            server = _Server((self.host, self.port), self)
            self.port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-upstream-{self.port}",
                daemon=True,
            )
            self._server = server
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers, drop open connections. Keeps the port for a restart."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving {self.url}" if self._server else "stopped"
        return f"<FakeUpstream {state}, {len(self.requests)} requests>"


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m agent_tracer.testing.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    args = parser.parse_args(argv)
    upstream = FakeUpstream(args.host, args.port).start()
    print(upstream.url, flush=True)
    print(f"  OpenAI base_url:    {upstream.openai_base_url}", flush=True)
    print(f"  Anthropic base_url: {upstream.anthropic_base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
