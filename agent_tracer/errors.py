"""The project's exceptions, under one base class.

    AgentTracerError
    ├── ConfigError          a setting or argument that cannot work (bad URL, bad option value)
    ├── StoreError           the trace store cannot do what was asked
    │   ├── TraceNotFound    no trace (or more than one) matches the given id or prefix
    │   └── SchemaError      the database was written by a newer agent-tracer, or is not ours
    ├── CodecError           a body or stream that is not of the wire format its URL says
    └── OTLPError            a body sent to the OTLP receiver that is not an OTLP trace export

Fail-open paths (capture, export) never let these reach the agent: they are counted and logged
once. The CLI turns them into one-line `click.ClickException`s.
"""


class AgentTracerError(Exception):
    """Base class of every error agent-tracer raises on purpose."""


class ConfigError(AgentTracerError):
    """A setting or argument that cannot work."""


class StoreError(AgentTracerError):
    """The trace store cannot do what was asked."""


class TraceNotFound(StoreError):
    """No trace, or more than one, matches the given id or prefix."""


class SchemaError(StoreError):
    """The database schema is newer than this agent-tracer, or not an agent-tracer store."""


class CodecError(AgentTracerError, ValueError):
    """A request, response or stream that is not of the wire format its URL says.

    Also a ValueError, so `except ValueError` around `json.loads` + decode catches both."""


class OTLPError(AgentTracerError):
    """A body sent to `POST /v1/traces` that is not an OTLP trace export (answered 400)."""


def first_line(exc: BaseException | None) -> str:
    """An error as one line for a person: the first line of its message (of the database driver's
    own error when SQLAlchemy wraps one), or its type's name when it has no message."""
    original = getattr(exc, "orig", None) or exc
    text = str(original or "").strip()
    return text.splitlines()[0] if text else type(original).__name__
