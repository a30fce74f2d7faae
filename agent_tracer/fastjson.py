"""JSON for the writer's hot path: orjson (much faster) with the standard library as fallback.

Every stored call is parsed (request, response, each stream event) and serialised (four JSON
columns) on the writer thread, in the agent's process; this is most of that thread's time.
`loads` raises ValueError on bad input either way; `dumps` gives compact UTF-8 text with
datetimes in ISO-8601, identical for both libraries on the values the store holds.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

try:
    import orjson
except ImportError:  # the standard library does the same, slower
    orjson = None  # type: ignore[assignment]  # checked below


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default)
# The standard library's own texts, for where its float and key spelling is the one kept; one
# encoder made once: `json.dumps` with any option makes a new one at every call (half its cost on
# a small value). Neither takes what JSON cannot hold (TypeError, as `json.dumps`).
python_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`."""
python_spaced = json.JSONEncoder(ensure_ascii=False).encode
"""`json.dumps(value, ensure_ascii=False)`."""
_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default, sort_keys=True)

if orjson is not None:
    loads = orjson.loads

    def dumps(value: Any) -> str:
        try:
            return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits, lone surrogates): the standard library
            return _ENCODER.encode(value)

    def dumps_sorted(value: Any) -> str:
        """Keys sorted: one text for equal values, whatever order their keys came in."""
        try:
            return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            return _SORTED.encode(value)
else:
    loads = json.loads
    dumps = _ENCODER.encode
    dumps_sorted = _SORTED.encode
