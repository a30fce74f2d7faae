"""What a killed process could not count, counted by the next one that starts.

Captured spans live in a process's memory (the writer's queue, the batches its writer process has
not acknowledged) until they are written or spilled. A SIGKILL or the out-of-memory killer loses
them, and the counters that would say so die with the process. So every process that captures keeps
its running totals in a small hidden file beside the spill file (`.NAME.ledger-PID-TOKEN`),
memory-mapped: spans accepted, spans settled (written, spilled, or dropped and counted), and the
last batch its writer process acknowledged. The stores land in the page cache, which the kernel
keeps when the process dies.

A ledger is locked (`flock`) for as long as the process that keeps it, or the writer process that
inherited its descriptor, is alive; the kernel releases the lock however they end. The next process
to start with the same spill file (`init()`, each `agent-tracer proxy` worker) takes the ledgers
whose lock is free, counts `accepted - settled` as `lost` in its stats, logs it once, and removes
them. A writer process that outlives its parent writes what it has read, then settles the batches
its parent never saw acknowledged, so the count is what was really lost, not what was in flight.

Where files cannot be locked or mapped (Windows, a read-only folder) the ledger does nothing.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import mmap
import os
import secrets
import struct
import weakref

try:
    import fcntl
except ImportError:  # Windows: no ledger
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("agent_tracer")

_WORDS = struct.Struct("<QQQ")
"""accepted, settled, the last batch sequence number whose acknowledgement the parent read."""
_ACCEPTED, _SETTLED, _ACKED = 0, 8, 16


class Ledger:
    """One process's running totals. Callers serialize their calls (the exporter's lock)."""

    def __init__(self, spill_path: str) -> None:
        self.path = f"{_prefix(spill_path)}{os.getpid()}-{secrets.token_hex(4)}"
        self.fd = -1
        self._map: mmap.mmap | None = None
        self._accepted = self._settled = 0
        if fcntl is None:
            return
        # Made under a name `collect_lost` does not look at, and renamed once locked: a process
        # starting beside this one must never take a ledger that is not locked yet.
        making = self.path.replace(".ledger-", ".ledger.new-")
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            logger.debug("agent-tracer: no ledger (%s)", exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: no one else holds it
            os.ftruncate(fd, _WORDS.size)
            self._map = mmap.mmap(fd, _WORDS.size)
            os.rename(making, self.path)
        except (OSError, ValueError) as exc:
            if self._map is not None:
                self._map.close()
                self._map = None
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(making)
            logger.debug("agent-tracer: no ledger (%s)", exc)
            return
        self.fd = fd
        _open.add(self)

    def accept(self, n: int = 1) -> None:
        if self._map is not None:
            self._accepted += n
            _pack(self._map, _ACCEPTED, self._accepted)

    def settle(self, n: int, acked_seq: int = 0) -> None:
        """`n` spans written, spilled or dropped and counted; `acked_seq`: the writer process's
        acknowledgement they came with, stored first so that a death between the two stores
        counts a batch as lost rather than twice as settled."""
        if self._map is not None:
            if acked_seq:
                _pack(self._map, _ACKED, acked_seq)
            self._settled += n
            _pack(self._map, _SETTLED, self._settled)

    def close(self) -> None:
        """A clean stop: everything was written or spilled, so the ledger goes."""
        if self._map is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._release()

    def _release(self) -> None:
        assert self._map is not None
        self._map.close()
        self._map = None
        os.close(self.fd)
        self.fd = -1


_open: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _forked() -> None:
    """In a child made by `fork()` after `init()`: the ledgers are the parent's, not its own to
    count in (nor to hold locked once the parent is gone)."""
    for ledger in list(_open):
        if ledger._map is not None:
            ledger._release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class InheritedLedger:
    """The writer process's view of its parent's ledger (the descriptor it inherited): read while
    the parent lives, settled into once the parent is gone."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, _WORDS.size)

    def acked_seq(self) -> int:
        return _WORDS.unpack_from(self._map)[2]

    def settle_orphaned(self, n: int, last_seq: int) -> None:
        """After the parent died: `n` spans of batches it never saw acknowledged were written."""
        _, settled, _ = _WORDS.unpack_from(self._map)
        _pack(self._map, _ACKED, last_seq)
        _pack(self._map, _SETTLED, settled + n)


def collect_lost(spill_path: str) -> int:
    """Spans that processes which kept a ledger beside `spill_path` accepted and never settled,
    for every such process that is gone; their ledgers are removed."""
    if fcntl is None:
        return 0
    lost = 0
    for path in glob.glob(f"{glob.escape(_prefix(spill_path))}*"):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue  # taken by another process starting beside this one
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its process (or its writer process) is alive
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    continue  # collected and replaced while this process waited
            except OSError:
                continue  # collected by another process
            data = os.pread(fd, _WORDS.size, 0)
            if len(data) == _WORDS.size:
                accepted, settled, _ = _WORDS.unpack(data)
                lost += max(accepted - settled, 0)
            with contextlib.suppress(OSError):
                os.unlink(path)
        finally:
            os.close(fd)
    return lost


def _prefix(spill_path: str) -> str:
    """Ledgers are hidden files beside the spill file: `.NAME.ledger-PID-TOKEN`."""
    folder, name = os.path.split(spill_path)
    return os.path.join(folder, f".{name}.ledger-")


_pack = struct.Struct("<Q").pack_into
"""(target, offset, value): one word stored."""
