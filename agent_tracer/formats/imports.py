"""Reading a file of another format as store records, for `agent-tracer traces import`.

Each format has an opener, `open_…(file, options) -> Reader`, which checks what it can before
anything is written (the file exists, a BFCL category can be imported) and returns a `Reader`: an
iterable of `(kind, row)` records for `TraceStore.write`, read once, that afterwards says what it
met (`notes()` for `--json`, `remarks()` for the summary line).

The example formats share `ExampleReader`: one JSON value a line, each turned into an `Example` by
the format's parse function. A line that is not one (not JSON, not an object, no answer at the end,
a tool call without a name, …) is skipped and counted, and named `FILE:LINE: reason` through
`ImportOptions.warn`; with `strict` it stops the import instead (`CodecError` with that text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from agent_tracer.errors import CodecError
from agent_tracer.formats.examples import Example
from agent_tracer.records import Record

logger = logging.getLogger("agent_tracer")


@dataclass
class ImportOptions:
    """What the import command passes every opener (each uses what applies to its format)."""

    strict: bool = False
    """Stop at the first line that is not an example, instead of skipping it."""
    answers: str | None = None
    """BFCL: the ground-truth file, when it is not in `possible_answer/` beside the questions."""
    warn: Callable[[str], None] = logger.warning
    """Where `FILE:LINE: reason` goes for each skipped line."""


class Reader(Protocol):
    def __iter__(self) -> Iterator[Record]: ...

    def notes(self) -> dict[str, Any]:
        """What the reading met, once done: counts for a JSON summary."""

    def remarks(self) -> list[str]:
        """The same, as short phrases for the summary line."""


Opener = Callable[[str, ImportOptions], Reader]
Parse = Callable[[Any, int, str], "Example | list[Example]"]
"""A format's parse function: (a line's JSON value, its line number, the line) → its `Example`
(or several, where a line holds a conversation taken turn by turn); raises ValueError
(`CodecError`) with the reason when the line is not an example."""


def existing_file(file: str) -> Path:
    """`file` as a Path; FileNotFoundError (or IsADirectoryError) saying what is missing."""
    path = Path(file)
    if path.is_dir():
        raise IsADirectoryError(f"{file} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{file} does not exist")
    return path


class ExampleReader:
    """The examples of a JSON-lines file as store records, skipping (or, strict, stopping at)
    lines that are not examples; `notes()` counts `examples` and `skipped` lines."""

    def __init__(self, path: Path, parse: Parse, options: ImportOptions) -> None:
        self.path = path
        self.parse = parse
        self.options = options
        self.examples = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Record]:
        imported_at = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as the store keeps times
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                    parsed = self.parse(_json(line), number, line)
                    examples = parsed if isinstance(parsed, list) else [parsed]
                    records = [record for example in examples for record in example.records(imported_at)]
                except ValueError as exc:
                    self._bad(number, str(exc))
                    continue
                self.examples += len(examples)
                yield from records

    def _bad(self, number: int, reason: str) -> None:
        where = f"{self.path}:{number}: {reason}"
        if self.options.strict:
            raise CodecError(where)
        self.skipped += 1
        self.options.warn(where)

    def notes(self) -> dict[str, Any]:
        return {"examples": self.examples, "skipped": self.skipped}

    def remarks(self) -> list[str]:
        said = [counted(self.examples, "example")]
        if self.skipped:
            said.append(f"skipped {counted(self.skipped, 'bad line')}")
        return said


def counted(number: int, thing: str) -> str:
    """ "1 example", "1,200 examples": a count for a summary line."""
    return f"{number:,} {thing}{'' if number == 1 else 's'}"


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise CodecError(f"not JSON ({exc})") from None


def example_object(item: Any, *keys: str) -> dict[str, Any]:
    """A line's value when it is a JSON object with a non-empty list under one of `keys`."""
    if not isinstance(item, dict):
        raise CodecError(f"not a JSON object but {type(item).__name__}")
    if not any(isinstance(item.get(key), list) and item[key] for key in keys):
        raise CodecError(f"no {' or '.join(repr(key) for key in keys)} list")
    return item


class SpillImport:
    """The capture spill file (`agent_tracer.spill`) as a `Reader`: its records pass unchanged; a
    damaged line stops the import whatever `strict` says (it is damage, not a foreign example)."""

    def __init__(self, path: Path) -> None:
        from agent_tracer.spill import read_spill  # it imports SQLAlchemy: only when a spill file is read

        self.reader = read_spill(path)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.reader)

    def notes(self) -> dict[str, Any]:
        return {"truncated": self.reader.truncated}

    def remarks(self) -> list[str]:
        truncated = self.reader.truncated
        return [f"skipped {truncated} truncated last line"] if truncated else []


def open_spill(file: str, options: ImportOptions) -> SpillImport:
    return SpillImport(existing_file(file))
