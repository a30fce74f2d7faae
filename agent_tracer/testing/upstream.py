"""A fake OpenAI and Anthropic API on loopback, for tests, benchmarks and demos.

`FakeUpstream` is a real HTTP/1.1 server (`agent_tracer.loopback`: standard library only,
keep-alive, chunked server-sent events, TCP_NODELAY) answering with exactly the shapes the official SDKs parse:

    POST /v1/chat/completions   OpenAI Chat Completions, plain and `"stream": true`
    POST /v1/responses          OpenAI Responses API, plain and streamed
    POST /v1/messages           Anthropic Messages, plain and streamed
    POST /v1beta/models/M:generateContent   Google Gemini (google-genai with its `base_url`
                                here), not streamed
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

`FakeUpstream(reply=hook)` scripts the answers instead: the hook gets each POST's JSON body and
returns a `Reply` (the text or calls, token counts, model, delay, or a failure to answer with) or
None to leave that request to its scenario; `models=` names what `GET /v1/models` lists.

Token usage is deterministic: input = whitespace-separated words of every message text (system and
instructions included), output = words of the answer text plus `len(arguments) // 4 + 1` per call.

Run it in the foreground with `python -m agent_tracer.testing.upstream --port 8000`.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from agent_tracer.loopback import LoopbackHandler, LoopbackServer, json_bytes
from agent_tracer.messages import error_body
from agent_tracer.testing.wire import (
    CUT_AFTER,
    GEMINI_PATH,
    MODELS,
    SCENARIO_HEADER,
    Reply,
    ResponsesBuilder,
    Scenario,
    anthropic_message,
    anthropic_stream,
    chat_completion,
    chat_stream,
    decide_answer,
    example_arguments,
    gemini_response,
    new_id,
    view_chat,
    view_gemini,
    view_messages,
    view_responses,
)

__all__ = ["FakeUpstream", "Reply", "SCENARIO_HEADER", "example_arguments"]


# ------------------------------------------------------------------------------------------------
# The HTTP handler


class _Handler(LoopbackHandler):
    server_version = "FakeUpstream/1"

    # -- one request --------------------------------------------------------------------------

    def answer(self) -> None:
        upstream: FakeUpstream = self.owner
        raw = self.read_body()
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        upstream._record({"method": self.command, "path": self.path, "headers": headers, "json": body})

        api = "anthropic" if path == "/v1/messages" else "openai"
        try:
            scenario = Scenario.parse(headers.get(SCENARIO_HEADER) or upstream.scenario)
        except ValueError as exc:
            return self._send_error(api, 400, str(exc))
        if scenario.stall:
            self.server.stopping.wait(scenario.stall)
        route = _ROUTES.get((self.command, path))
        if route is None and self.command == "POST" and GEMINI_PATH.match(path):
            route = _Handler._generate_content
        if route is None:
            return self._send_error("openai", 404, f"Unknown request URL: {self.command} {path}.")
        reply = upstream.reply(body) if upstream.reply and self.command == "POST" and isinstance(body, dict) else None
        if reply is not None and reply.delay:
            self.server.stopping.wait(reply.delay)
        if scenario.error:
            message = f"Fake upstream error {scenario.error} (scenario {headers.get(SCENARIO_HEADER)!r})."
            return self._send_error(api, scenario.error, message)
        if reply is not None and reply.body is not None:
            return self.send_body(reply.status, reply.content_type, reply.body, [self._request_id_header(api)])
        if reply is not None and reply.status != 200:
            return self._send_error(api, reply.status, reply.error)
        if self.command == "GET":
            return route(self, {}, scenario, None)
        if bad_json or not isinstance(body, dict):
            return self._send_error(api, 400, "We could not parse the JSON body of your request.")
        route(self, body, scenario, reply)

    # -- answers ------------------------------------------------------------------------------

    def _request_id_header(self, api: str) -> tuple[str, str]:
        return ("request-id" if api == "anthropic" else "x-request-id", new_id("req_"))

    def _send_json(self, api: str, status: int, obj: Any, scenario: Scenario | None = None) -> None:
        if scenario is None or not scenario.cut:
            return self.send_json(status, obj, [self._request_id_header(api)])
        body = json_bytes(obj)  # cut: a longer content-length than the body sent
        headers = [("content-type", "application/json"), ("content-length", str(len(body) + 64))]
        self.wfile.write(self.head(status, [*headers, self._request_id_header(api)]) + body)
        self.drop_connection()

    def _send_error(self, api: str, status: int, message: str) -> None:
        extra = [("retry-after", "0")] if status == 429 else []
        self.send_json(status, error_body(api, status, message), [self._request_id_header(api), *extra])

    def _send_stream(self, api: str, events: list[bytes], scenario: Scenario) -> None:
        self.start_events([self._request_id_header(api)])
        cut_at = min(CUT_AFTER, len(events) - 1) if scenario.cut else len(events)
        for number, event in enumerate(events[:cut_at]):
            if number and scenario.slow_stream:
                self.server.stopping.wait(scenario.slow_stream)
            self.send_event(event)
        if scenario.cut:
            self.drop_connection()
        else:
            self.end_events()

    # -- endpoints ----------------------------------------------------------------------------

    def _chat_completions(self, body: dict[str, Any], scenario: Scenario, reply: Reply | None) -> None:
        answer = decide_answer(view_chat(body), body, scenario, "call_", reply)
        if body.get("stream"):
            self._send_stream("openai", chat_stream(answer, body), scenario)
        else:
            self._send_json("openai", 200, chat_completion(answer), scenario)

    def _responses(self, body: dict[str, Any], scenario: Scenario, reply: Reply | None) -> None:
        builder = ResponsesBuilder(decide_answer(view_responses(body), body, scenario, "call_", reply), body)
        if body.get("stream"):
            self._send_stream("openai", builder.events(), scenario)
        else:
            self._send_json("openai", 200, builder.response(), scenario)

    def _messages(self, body: dict[str, Any], scenario: Scenario, reply: Reply | None) -> None:
        answer = decide_answer(view_messages(body), body, scenario, "toolu_", reply)
        if body.get("stream"):
            self._send_stream("anthropic", anthropic_stream(answer), scenario)
        else:
            self._send_json("anthropic", 200, anthropic_message(answer, new_id("msg_"), done=True), scenario)

    def _generate_content(self, body: dict[str, Any], scenario: Scenario, reply: Reply | None) -> None:
        model = GEMINI_PATH.match(self.path.split("?", 1)[0])["model"]  # type: ignore[index]  # routed on a match
        answer = decide_answer(view_gemini(body), {**body, "model": model}, scenario, "call_", reply)
        self._send_json("openai", 200, gemini_response(answer), scenario)

    def _models(self, body: dict[str, Any], scenario: Scenario, reply: Reply | None) -> None:
        models = self.owner.models
        data = [{"id": model, "object": "model", "created": 1700000000, "owned_by": "agent-tracer"} for model in models]
        self._send_json("openai", 200, {"object": "list", "data": data}, scenario)


_ROUTES: dict[tuple[str, str], Callable[[_Handler, dict[str, Any], Scenario, Reply | None], None]] = {
    ("POST", "/v1/chat/completions"): _Handler._chat_completions,
    ("POST", "/v1/responses"): _Handler._responses,
    ("POST", "/v1/messages"): _Handler._messages,
    ("GET", "/v1/models"): _Handler._models,
}


class FakeUpstream(LoopbackServer):
    """Context manager; starts the server in a background thread on a free port.

    with FakeUpstream() as upstream:
        client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert upstream.requests[-1]["path"] == "/v1/chat/completions"
    """

    handler = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str | None = None,
        reply: Callable[[dict[str, Any]], Reply | None] | None = None,
        models: Iterable[str] = MODELS,
    ) -> None:
        super().__init__(host, port)
        self.scenario = scenario
        """The scenario of requests that name none (may be changed while serving)."""
        self.reply = reply
        """Called with each POST's JSON body: a `Reply` scripts the answer, None leaves it to the scenario."""
        self.models = tuple(models)
        """The ids `GET /v1/models` lists."""
        self.requests: list[dict[str, Any]] = []
        """Every request received, in arrival order: {"method", "path" (as sent, query included),
        "headers" (lower-case names, credentials included), "json" (the parsed body, or None)}."""
        self._lock = threading.Lock()

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic SDK appends `/v1/messages` itself."""
        return self.url

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def __repr__(self) -> str:
        state = f"serving {self.url}" if self.serving else "stopped"
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
