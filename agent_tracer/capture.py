"""Capture below the SDK: wrap the httpx transports so every model call is recorded.

The official SDKs create their httpx clients with the default transports (`httpx2` in the current
openai and anthropic SDKs, `httpx` in older ones and most other libraries). Wrapping
`HTTPTransport.handle_request` and `AsyncHTTPTransport.handle_async_request` on the classes reaches
clients created before and after `init()`, and leaves every SDK object untouched
(`with_raw_response`, `.headers`, `.parse`, streaming helpers). A request whose path no codec claims
goes straight to the original method.

The response body is wrapped, not read: the agent gets the same chunks at the same moments, and the
recorder sees them on the way through. The span ends exactly once: when the body is exhausted, closed
(also early), broken, or garbage-collected unread.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context

import integrations
from agent_tracer.decode import COMPLETE, FAILED, INCOMPLETE
from agent_tracer.recorder import CallRecorder, Decoder

if TYPE_CHECKING:
    from agent_tracer.canonical import Codec
    from agent_tracer.runtime import Runtime

logger = logging.getLogger("agent_tracer")

HTTP_MODULES = ("httpx2", "httpx")
_SUPPRESS_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY


def content_decoder(module: ModuleType, encoding: str) -> Decoder | None:
    """A decoder for the response's Content-Encoding, from the httpx module's own decoders: the
    transport hands over the bytes still compressed."""
    names = [e.strip().lower() for e in encoding.split(",") if e.strip() and e.strip().lower() != "identity"]
    if not names:
        return None
    supported = module._decoders.SUPPORTED_DECODERS
    if any(name not in supported for name in names):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    decoders = [supported[name]() for name in reversed(names)]

    def decode(chunk: bytes) -> bytes:
        for decoder in decoders:
            chunk = decoder.decode(chunk)
        return chunk

    return decode


def new_recorder(
    runtime: Runtime, codec: Codec, url: str, body: bytes, *, source: str, **options: Any
) -> CallRecorder | None:
    """A recorder for one model call, or None (counted) when the body is not of the codec's
    format after all, or recording fails: the call then goes through unrecorded. `options` are
    `CallRecorder`'s keyword arguments (route, context, labels)."""
    try:
        return CallRecorder(runtime, codec, url, body, source=source, **options)
    except Exception as exc:
        runtime.capture_failed(f"decoding a {codec.api} request", exc)
        return None


def start_response(runtime: Runtime, recorder: CallRecorder, module: ModuleType, status: int, headers: Any) -> None:
    """Tell the recorder the response began: its status, content type, and a decoder for its
    Content-Encoding from `module` (httpx or httpx2) when the bytes arrive compressed."""
    try:
        decoder = content_decoder(module, headers.get("content-encoding", ""))
    except ValueError as exc:
        runtime.capture_failed("decoding a response", exc)
        decoder = None
    recorder.response_started(status, headers.get("content-type", ""), decoder)


class TransportPatch:
    """Installs and removes the transport wrappers; `install` and `remove` are idempotent."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._originals: list[tuple[type, str, Callable[..., Any]]] = []

    @property
    def installed(self) -> bool:
        return bool(self._originals)

    def install(self) -> None:
        if self._originals:
            return
        for name in HTTP_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            sync_stream, async_stream = _stream_types(module)
            # The factories are called at once by _patch, so binding the loop's values is only for clarity.
            self._patch(
                module.HTTPTransport,
                "handle_request",
                functools.partial(self._wrap_sync, module=module, stream_type=sync_stream),
            )
            self._patch(
                module.AsyncHTTPTransport,
                "handle_async_request",
                functools.partial(self._wrap_async, module=module, stream_type=async_stream),
            )

    def remove(self) -> None:
        while self._originals:
            cls, attr, original = self._originals.pop()
            setattr(cls, attr, original)

    def _patch(self, cls: type, attr: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        original = cls.__dict__[attr]
        setattr(cls, attr, wrap(original))
        self._originals.append((cls, attr, original))

    def _start(self, request: Any, module: ModuleType) -> CallRecorder | None:
        """A recorder for a model call, or None for traffic we leave alone."""
        if request.method != "POST" or otel_context.get_value(_SUPPRESS_KEY):
            return None
        codec = integrations.codec_for(request.url.path)
        if codec is None:
            return None
        try:
            body = request.content
        except module.RequestNotRead:  # a streaming upload is not a model call we can decode
            return None
        return new_recorder(self._runtime, codec, str(request.url), body, source="decorator")

    def _attach(self, recorder: CallRecorder, response: Any, module: ModuleType, stream_type: type) -> None:
        start_response(self._runtime, recorder, module, response.status_code, response.headers)
        response.stream = stream_type(response.stream, recorder)

    def _wrap_sync(self, original: Callable[..., Any], module: ModuleType, stream_type: type):
        def handle_request(transport, request):
            recorder = self._start(request, module)
            if recorder is None:
                return original(transport, request)
            with _sending(recorder):
                response = original(transport, request)
            self._attach(recorder, response, module, stream_type)
            return response

        handle_request.__wrapped__ = original  # type: ignore[attr-defined]  # as functools.wraps sets it
        return handle_request

    def _wrap_async(self, original: Callable[..., Any], module: ModuleType, stream_type: type):
        async def handle_async_request(transport, request):
            recorder = self._start(request, module)
            if recorder is None:
                return await original(transport, request)
            with _sending(recorder):
                response = await original(transport, request)
            self._attach(recorder, response, module, stream_type)
            return response

        handle_async_request.__wrapped__ = original  # type: ignore[attr-defined]  # as functools.wraps sets it
        return handle_async_request


@contextlib.contextmanager
def _sending(recorder: CallRecorder) -> Iterator[None]:
    """Around the request itself: a transport error ends the call, and goes on to the agent."""
    try:
        yield
    except BaseException as exc:
        recorder.finish_safely(FAILED, exc)
        raise


@contextlib.contextmanager
def _reading(recorder: CallRecorder) -> Iterator[None]:
    """Around the agent's reading of a body: how the reading ends is how the call ends."""
    try:
        yield
    except GeneratorExit:
        recorder.finish_safely(INCOMPLETE, "the agent stopped reading the stream")
        raise
    except BaseException as exc:
        recorder.finish_safely(FAILED, exc)
        raise
    recorder.finish_safely(COMPLETE)


_STREAM_TYPES: dict[str, tuple[type, type]] = {}


def _stream_types(module: ModuleType) -> tuple[type, type]:
    """Recording body streams that subclass this httpx module's own stream base classes, which its
    Response checks with isinstance."""
    if module.__name__ in _STREAM_TYPES:
        return _STREAM_TYPES[module.__name__]

    class RecordingStream(module.SyncByteStream):  # type: ignore[name-defined]  # this httpx module's base
        def __init__(self, inner: Any, recorder: CallRecorder) -> None:
            self._inner = inner
            self._recorder = recorder

        def __iter__(self):
            with _reading(self._recorder):
                for chunk in self._inner:
                    self._recorder.feed_safely(chunk)
                    yield chunk

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._recorder.finish_safely(INCOMPLETE, "closed before the end of the body")

        def __del__(self) -> None:
            self._recorder.finish_safely(INCOMPLETE, "abandoned unread")

    class AsyncRecordingStream(module.AsyncByteStream):  # type: ignore[name-defined]  # this httpx module's base
        def __init__(self, inner: Any, recorder: CallRecorder) -> None:
            self._inner = inner
            self._recorder = recorder

        async def __aiter__(self):
            with _reading(self._recorder):
                async for chunk in self._inner:
                    self._recorder.feed_safely(chunk)
                    yield chunk

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._recorder.finish_safely(INCOMPLETE, "closed before the end of the body")

        def __del__(self) -> None:
            self._recorder.finish_safely(INCOMPLETE, "abandoned unread")

    _STREAM_TYPES[module.__name__] = (RecordingStream, AsyncRecordingStream)
    return RecordingStream, AsyncRecordingStream
