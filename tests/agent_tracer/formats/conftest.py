"""Fixtures for the import / export tests: an empty SQLite store, the CLI through CliRunner,
JSON-lines files written into tmp_path, and a check for one-line CLI errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agent_tracer.cli import main
from agent_tracer.store import TraceStore


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'traces.db'}"


@pytest.fixture
def open_store(db: str) -> Iterator[Callable[[], TraceStore]]:
    """Opens the store at `db` (after the CLI wrote into it); closed after the test."""
    opened: list[TraceStore] = []

    def opener() -> TraceStore:
        opened.append(TraceStore(db))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def cli() -> Callable[..., Result]:
    def run(*args: Any) -> Result:
        return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)

    return run


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[[str, list[Any]], Path]:
    """Writes a JSON-lines file into tmp_path: dicts and lists as JSON, strings as they are."""

    def write(name: str, items: list[Any]) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items), encoding="utf-8")
        return path

    return write


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """Asserts that a command failed with one `Error: …` line holding `text` (usage errors, exit
    code 2, come after click's usage lines)."""

    def check(result: Result, text: str, exit_code: int = 1) -> None:
        assert result.exit_code == exit_code, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and text in errors[0], result.output
        if exit_code == 1:
            assert result.output.strip().splitlines() == errors, result.output

    return check
