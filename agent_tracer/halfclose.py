"""uvicorn's HTTP/1.1 protocol, answering a client that half-closes after a whole request.

A client may send its request and then shut its side of the connection (`shutdown(SHUT_WR)`):
some load balancers, scripted clients and `nc -N` do. uvicorn closes the connection as soon as the
client's side ends (its `eof_received` returns nothing, so asyncio closes the transport), and the
request is treated as abandoned: the proxy called the model and the client never got the answer.
Here a request received whole still gets its answer, on a connection then closed; a request cut
short (the client's side ended inside its body or headers) is closed at once, as before, so no
handler waits for a body that cannot come.

Passed to uvicorn as `http=PROTOCOL` by the proxy, `agent-tracer ui` and `agent-tracer collect`.
"""

from __future__ import annotations

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # uvicorn without httptools ("auto" would pick h11 too)
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

PROTOCOL = "agent_tracer.halfclose:HalfCloseProtocol"
"""uvicorn's `http` setting, as an import string: `--workers` processes import it themselves."""


class HalfCloseProtocol(_Protocol):
    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows a bool
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            cycle.keep_alive = False  # answered, then closed: nothing more can come on it
            return True  # keep the transport open for the answer
        return None
