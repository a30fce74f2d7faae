"""Writing a dataset: JSONL files that appear only when complete, a manifest beside them, and the
same rows as a `datasets.Dataset`.

`--out sft.jsonl` gives `sft.jsonl` (train), `sft.eval.jsonl` (the held-out split) and
`sft.manifest.json` (the summary, and which traces are held out, for `agent-tracer eval
--from-store --split eval`). Each file is written under a temporary name and renamed when done, so
an interrupted build never leaves half a dataset that looks whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent_tracer import fastjson
from agent_tracer.errors import ConfigError
from trainer.data.rows import MESSAGE_COLUMNS, dataset_features, template_roles
from trainer.data.summary import Summary


def output_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """The train, eval and manifest paths for `--out` (a `.jsonl` suffix is added when missing)."""
    train = Path(out)
    if train.suffix != ".jsonl":
        train = train.with_name(train.name + ".jsonl")
    stem = train.name[: -len(".jsonl")]
    return {
        "train": train,
        "eval": train.with_name(f"{stem}.eval.jsonl"),
        "manifest": train.with_name(f"{stem}.manifest.json"),
    }


class RowWriter:
    """Appends rows to `path` as JSON lines, under a temporary name until `commit()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.partial")
        self._handle = open(self._temporary, "w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self.write_line(fastjson.dumps(row) + "\n")

    def write_line(self, line: str) -> None:
        """A row already serialised, with its newline."""
        self._handle.write(line)
        self.rows += 1

    def commit(self) -> None:
        self._handle.close()
        os.replace(self._temporary, self.path)

    def abort(self) -> None:
        self._handle.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class EmptyDataset(ConfigError):
    """Every row was dropped, or none could be made: nothing is written, and the message shows
    what each step kept."""


class SplitWriter:
    """The train and eval files of one build: `write(row, trace_id)` puts a row on the side of its
    trace; on a clean exit both files are committed (the eval file only when it has rows), and a
    build that wrote no row at all raises `EmptyDataset` with `summary`'s steps instead."""

    def __init__(self, paths: dict[str, Path], eval_traces: frozenset[str], summary: Summary) -> None:
        self.summary = summary
        self.eval_traces = eval_traces
        self.train = RowWriter(paths["train"])
        self.eval = RowWriter(paths["eval"])

    def write(self, row: dict[str, Any], trace_id: str | None) -> None:
        (self.eval if trace_id in self.eval_traces else self.train).write(row)

    def write_line(self, line: str, trace_id: str | None) -> None:
        (self.eval if trace_id in self.eval_traces else self.train).write_line(line)

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None or not self.train.rows + self.eval.rows:
            self.train.abort()
            self.eval.abort()
            if exc_type is None:
                raise EmptyDataset(
                    f"no {self.summary.kind} rows to write; what each step kept:\n" + self.summary.render()
                )
            return
        self.train.commit()
        if self.eval.rows:
            self.eval.commit()
        else:
            self.eval.abort()
            self.eval.path.unlink(missing_ok=True)  # an eval file of an earlier build is not this one's


def finish(summary: Summary, paths: dict[str, Path], written: SplitWriter, details: dict[str, Any]) -> None:
    """Record the split and the files in the summary, and write the manifest: the summary, the
    held-out traces, and `details` (selection, config, …)."""
    summary.splits = {"train": written.train.rows, "eval": written.eval.rows}
    summary.files = {"train": str(paths["train"])}
    if written.eval.rows:
        summary.files["eval"] = str(paths["eval"])
    summary.files["manifest"] = str(paths["manifest"])
    manifest = {**summary.to_dict(), **details, "eval_traces": sorted(written.eval_traces)}
    temporary = paths["manifest"].with_name(f".{paths['manifest'].name}.partial")
    temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, paths["manifest"])


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield fastjson.loads(line)


def load_dataset(path: Path, kind: str) -> Any:
    """The rows of a written file as a `datasets.Dataset`, messages as `Json` values (see rows.py);
    built through Arrow's cache on disk, so a large file is never held in memory whole."""
    from datasets import Dataset

    features = dataset_features(kind)
    stat = path.stat()  # part of the cache key: datasets reuses a cached build for equal arguments
    # Strings only: datasets takes a list in gen_kwargs for shards, one generator call per item.
    return Dataset.from_generator(
        _columns,
        features=features,
        gen_kwargs={"path": str(path), "columns": ",".join(features), "stamp": f"{stat.st_mtime_ns}:{stat.st_size}"},
    )


def _columns(path: str, columns: str, stamp: str) -> Iterator[dict[str, Any]]:
    """Each row with exactly the dataset's columns (a pair without a `kind` gets None), roles as
    chat templates know them (a `developer` message from another tool's file as `system`)."""
    names = columns.split(",")
    for row in read_rows(Path(path)):
        yield {name: template_roles(row.get(name)) if name in MESSAGE_COLUMNS else row.get(name) for name in names}
