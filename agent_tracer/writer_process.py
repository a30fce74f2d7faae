"""The writer in a child process, so decoding and SQL never hold the agent's GIL.

The writer thread's Python time per stored call, in the agent's process, is taken from the agent
whenever both want the GIL, up to the switch interval at a time (BENCHMARKS.md, "Capture
overhead"). `ProcessExporter` keeps the same bounded queue and thread, but the thread
only pickles each batch onto a pipe; a child process (`python -m agent_tracer.writer_process`)
decodes, writes, retries and spills with the same `BatchWriter`, and acknowledges each batch with
its counts.

Lose nothing: a batch stays in memory until the child acknowledges it. If the child dies or cannot
start, the batches it had not acknowledged, and all later ones, are written in this process as by
the thread writer; inserts are idempotent, so a batch written twice is stored once.

Bounded: at most `queue_size` payloads are sent and not yet acknowledged. When the store writes
slower than the calls come, the thread waits for acknowledgements before it sends more, so the
backlog stays in the bounded queue (past it, new spans are dropped and counted, as with the
thread writer) instead of growing in both processes: the child reads the pipe as fast as it can,
and held every frame it read.

Frames on both pipes are a 4-byte length and a pickle. Parent → child: the config, then
("batch", seq, payloads, more) ... ("close",). Child → parent: ("ack", [seq, ...], counts).
`more`: further parts of the same request follow (`send`); the child writes the parts in one open
transaction and acknowledges them all at its commit.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import IO, Any

from agent_tracer.config import TracerConfig
from agent_tracer.exporter import BatchWriter, CaptureStats, Payload, Store, StoreExporter, open_ledger
from agent_tracer.ledger import InheritedLedger
from agent_tracer.records import MadeRecords

try:
    import orjson as _orjson
except ImportError:  # every frame pickled
    _orjson = None  # type: ignore[assignment]  # checked where it is used

logger = logging.getLogger("agent_tracer")
_HEADER = struct.Struct("!I")
FRAME_SIZE = 32
"""Payloads pickled into one frame."""


def encode_frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def encode_batch(seq: int, batch: list[Payload], more: bool) -> bytes:
    """The frame of ("batch", seq, batch, more). A batch of records already made (OTLP spans
    mapped) goes as JSON (orjson: a quarter of pickle's time to write, less to read), its
    datetimes as ISO-8601 text, which the store reads back to the same values; anything else,
    or what JSON cannot hold as it is (integers past 64 bits, lone surrogates, keys that are
    not text), is pickled. NaN, which orjson writes as null, is stored as NULL either way."""
    if _orjson is not None and batch and all(type(payload) is MadeRecords for payload in batch):
        try:
            data = _orjson.dumps([seq, more, [payload.records() for payload in batch]])
        except TypeError:
            pass
        else:
            return _HEADER.pack(len(data)) + data
    return encode_frame(("batch", seq, batch, more))


def write_frame(stream: IO[bytes], message: Any) -> None:
    stream.write(encode_frame(message))
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None at the end of the stream (also a cut one)."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    return decode_frame(data) if len(data) == size else None


def decode_frame(data: bytes) -> Any:
    """A frame's message (without its length): a pickle, or a batch `encode_batch` wrote as JSON."""
    if data[:1] != b"[":
        return pickle.loads(data)
    seq, more, batch = _orjson.loads(data)
    return ("batch", seq, [MadeRecords([(kind, row) for kind, row in records]) for records in batch], more)


class ProcessExporter(StoreExporter):
    def __init__(self, config: TracerConfig, stats: CaptureStats, open_store: Callable[[str], Store]):
        self._unacked: dict[int, tuple[bytes, int]] = {}
        """Each batch sent and not acknowledged: its frame and how many payloads it holds. The
        frame, not the payloads: the objects are freed once they are in the frame, while the
        child works, not all at once when the acknowledgement comes (a request's 512 spans of rows
        took about 3 ms to free, between the child's commit and the receiver's answer)."""
        self._in_flight_payloads = 0
        """Payloads in `_unacked`: at most `_in_flight_limit` before a send waits."""
        self._in_flight_limit = max(config.queue_size, 1)
        self._sent_since: dict[int, float] = {}
        """Of each batch not yet acknowledged, when its oldest payload was submitted."""
        self._seq = 0
        self._dead = False
        self._local = threading.Lock()
        self._pipe = threading.Lock()  # one frame at a time onto the pipe (the thread, `send`)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        ledger = open_ledger(config, stats)
        # The child inherits the ledger's descriptor, and with it the lock: the ledger is not
        # collected while the child still writes what a dead parent handed it (`ledger.py`).
        inherited = (ledger.fd,) if ledger.fd >= 0 else ()
        # A session of its own: a terminal's Ctrl-C (or a SIGTERM to the process group) must not
        # kill the child with batches in hand; it ends when this process closes the pipe, or dies.
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "agent_tracer.writer_process", *map(str, inherited)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
                pass_fds=inherited,
            )
        except OSError:
            ledger.close()
            raise
        assert self._child.stdin is not None and self._child.stdout is not None  # both are pipes
        self._stdin, self._stdout = self._child.stdin, self._child.stdout
        write_frame(self._stdin, dataclasses.asdict(config))
        super().__init__(config, stats, open_store, ledger)
        self._reader = threading.Thread(target=self._read_acks, name="agent-tracer-acks", daemon=True)
        self._reader.start()

    def _pending(self) -> bool:
        return super()._pending() or bool(self._unacked)

    def _idle(self) -> None:
        """The child loads a waiting spill file back (it owns the writing), unless it is gone."""
        if self._dead:
            super()._idle()

    def _unwritten(self) -> int:
        return self._in_flight_payloads

    def _unwritten_since(self) -> list[float]:
        return [self._sent_since[seq] for seq in self._unacked if seq in self._sent_since]

    def _deliver(self, batch: list[Payload]) -> None:
        # Pickling holds the GIL: in frames of FRAME_SIZE payloads (well under a millisecond each)
        # the agent's threads get it back between them, while the pipe write runs without it.
        for start in range(0, len(batch), FRAME_SIZE):
            self._send(batch[start : start + FRAME_SIZE])

    def send(self, batch: list[Payload], *, more: bool = False) -> int:
        """Hand `batch` to the child now, from the caller's thread, past the queue: on return it
        is in the pipe (the child writes what it has read even if this process dies) or, the
        child being gone, written here. Returns what `wait` takes (0: nothing to wait for).

        For a caller that answers only once its batch is stored (the OTLP receiver) and keeps
        the child writing one batch while it makes the next. `more`: the caller's next `send`
        continues this one (the parts of one request): the child commits them together, when
        the part without `more` comes (or when it has `batch_size` payloads open, or none came
        for `HELD_WAIT_S`)."""
        with self._cond:
            self._ledger.accept(len(batch))
        return self._send(batch, more)

    def wait(self, seqs: Collection[int]) -> None:
        """Until the child has acknowledged (written or spilled) the batches `send` gave these
        numbers for, or this process has written them, the child being gone."""
        with self._cond:
            while any(seq in self._unacked for seq in seqs):
                self._cond.wait(0.05)

    def _send(self, batch: list[Payload], more: bool = False) -> int:
        if not self._dead:
            with self._pipe:  # the sequence numbers go onto the pipe in order
                try:
                    frame = encode_batch(self._seq + 1, batch, more)
                except Exception as exc:  # a payload that does not pickle: this batch is written here
                    logger.warning("agent-tracer: a batch could not go to the writer process (%s)", exc)
                    frame = b""
                if frame:
                    with self._cond:
                        while self._in_flight_payloads >= self._in_flight_limit and not self._dead:
                            self._cond.wait(0.05)  # the store is behind: the backlog waits in the bounded queue
                        self._seq += 1
                        seq = self._seq
                        self._unacked[seq] = (frame, len(batch))
                        self._in_flight_payloads += len(batch)
                        self._sent_since[seq] = self._in_flight_since if self._in_flight else time.monotonic()
                    try:
                        self._stdin.write(frame)
                        self._stdin.flush()
                        return seq
                    except (OSError, ValueError) as exc:
                        failed = f"{type(exc).__name__}: {exc}"
            if frame:
                self._child_gone(failed)
                self._take_over()  # this batch too, if the reader had already taken over
                return seq
        self._export_here(batch)
        return 0

    def _read_acks(self) -> None:
        while True:
            try:
                message = read_frame(self._stdout)
            except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
                message = None
                logger.debug("agent-tracer: reading the writer process: %s", exc)
            if message is None:
                self._child_gone(f"it exited with status {self._child.wait()}")
                return
            _, seqs, counts = message
            with self._cond:
                for seq in seqs:
                    self._ledger.settle(self._forget(seq), seq)
                self._stats.set_remote(counts)
                self._cond.notify_all()

    def _child_gone(self, reason: str) -> None:
        with self._cond:
            if self._dead:
                return
            self._dead = True
            closing = self._closing
        if not closing:
            logger.warning("agent-tracer: the writer process stopped (%s); writing in this process", reason)
        self._take_over()

    def _take_over(self) -> None:
        """Write here, in order, the batches the child had not acknowledged. Each leaves
        `_unacked` only once written, so `flush` waits for it; the lock keeps two threads from
        writing the same one."""
        with self._local:
            while True:
                with self._cond:
                    if not self._unacked:
                        return
                    seq = min(self._unacked)
                    batch = _payloads(self._unacked[seq])
                self._writer.export(batch)
                with self._cond:
                    self._ledger.settle(self._forget(seq))
                    self._cond.notify_all()

    def _forget(self, seq: int) -> int:
        """A batch written (or taken over): no longer held for the child; returns its size (0 if
        it was forgotten before). With `_cond` held."""
        sent = self._unacked.pop(seq, None)
        self._sent_since.pop(seq, None)
        if sent is None:
            return 0
        self._in_flight_payloads -= sent[1]
        return sent[1]

    def _export_here(self, batch: list[Payload]) -> None:
        with self._local:
            self._writer.export(batch)
        with self._cond:
            self._ledger.settle(len(batch))

    def _close(self, timeout: float) -> None:
        try:
            write_frame(self._stdin, ("close",))
            self._stdin.close()
        except (OSError, ValueError):
            pass  # the child is gone already; the reader has taken over its batches
        try:
            self._child.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self._child.kill()
        self._reader.join(timeout=max(timeout, 0.1))
        with self._cond:
            left = [_payloads(self._unacked[seq]) for seq in sorted(self._unacked)]
            for seq in list(self._unacked):
                self._forget(seq)
        for batch in left:
            self._writer.spill(batch)
        with self._cond:
            self._ledger.settle(sum(map(len, left)))


HELD_WAIT_S = 0.2
"""How long the child keeps a transaction open for the next part of a request (`send`'s `more`)
before it commits what it has: a sender that died or stalled mid-request holds no lock for long."""


def _payloads(sent: tuple[bytes, int]) -> list[Payload]:
    """The payloads of a batch sent, read back from its frame (`ProcessExporter._unacked`)."""
    payloads: list[Payload] = decode_frame(sent[0][_HEADER.size :])[2]
    return payloads


BATCH_GC_THRESHOLD = 20_000
"""Allocations between young-generation collections (Python's default: 700) in a process that
holds batches of rows."""


def hold_collector_back() -> None:
    """For a process of our own that holds whole batches of rows (the writer process, `agent-tracer
    collect`): what is alive now (the imported modules) is frozen out of the cyclic collector's
    passes, and young collections come every `BATCH_GC_THRESHOLD` allocations. A batch of rows is
    tens of thousands of containers, all kept until written; the default collector walked them
    again and again, a large share of mapping's and writing's time in a profile of the OTLP
    ingest. Garbage in cycles is still collected, a little later."""
    gc.freeze()
    gc.set_threshold(BATCH_GC_THRESHOLD, 20, 100)


def _open_store(url: str) -> Store:
    from agent_tracer.store import TraceStore

    return TraceStore(url)


def main() -> None:
    """The child: batches in on stdin, acknowledgements out on a private copy of stdout (the real
    stdout goes to stderr, so nothing a library prints can break a frame). Frames that arrive
    while a write runs are written together, up to `batch_size` payloads a transaction.

    If the parent dies, what it had sent is still written (its end of the pipe closes without a
    "close" frame; acknowledgements can no longer be sent), and the batches whose acknowledgement
    the parent never read are settled in its ledger (the descriptor in `argv[1]`), so that the
    next process to start does not count them as lost."""
    ledger = None
    if len(sys.argv) > 1:
        try:
            ledger = InheritedLedger(int(sys.argv[1]))
        except (OSError, ValueError) as exc:  # written all the same; a dead parent's figure may be high
            logger.debug("agent-tracer: no ledger in the writer process (%s)", exc)
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    frames_in = sys.stdin.buffer
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    settings = read_frame(frames_in)
    assert settings is not None, "the parent sends its settings first"
    config = TracerConfig(**settings)
    import agent_tracer.store  # noqa: F401  # imported before the freeze, not at the first batch

    hold_collector_back()
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    parent = {"closed": False, "gone": False}
    """closed: the parent sent "close"; gone: its pipes are closed without one."""

    def receive() -> None:
        while (message := read_frame(frames_in)) is not None and message[0] == "batch":
            inbox.put(message)
        parent["closed"] = message is not None
        inbox.put(None)

    def acknowledge(seqs: list[int]) -> None:
        if not parent["gone"]:
            try:
                write_frame(frames_out, ("ack", seqs, stats.everything()))
            except (OSError, ValueError):
                parent["gone"] = True  # dead: keep writing what it sent, settle it below

    threading.Thread(target=receive, name="agent-tracer-receive", daemon=True).start()
    stats = CaptureStats()
    writer = BatchWriter(config, stats, _open_store, threading.Event())
    written: deque[tuple[int, int]] = deque()
    """Batches written, by sequence number and size, that the parent has not yet seen acknowledged."""
    open_frames: list[Any] = []
    """Frames written in the open transaction (parts of a request), acknowledged at its commit."""
    open_payloads = 0

    def committed(frames: list[Any]) -> None:
        acknowledge([frame[1] for frame in frames])
        if ledger is not None:
            written.extend((frame[1], len(frame[2])) for frame in frames)
            acked = ledger.acked_seq()
            while written and written[0][0] <= acked:
                written.popleft()

    try:
        while True:
            try:
                message = inbox.get(timeout=HELD_WAIT_S if open_frames else config.flush_interval_s)
            except queue.Empty:
                if open_frames:  # the rest of the request did not come: commit what came
                    writer.export([])
                    committed(open_frames)
                    open_frames, open_payloads = [], 0
                    continue
                before = stats.everything()  # nothing to write: a waiting spill file may go back
                writer.idle()
                if stats.everything() != before:
                    acknowledge([])  # the parent's figures follow
                continue
            if message is None:
                break
            frames, payloads = [message], list(message[2])
            ended = False
            while len(payloads) < config.batch_size:
                try:
                    following = inbox.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    ended = True
                    break
                frames.append(following)
                payloads.extend(following[2])
            # A transaction stays open up to `batch_size` payloads.
            more = frames[-1][3] and not ended and open_payloads + len(payloads) < config.batch_size
            writer.export(payloads, more=more)
            open_frames += frames
            open_payloads += len(payloads)
            if not more:
                committed(open_frames)
                open_frames, open_payloads = [], 0
            if ended:
                break
    finally:
        writer.close()  # commits what a transaction still holds
        if open_frames:
            committed(open_frames)
        if ledger is not None and written and not parent["closed"]:
            acked = ledger.acked_seq()  # the parent is gone: nothing moves it any more
            ledger.settle_orphaned(sum(n for seq, n in written if seq > acked), written[-1][0])


if __name__ == "__main__":
    main()
