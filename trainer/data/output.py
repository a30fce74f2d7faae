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
from trainer.data.rows import dataset_features


def output_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """The train, eval and manifest paths for `--out` (a `.jsonl` suffix is added when missing)."""
    train = Path(out)
    if train.suffix != ".jsonl":
        train = train.with_name(train.name + ".jsonl")
    stem = train.name[: -len(".jsonl")]
    return {"train": train, "eval": train.with_name(f"{stem}.eval.jsonl"),
            "manifest": train.with_name(f"{stem}.manifest.json")}


class RowWriter:
    """Appends rows to `path` as JSON lines, under a temporary name until `commit()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.partial")
        self._handle = open(self._temporary, "w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(fastjson.dumps(row))
        self._handle.write("\n")
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


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


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
    return Dataset.from_generator(_columns, features=features, gen_kwargs={
        "path": str(path), "columns": ",".join(features), "stamp": f"{stat.st_mtime_ns}:{stat.st_size}"})


def _columns(path: str, columns: str, stamp: str) -> Iterator[dict[str, Any]]:
    """Each row with exactly the dataset's columns (a pair without a `kind` gets None)."""
    names = columns.split(",")
    for row in read_rows(Path(path)):
        yield {name: row.get(name) for name in names}
