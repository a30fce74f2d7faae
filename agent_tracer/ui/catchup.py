"""The full-text index's catch-up in idle time, for as long as the UI runs (`agent-tracer ui`,
or the proxy that serves it at `/agent-tracer/ui/`).

SQLite's search index is brought up to date by a catch-up that every search runs first
(`store/search.py`): on a store that a proxy keeps writing and nobody searches, the first search
would index everything written since, about 20 s for a million calls. While the UI runs, this
task indexes the calls as they come instead, one batch (`search.INDEX_BATCH` calls, one short
write transaction) at a time in a worker thread, and none while a search runs or catches up
(`TraceStore.index_search(idle=True)`). It rests `BATCH_PAUSE_S` between batches, so that pages
get the CPU and the write lock between them, and `IDLE_PAUSE_S` when there is nothing to index.
PostgreSQL's index needs no catch-up: the task ends at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from agent_tracer.store import TraceStore
from agent_tracer.store.database import redact

logger = logging.getLogger("agent_tracer.ui")

IDLE_PAUSE_S = 2.0
"""Seconds between looks for calls to index when the index was up to date."""
BATCH_PAUSE_S = 0.05
"""Seconds between two batches of a catch-up."""


async def index_while_idle(
    store: TraceStore, *, idle_pause: float = IDLE_PAUSE_S, batch_pause: float = BATCH_PAUSE_S
) -> None:
    """Keep `store`'s search index up to date until cancelled (see the module's docstring). A
    database error other than the store being read-only or locked (which `index_search` counts
    as nothing indexed) is logged once and ends the task: searches then catch up as before."""
    if store.engine.dialect.name != "sqlite":
        return
    step = functools.partial(store.index_search, batches=1, idle=True)
    try:
        while True:
            went = await run_in_threadpool(step)
            await asyncio.sleep(batch_pause if went else idle_pause)
    except SQLAlchemyError as exc:
        logger.warning("the search index of %s is no longer caught up in idle time: %s", redact(store.url), exc)
