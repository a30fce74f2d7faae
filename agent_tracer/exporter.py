"""The writer: finished spans' payloads go from a bounded queue into the store, in batches, off the
agent's thread (`StoreExporter`, a thread here; `writer_process.ProcessExporter`, the default, hands
the batches to a child process that runs the same `BatchWriter`).

Why not OpenTelemetry's BatchSpanProcessor + SpanExporter: spans carry attributes that collectors cap
and samplers drop, while the store must keep whole bodies of every call and account for each one.
So capture hands this writer a payload per finished span (see `records.py`), and the OpenTelemetry
spans go, unchanged, to whatever processors the app's TracerProvider has.

Fail open, lose nothing: `submit` never blocks or raises; a failed batch is retried with backoff,
then appended to the spill file (`agent-tracer traces import FILE --format spill` loads it later);
only a full queue or an unwritable spill file drops spans, and every one is counted in `CaptureStats`.
What a killed process held is counted by the next one to start (`ledger.py`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from agent_tracer.config import TracerConfig
from agent_tracer.ledger import Ledger, collect_lost
from agent_tracer.records import Record
from agent_tracer.spill import append_spill, reload_spill

logger = logging.getLogger("agent_tracer")

IDLE_RETRY_S = 5.0
"""With a spill file waiting and nothing to write, how often the writer sees whether the store is back."""


class Payload(Protocol):
    def records(self) -> list[Record]: ...


class Store(Protocol):
    calls_merged: int
    """Running count of model calls merged into a stored copy of the same call (`TraceStore`)."""

    def write(self, records: list[Record], *, keep_open: bool = False) -> int: ...
    def close(self) -> None: ...


class CaptureStats:
    """Counts of spans at each stage; `agent_tracer.stats()` returns a snapshot. `merged`: of
    the written, model calls that were a second copy of one stored (the transport's and a
    framework span's), stored once (`store/same_calls.py`)."""

    FIELDS = ("captured", "written", "retried", "spilled", "reloaded", "dropped", "lost", "capture_errors", "merged")
    """`reloaded`: records loaded back from the spill file once the store was writable again.
    `lost`: spans an earlier process captured and was killed holding (`ledger.py`)."""
    HEALTH = ("store_down", "writes", "write_ms")
    """Where the writer runs: 1 while the store refuses writes (0 once one succeeds), and the
    batches written with the milliseconds they took: `health()`, not `snapshot()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys((*self.FIELDS, *self.HEALTH), 0)
        self._remote = dict.fromkeys((*self.FIELDS, *self.HEALTH), 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._counts[name] = value

    def set_remote(self, counts: dict[str, int]) -> None:
        """The writer process's own running totals, added to this process's in `snapshot`."""
        with self._lock:
            self._remote = {name: counts.get(name, 0) for name in (*self.FIELDS, *self.HEALTH)}

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts[name] + self._remote[name] for name in self.FIELDS}

    def health(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts[name] + self._remote[name] for name in self.HEALTH}

    def everything(self) -> dict[str, int]:
        """Counts and health, as the writer process sends them to its parent."""
        with self._lock:
            return {name: self._counts[name] + self._remote[name] for name in (*self.FIELDS, *self.HEALTH)}


class BatchWriter:
    """Turns a batch of payloads into rows and writes them: retried with backoff, then spilled.

    Runs wherever the writing happens: on the writer thread, or in the writer process."""

    def __init__(
        self, config: TracerConfig, stats: CaptureStats, open_store: Callable[[str], Store], stop: threading.Event
    ) -> None:
        self._config = config
        self._stats = stats
        self._open_store = open_store
        self._stop = stop
        self._store: Store | None = None
        self._failing = False
        self._warned_undecodable = False
        from agent_tracer.masking import Masker

        self._masker = Masker.from_settings(config.mask, config.mask_function)
        """What must never be stored, masked here, before the rows are written or spilled."""
        self._spill_to_load = True
        """Look for a spill file to load back after the next write that succeeds, or at an idle
        moment (`idle`): at the start (one left by an earlier run) and after an outage."""
        self._next_idle_try = 0.0
        self._held: list[Payload] = []
        self._held_records: list[Record] = []
        """Parts written in the store's open transaction, not committed yet (`export`'s `more`), and their records."""

    def export(self, batch: list[Payload], *, more: bool = False) -> None:
        """Write `batch` (retried, then spilled). `more`: a part of a request whose other parts
        follow: written in the store's open transaction, committed with the part that comes
        without `more` (`TraceStore.write`'s `keep_open`), and only then counted as written; if
        that transaction fails, the parts it held are written again by the usual path."""
        if more or self._held:
            self._export_held(batch, more)
            return
        self._export(batch)

    def _export_held(self, batch: list[Payload], more: bool) -> None:
        records = self._records(batch)
        if not records and not self._held:
            return
        if self._failing:  # the store is down: no transaction to keep open
            self._export_again(batch, records)
            return
        try:
            merged = self._write(records, keep_open=more)
        except Exception as exc:  # the open transaction is rolled back: its parts go the usual way
            self._reset_store()
            logger.debug("agent-tracer: a write in an open transaction failed (%s); writing again", _one_line(exc))
            self._export_again(batch, records)
            return
        if records:
            self._held.extend(batch)
            self._held_records.extend(records)
        if more:
            return
        held, self._held, self._held_records = self._held, [], []
        self._written(len(held), merged)

    def _write(self, records: list[Record], *, keep_open: bool = False) -> int:
        """One timed write to the store (opened if need be); returns the calls it merged, which
        the store counts at a commit (0 while `keep_open`)."""
        if self._store is None:
            self._store = self._open_store(self._config.db)
        merged = self._store.calls_merged
        started = time.perf_counter()
        self._store.write(records, keep_open=keep_open)
        self._stats.add("write_ms", round((time.perf_counter() - started) * 1000))
        return self._store.calls_merged - merged

    def _written(self, payloads: int, merged: int) -> None:
        """A write committed: counted; the store is writable, and a waiting spill file may go back."""
        self._stats.add("writes")
        self._stats.add("written", payloads)
        if merged:
            self._stats.add("merged", merged)
        self._writable()
        if self._spill_to_load:
            self._spill_to_load = False
            self._load_spill()

    def _export_again(self, batch: list[Payload], records: list[Record]) -> None:
        """The held parts and this one, the open transaction gone: written (or spilled) together."""
        held, held_records = self._held, self._held_records
        self._held, self._held_records = [], []
        self._export(held + batch, held_records + records)

    def _export(self, batch: list[Payload], records: list[Record] | None = None) -> None:
        if records is None:
            records = self._records(batch)
        if not records:
            return
        tries = 1 if self._failing else self._config.write_retries
        for attempt in range(tries):
            try:
                merged = self._write(records)
            except Exception as exc:  # fail open: any store failure is retried, then spilled
                self._reset_store()
                if attempt == 0 and not self._failing:
                    logger.warning("agent-tracer: writing to the trace store failed (%s); retrying", _one_line(exc))
                if attempt + 1 < tries:
                    self._stats.add("retried", len(batch))
                    if self._stop.wait(self._config.retry_backoff_s * 2**attempt):
                        break
                continue
            self._written(len(batch), merged)
            return
        if not self._failing:
            logger.warning(
                "agent-tracer: the trace store is unavailable; spilling spans to %s", self._config.spill_path
            )
        self._failing = True
        self._stats.set("store_down", 1)
        self._spill_to_load = True
        self._spill(batch, records)

    def idle(self) -> None:
        """Nothing to write now: while a spill file waits to be loaded back (written during an
        outage, or left by an earlier run), try every `IDLE_RETRY_S` whether the store takes
        writes again and load it, so that its return needs no new call to be noticed."""
        now = time.monotonic()
        if not self._spill_to_load or now < self._next_idle_try:
            return
        self._next_idle_try = now + IDLE_RETRY_S
        try:
            waiting = os.path.getsize(self._config.spill_path) > 0
        except OSError:
            waiting = False
        if not waiting:
            self._spill_to_load = self._failing
            return
        try:
            if self._store is None:
                self._store = self._open_store(self._config.db)
            self._reload()
        except Exception as exc:  # still down: the next idle moment tries again
            logger.debug("agent-tracer: the trace store is not back yet (%s)", _one_line(exc))
            self._reset_store()
            return
        self._spill_to_load = False
        self._writable()

    def _writable(self) -> None:
        """The store took a write: if it was down, it is back."""
        if self._failing:
            logger.warning("agent-tracer: the trace store is writable again")
            self._failing = False
            self._stats.set("store_down", 0)

    def _reload(self) -> None:
        """Load the spill file back into the store (ids it has are skipped) and empty it,
        counting what went; raises when the store does not take it."""
        assert self._store is not None  # opened by the caller
        loaded = reload_spill(self._config.spill_path, self._store.write)
        if loaded:
            self._stats.add("reloaded", loaded)
            logger.warning("agent-tracer: loaded %d spilled records back into the trace store", loaded)

    def _load_spill(self) -> None:
        """After a write: load the spill file back; on failure it stays for the next outage's
        end (or `traces import`)."""
        try:
            self._reload()
        except Exception as exc:
            logger.warning(
                "agent-tracer: the spill file %s could not be loaded back (%s); it is kept "
                "(`agent-tracer traces import %s --format spill` loads it)",
                self._config.spill_path,
                _one_line(exc),
                self._config.spill_path,
            )

    def spill(self, batch: list[Payload]) -> None:
        """Straight to the spill file: what is left when there is no time to write."""
        records = self._records(batch)
        if records:
            self._spill(batch, records)

    def close(self) -> None:
        if self._held:  # a request's parts whose last part never came: committed now
            self.export([])
        if self._store is not None:
            self._store.close()
            self._store = None

    def _records(self, batch: list[Payload]) -> list[Record]:
        records: list[Record] = []
        for payload in batch:
            try:
                records.extend(payload.records())
            except ValueError as exc:  # a POST that looked like a model call but was not one
                self._stats.add("capture_errors")
                if not self._warned_undecodable:
                    self._warned_undecodable = True
                    logger.warning(
                        "agent-tracer: a request was not of the format its URL says; not recorded (%s)", _one_line(exc)
                    )
            except Exception:  # a payload we cannot turn into rows: count it, keep the rest
                self._stats.add("dropped")
                logger.exception("agent-tracer: could not convert a span for the store; it is dropped")
        if self._masker is not None and records:
            try:
                records = self._masker.records(records)
            except Exception:  # a user's function that fails: nothing unmasked may be stored
                self._stats.add("dropped", len(batch))
                logger.exception("agent-tracer: masking failed; these spans are dropped, not stored unmasked")
                return []
        return records

    def _spill(self, batch: list[Payload], records: list[Record]) -> None:
        try:
            append_spill(self._config.spill_path, records)
        except OSError as exc:
            self._stats.add("dropped", len(batch))
            logger.error(
                "agent-tracer: cannot write the spill file %s (%s); spans dropped",
                self._config.spill_path,
                _one_line(exc),
            )
            return
        self._stats.add("spilled", len(batch))

    def _reset_store(self) -> None:
        if self._store is None:
            return
        try:
            self._store.close()
        except Exception as exc:  # closing a broken connection may fail too; the store is replaced anyway
            logger.debug("agent-tracer: closing the failed store: %s", _one_line(exc))
        self._store = None


class StoreExporter:
    """A bounded queue and one thread that takes batches off it and delivers them: here, to a
    `BatchWriter` on that thread; `writer_process.ProcessExporter` sends them to a child process."""

    def __init__(
        self,
        config: TracerConfig,
        stats: CaptureStats,
        open_store: Callable[[str], Store],
        ledger: Ledger | None = None,
    ):
        self._config = config
        self._stats = stats
        self._ledger = ledger or open_ledger(config, stats)
        self._queue: deque[Payload] = deque()
        self._queued_at: deque[float] = deque()
        """When each queued payload was submitted (`time.monotonic`), for `oldest_age`."""
        self._cond = threading.Condition(threading.Lock())  # not reentrant: cheaper on every submit
        self._in_flight = 0
        self._in_flight_since = 0.0
        self._closing = False
        self._stop = threading.Event()
        self._writer = BatchWriter(config, stats, open_store, self._stop)
        self._thread = threading.Thread(target=self._run, name="agent-tracer-writer", daemon=True)
        self._thread.start()

    # -- the agent's side: never blocks on I/O, never raises

    def submit(self, payload: Payload) -> None:
        with self._cond:
            if self._closing or len(self._queue) >= self._config.queue_size:
                self._stats.add("dropped")
                return
            self._queue.append(payload)
            self._queued_at.append(time.monotonic())
            self._ledger.accept()
            self._stats.add("captured")
            if len(self._queue) >= self._config.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written or spilled; False on time-out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is None else min(remaining, 0.05))
                self._cond.notify_all()
        return True

    def queued(self) -> int:
        """Payloads submitted and not yet written or spilled."""
        with self._cond:
            return len(self._queue) + self._in_flight + self._unwritten()

    def oldest_age(self) -> float:
        """Seconds since the oldest payload not yet written or spilled was submitted (0: none)."""
        with self._cond:
            since = [self._queued_at[0]] if self._queued_at else []
            if self._in_flight:
                since.append(self._in_flight_since)
            since += self._unwritten_since()
        return time.monotonic() - min(since) if since else 0.0

    def _unwritten(self) -> int:
        """Called with the lock held: payloads handed on but not yet written (another process's)."""
        return 0

    def _unwritten_since(self) -> list[float]:
        return []

    def shutdown(self, timeout: float | None = None) -> None:
        """Write what is queued (up to `timeout`), spill the rest, close the store."""
        timeout = self._config.shutdown_timeout_s if timeout is None else timeout
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stop.set()
        self._thread.join(timeout=max(timeout, 0.1))
        self._close(timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._queued_at.clear()
        if left:
            self._writer.spill(left)
            with self._cond:
                self._ledger.settle(len(left))
        self._writer.close()
        with self._cond:
            self._ledger.close()

    # -- the delivering thread

    def _pending(self) -> bool:
        """Called with the lock held: is anything submitted not yet written or spilled?"""
        return bool(self._queue or self._in_flight)

    def _deliver(self, batch: list[Payload]) -> None:
        self._writer.export(batch)
        with self._cond:
            self._ledger.settle(len(batch))

    def _close(self, timeout: float) -> None:
        """After the thread has stopped: release what delivering held."""

    def _idle(self) -> None:
        """Nothing queued: the writer may load a waiting spill file back (`BatchWriter.idle`)."""
        self._writer.idle()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self._config.flush_interval_s)
                if self._closing:
                    return
                taken = min(len(self._queue), self._config.batch_size)
                batch = [self._queue.popleft() for _ in range(taken)]
                if taken:
                    self._in_flight_since = self._queued_at[0]
                    for _ in range(taken):
                        self._queued_at.popleft()
                self._in_flight = len(batch)
            if batch:
                self._deliver(batch)
            else:
                self._idle()
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()


def open_ledger(config: TracerConfig, stats: CaptureStats) -> Ledger:
    """This process's ledger, after counting what killed processes beside it lost."""
    lost = collect_lost(config.spill_path)
    if lost:
        stats.add("lost", lost)
        logger.warning(
            "agent-tracer: %d spans captured by an earlier process were lost: it was killed before they were "
            "written or spilled (counted in stats()['lost'])",
            lost,
        )
    return Ledger(config.spill_path)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
