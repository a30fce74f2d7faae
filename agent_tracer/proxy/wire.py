"""What the proxy's two forwarding paths share about HTTP: which headers travel, and where to.

`app.py` forwards a request as it came; `router.py` answers a routed one from a primary or its
fallback. Both build upstream URLs, pass back response headers and name exceptions the same way.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from agent_tracer.proxy.runs import RUN_HEADERS

TRACE_ID_RESPONSE_HEADER = b"x-agent-trace-id"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"} | RUN_HEADERS
"""Request headers the proxy's client sets itself (host, content-length), per hop, or for the proxy."""
NOT_PASSED_BACK = frozenset(h.encode() for h in HOP_BY_HOP | {"content-length"})
"""Response headers the proxy's server sets itself: the body goes back chunked, so that a body
that breaks half-way can still be ended cleanly for the client."""


def upstream_url(base: str, path: str, query: str) -> str:
    """The base URL plus the request path and query. A base that already ends in the path's
    first segments (`http://vllm:8000/v1` and `/v1/chat/completions`) is not doubled."""
    base = base.rstrip("/")
    base_path = urlsplit(base).path
    if base_path and (path == base_path or path.startswith(base_path + "/")):
        base = base[: len(base) - len(base_path)]
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def passed_back(raw_headers: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """An upstream answer's headers as the client gets them."""
    return [(k, v) for k, v in raw_headers if k.lower() not in NOT_PASSED_BACK]


def reason_text(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
