"""Reading, converting and redacting traces in processes of their own, while this one curates.

Building an SFT dataset is Python work from end to end (parsing stored calls, regex scans for
personal data, hashing for deduplication), so one process is bound by one core. With more cores,
reader processes share the store's chunks of traces (reader i takes every chunk whose number is i
modulo the readers: `TraceStore.iter_run_chunks(shard=…)`), turn runs into examples and redact
them, and this process takes the chunks back in their order, deduplicates, measures and writes.
The order is the selection's, so "best-rated first" and "keep the first duplicate" mean what they
mean in one process, and the output is the same byte for byte.

On Linux a reader is a fork of this process, which has everything imported already: it starts in
milliseconds, opens the store anew and leaves with `os._exit`, so it never closes a connection of
this process's. Elsewhere (fork is unsafe on macOS) a reader is `python -m trainer.data.parallel`, as
the capture writer is, since multiprocessing's spawn would import the caller's main script again;
it pays for its imports. Either way frames go on a pipe, and `build_sft` uses readers only for
selections of `PARALLEL_FROM` traces or more, and only where there is more than one core.

Each batch goes as JSON text (orjson: faster than pickling nested dicts), and each distinct tool
list goes once, examples referring to it by number: an agent's examples all carry the same
schemas, often the largest part of a row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from agent_tracer import fastjson
from agent_tracer.writer_process import read_frame, write_frame
from trainer.data.rows import Example
from trainer.data.summary import Step

FORK = sys.platform == "linux"
PARALLEL_FROM = 1_000 if FORK else 10_000
"""Selections at least this large are read by reader processes: below it they cost more than
they save, started ones much more than forked (BENCHMARKS.md, "Dataset build")."""
MAX_READERS = 4
BATCH = 256
STEPS = ("select", "convert", "redact")


@dataclass
class ReadJob:
    """What a reader needs: where the store is, what to select, how to convert and redact."""

    store_url: str
    selection: Any
    per: str
    include_held_out: bool
    redact: list[str] | None
    """The user's own redaction rules besides the built-in ones; None: no redaction."""
    shard: tuple[int, int] = (0, 1)


def readers() -> int:
    """How many reader processes to start: one a core, up to `MAX_READERS`."""
    return min(os.cpu_count() or 1, MAX_READERS)


def read_in_processes(job: ReadJob, steps: dict[str, Step], on_traces: Any = None) -> Iterator[Example]:
    """The job's examples in the selection's order, read by `readers()` processes; their counts
    are added to `steps` ("select", "convert", "redact") at the end. `on_traces(n)` is told how
    many more traces were read (a progress bar's update)."""
    count = readers()
    children: list[_Child] = []
    try:
        for index in range(count):
            shard = ReadJob(job.store_url, job.selection, job.per, job.include_held_out, job.redact, (index, count))
            children.append(_fork(shard) if FORK else _spawn(shard))
        for chunk in range(sys.maxsize):  # chunk n comes from reader n % count, until one has none left
            examples = children[chunk % count].chunk(chunk, on_traces)
            if examples is None:
                break
            yield from examples
        for child in children:
            for name, counted in child.finish().items():
                step = steps[name]
                step.rows_in += counted.rows_in
                step.rows_out += counted.rows_out
                step.reasons.update(counted.reasons)
    finally:
        for child in children:
            child.close()


def _fork(job: ReadJob) -> _Child:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader: it must not return into the caller's code, nor run its exit handlers
        status = 1
        try:
            os.close(read_end)
            _serve(job, os.fdopen(write_end, "wb"))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return _Child(_Forked(pid), os.fdopen(read_end, "rb"))


def _spawn(job: ReadJob) -> _Child:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer.data.parallel"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert process.stdin is not None and process.stdout is not None  # both are pipes
    write_frame(process.stdin, job)
    process.stdin.close()
    return _Child(process, process.stdout)


class _Forked:
    """A forked reader's pid, with the part of `subprocess.Popen` that `_Child` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)


class _Child:
    """One reader process, seen from here: its chunks of examples, then its counts."""

    def __init__(self, process: subprocess.Popen[bytes] | _Forked, frames: IO[bytes]) -> None:
        self.process = process
        self.frames = frames
        self.tools: list[list[dict[str, Any]]] = []
        self.counts: dict[str, Step] | None = None

    def chunk(self, number: int, on_traces: Any) -> list[Example] | None:
        """The examples of chunk `number`, or None when this reader has no more chunks."""
        examples: list[Example] = []
        while True:
            message = self._next()
            if message[0] == "batch":
                _, traces, new_tools, rows = message
                if on_traces is not None:
                    on_traces(traces)
                self.tools += fastjson.loads(new_tools)
                examples += [
                    Example(messages, self.tools[tools], trace_id) for messages, tools, trace_id in fastjson.loads(rows)
                ]
            elif message[0] == "end":
                if message[1] != number:
                    raise RuntimeError(f"a dataset reader sent chunk {message[1]} where {number} was due")
                return examples
            else:  # "done"
                self.counts = message[1]
                return None

    def finish(self) -> dict[str, Step]:
        if self.counts is None:
            message = self._next()
            if message[0] != "done":
                raise RuntimeError(f"a dataset reader sent {message[0]!r} after its last chunk")
            self.counts = message[1]
        return self.counts

    def _next(self) -> tuple[Any, ...]:
        message = read_frame(self.frames)
        if message is None:
            raise RuntimeError(f"a dataset reader process stopped early (exit status {self.process.wait()})")
        if message[0] == "error":  # the reader failed: its exception, raised here as if it were this process's
            raise message[1]
        return message

    def close(self) -> None:
        self.frames.close()
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()


def main() -> None:
    """A reader: its job in on stdin; out on a private copy of stdout (the real stdout goes to
    stderr, so nothing a library prints can break a frame): for each of its chunks the examples in
    batches and an end marker, then its counts."""
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    job = read_frame(sys.stdin.buffer)
    assert job is not None, "the parent sends the job first"
    _serve(job, frames_out)


def _serve(job: ReadJob, out: IO[bytes]) -> None:
    try:
        _read(job, out)
    except BrokenPipeError:  # the parent stopped reading (it failed, or was interrupted)
        pass
    except Exception as exc:  # handed to the parent, which raises it as if it were its own
        write_frame(out, ("error", exc))


def _read(job: ReadJob, out: IO[bytes]) -> None:
    from agent_tracer.store import TraceStore
    from trainer.data.pii import redaction as make_redaction
    from trainer.data.select import CALL_COLUMNS
    from trainer.data.sft import run_examples

    steps = {name: Step(name) for name in STEPS}
    redaction = make_redaction(job.redact, steps["redact"]) if job.redact is not None else None
    tool_numbers: dict[str, int] = {}
    selection = job.selection
    with TraceStore(job.store_url, create=False) as store:
        chunks = store.iter_run_chunks(
            limit=selection.max_traces, call_columns=CALL_COLUMNS, shard=job.shard, **selection.filters()
        )
        for number, runs in chunks:
            examples = run_examples(runs, job.per, steps["select"], steps["convert"], job.include_held_out)
            if redaction is not None:
                examples = redaction(examples)
            batch: list[tuple[Any, int, Any]] = []
            new_tools: list[Any] = []
            traces = len(runs)
            for example in examples:
                key = fastjson.dumps(example.tools)
                if key not in tool_numbers:
                    tool_numbers[key] = len(tool_numbers)
                    new_tools.append(example.tools)
                batch.append((example.messages, tool_numbers[key], example.trace_id))
                if len(batch) >= BATCH:
                    write_frame(out, ("batch", traces, fastjson.dumps(new_tools), fastjson.dumps(batch)))
                    batch, new_tools, traces = [], [], 0
            write_frame(out, ("batch", traces, fastjson.dumps(new_tools), fastjson.dumps(batch)))
            write_frame(out, ("end", number))
    write_frame(out, ("done", steps))


if __name__ == "__main__":
    main()
