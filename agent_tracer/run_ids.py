"""An agent's own id for a run (a ticket number, a UUID, "run-42") as a 32-hex trace id.

The proxy's clients name their runs with `X-Agent-Trace-Id` and report feedback under the same id;
`traces show` and `traces rate` accept it too. One mapping serves all of them.
"""

from __future__ import annotations

import hashlib
import re

MAX_RUN_ID_CHARS = 200
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def trace_id_for(run_id: str) -> str:
    """The 32-hex trace id for an agent's own run id: the id itself when it is one (a UUID's
    dashes dropped), else a hash of it. Raises ValueError for an empty or overlong id."""
    text = run_id.strip()
    if not text or len(text) > MAX_RUN_ID_CHARS:
        raise ValueError(f"a run id must be 1 to {MAX_RUN_ID_CHARS} characters")
    compact = text.lower().replace("-", "")
    if _HEX32.match(compact) and int(compact, 16):
        return compact
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
