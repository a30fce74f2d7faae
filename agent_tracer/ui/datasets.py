"""The datasets page: an SFT or DPO dataset built from the runs list's filter by the real command.

The build runs `python -m agent_tracer.cli dataset sft|dpo … --json --no-progress` as a child
process (the trainer's code never loads into the UI's process, which the proxy may be), with the
filter turned into the command's selection options and the form's fields into its other options,
and shows the JSON summary it prints: each curation step's rows in and out and why, the splits and
the files. So a build in the page is exactly the command's, and the page can print that command
for a terminal (the database URL's password masked; the child gets the real URL through
`AGENT_TRACER_DB`, never on its command line, where `ps` would show it).

Each build gets a folder under the datasets directory (`agent-tracer ui --datasets-dir`), named by
its time, holding the command's files and `build.json` (what the page shows). The files are served
from there by name, only those the build wrote. A filter the command cannot express (the runs'
status, for one) is named on the page as not applied, never dropped in silence. A build that fails
(nothing selected, a bad option, the time limit) shows the command's one-line error and leaves no
folder. Without a datasets directory (`agent-tracer proxy` without --datasets-dir) or in read-only
mode the page shows the command only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from agent_tracer.errors import ConfigError
from agent_tracer.store.database import redact
from agent_tracer.ui.filters import FilterError, RunFilters, parse_filters
from agent_tracer.ui.forms import form_fields

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

KINDS = ("sft", "dpo")
NEGATIVES = ("corrections", "traces", "synthetic")
"""The DPO negatives the page offers; `llm` needs a model's URL and key: the command takes it."""
NEGATIVE_CHOICES = ("corrections,traces,synthetic", "traces,synthetic", "corrections", "traces", "synthetic")
TIMEOUT_S = 600.0
RECORD = "build.json"
BUILD_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
READ_ONLY = "This UI is read-only (started with --read-only): datasets are not built."
NO_FOLDER = "This UI has no datasets directory (agent-tracer ui --datasets-dir DIR builds them): run the command."
BUSY = "Another dataset build is running; send this one again when it is done."

_FLAGS = {
    "q": "--search",
    "name": "--name",
    "outcome": "--outcome",
    "rating": "--min-rating",
    "tag": "--tag",
    "model": "--model",
    "since": "--since",
    "until": "--until",
}
_PAGING = ("limit", "after")
"""The list's paging, not a filter: a dataset takes every run of the filter."""


@dataclass
class Plan:
    """A build as the page asks for it: the command's options and what the filter lost."""

    kind: str
    filters: RunFilters
    options: dict[str, str]
    """The form's fields as read (for the form shown again)."""
    args: list[str] = field(default_factory=list)
    """The command's options after `dataset KIND`, without --out and --db."""
    not_applied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def command(self, db_url: str, out: str | None) -> list[str]:
        """The command a person types for this build (the URL's password masked)."""
        tail = [f"--out={out}"] if out else []
        return ["agent-tracer", "dataset", self.kind, f"--db={redact(db_url)}", *self.args, *tail]


DEFAULTS = {
    "kind": "sft",
    "per": "run",
    "eval_ratio": "0.1",
    "max_samples": "",
    "redact": "yes",
    "dedup": "yes",
    "near_dup": "0.9",
    "tokenizer": "none",
    "negatives": "corrections,traces,synthetic",
    "kinds": "",
}


def plan(filters: RunFilters, form: Mapping[str, str]) -> Plan:
    """The build that the filter and the form's fields (absent ones at `DEFAULTS`) ask for;
    `ConfigError` with one line for a value that cannot be used."""
    options = {key: (form.get(key) or "").strip() or default for key, default in DEFAULTS.items()}
    kind = options["kind"]
    if kind not in KINDS:
        raise ConfigError(f"kind must be sft or dpo, not {kind!r}")
    found = Plan(kind=kind, filters=filters, options=options)
    _selection(found)
    args = found.args
    args.append(f"--eval-ratio={_number(options['eval_ratio'], 'eval ratio', 0, 1, top_open=True)}")
    args.append("--redact" if _yes(options["redact"], "redact") else "--no-redact")
    if kind == "sft":
        if options["per"] not in ("run", "call"):
            raise ConfigError(f"per must be run or call, not {options['per']!r}")
        args.append(f"--per={options['per']}")
        if options["max_samples"]:
            text = options["max_samples"]
            if not text.isdigit() or int(text) < 1:
                raise ConfigError(f"max samples must be a whole number of at least 1, not {text!r}")
            args.append(f"--max-samples={int(text)}")
        args.append("--dedup" if _yes(options["dedup"], "dedup") else "--no-dedup")
        args.append(f"--near-dup={_number(options['near_dup'], 'near-dup', 0, 1)}")
        args.append(f"--tokenizer={options['tokenizer']}")
        if options["tokenizer"].lower() == "none":
            found.notes.append("tokenizer none: no model is loaded, rows are not measured in tokens nor truncated.")
    else:
        chosen = [item for item in options["negatives"].split(",") if item.strip()]
        unknown = [item for item in chosen if item.strip() not in NEGATIVES]
        if unknown or not chosen:
            raise ConfigError(f"negatives: choose from {', '.join(NEGATIVES)}, not {','.join(unknown) or 'none'}")
        args.append("--negatives=" + ",".join(item.strip() for item in chosen))
        if options["kinds"]:
            args.append(f"--kinds={options['kinds']}")
    return found


def _selection(found: Plan) -> None:
    """The filter as the command's selection options; what it cannot express, named."""
    given = found.filters.given
    for key, value in given.items():
        if key in _FLAGS:
            found.args.append(f"{_FLAGS[key]}={value}")
        elif key == "tools":
            found.args.append("--has-tool-calls" if value == "yes" else "--no-tool-calls")
        elif key == "held_out":
            if value == "yes":
                found.args.append("--include-held-out")
                found.not_applied.append(
                    "held_out=yes: only in part: the command takes the held-out runs with the others, not alone"
                )
        elif key not in _PAGING:
            found.not_applied.append(f"{key}={value}: the dataset command has no such filter")
    if "outcome" not in given:
        default = "success" if found.kind == "sft" else "any"
        found.notes.append(f"No outcome in the filter: the command's default applies ({default}).")
    if given.get("held_out") != "yes":
        found.notes.append("Runs tagged held-out (evaluation data) are left out, as the command does.")


def _yes(text: str, name: str) -> bool:
    if text not in ("yes", "no"):
        raise ConfigError(f"{name} must be yes or no, not {text!r}")
    return text == "yes"


def _number(text: str, name: str, low: float, high: float, *, top_open: bool = False) -> str:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if not (low <= value < high if top_open else low <= value <= high):
        raise ConfigError(
            f"{name} must be from {low:g} to {high:g}{' (less than 1)' if top_open else ''}, not {text!r}"
        )
    return f"{value:g}"


# -- running the command --------------------------------------------------------------------------


class BuildFailed(Exception):
    """The command's one-line error (or why it was stopped)."""


def run_command(plan: Plan, db_url: str, folder: Path, timeout_s: float) -> dict[str, Any]:
    """Run the dataset command for `plan` writing into `folder`; its JSON summary, or
    `BuildFailed` with its error line. The child and any worker of its own are stopped at the
    time limit."""
    out = folder / f"{plan.kind}.jsonl"
    argv = [sys.executable, "-m", "agent_tracer.cli", "dataset", plan.kind, *plan.args, f"--out={out}"]
    argv += ["--json", "--no-progress"]
    env = {**os.environ, "AGENT_TRACER_DB": db_url}
    child = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise BuildFailed(f"the build took longer than {timeout_s:g} s and was stopped") from None
    if child.returncode != 0:
        raise BuildFailed(_error_line(stderr.decode("utf-8", errors="replace"), child.returncode))
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        raise BuildFailed("the dataset command printed no summary") from None
    if not isinstance(summary, dict):
        raise BuildFailed("the dataset command printed no summary")
    return summary


def _error_line(stderr: str, code: int) -> str:
    """The command's `Error: …` line (click prints one for every refusal), without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line.removeprefix("Error: ")
    return f"the dataset command failed with exit code {code}" + (f": {lines[-1]}" if lines else "")


# -- the builds on disk ---------------------------------------------------------------------------


@dataclass
class Build:
    """One build's record, as `build.json` holds it."""

    id: str
    kind: str
    created: str
    query: str
    command: list[str]
    not_applied: list[str]
    notes: list[str]
    summary: dict[str, Any]
    files: dict[str, str]
    """label (train, eval, manifest) → file name in the build's folder."""

    @property
    def shell(self) -> str:
        return shlex.join(self.command)

    @property
    def rows(self) -> int:
        return sum(self.summary.get("splits", {}).values())

    def steps(self) -> list[dict[str, Any]]:
        """The summary's steps as the command prints them: in, out, and why (most frequent first)."""
        shown = []
        for step in self.summary.get("steps", []):
            reasons = sorted(step.get("reasons", {}).items(), key=lambda item: -item[1])
            why = ", ".join(f"{reason} {count:,}" for reason, count in reasons) or "-"
            shown.append({"name": step["step"], "in": step["in"], "out": step["out"], "why": why})
        return shown


class Builds:
    """The datasets directory: a folder per build."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_folder(self) -> tuple[str, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            build_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"
            folder = self.root / build_id
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            return build_id, folder

    def save(self, build: Build) -> None:
        (self.root / build.id / RECORD).write_text(json.dumps(build.__dict__, indent=2, ensure_ascii=False))

    def get(self, build_id: str) -> Build | None:
        if not BUILD_ID.match(build_id):
            return None
        try:
            data = json.loads((self.root / build_id / RECORD).read_text())
        except (OSError, ValueError):
            return None
        return Build(**data)

    def recent(self, limit: int = 50) -> list[Build]:
        if not self.root.is_dir():
            return []
        names = sorted((path.name for path in self.root.iterdir() if BUILD_ID.match(path.name)), reverse=True)
        found = [self.get(name) for name in names[:limit]]
        return [build for build in found if build is not None]

    def file(self, build_id: str, name: str) -> Path | None:
        """A file the build wrote, by name; None for anything else (other names, other folders)."""
        build = self.get(build_id)
        if build is None or name not in build.files.values():
            return None
        root = self.root.resolve()
        path = (root / build_id / name).resolve()
        if path.parent != root / build_id or not path.is_file():
            return None
        return path


# -- the pages ------------------------------------------------------------------------------------


class DatasetsPage:
    """`/datasets` (the form, the command, the earlier builds), its POST, a build's page and files."""

    def __init__(self, ui: UI, root: Path | None, timeout_s: float = TIMEOUT_S) -> None:
        self.ui = ui
        self.builds = Builds(root) if root is not None else None
        self.timeout_s = timeout_s
        self._running = threading.Lock()

    @property
    def off(self) -> str | None:
        """Why builds are off here, or None."""
        if self.ui.read_only:
            return READ_ONLY
        return NO_FOLDER if self.builds is None else None

    async def page(self, request: Request) -> Response:
        try:
            filters = parse_filters(request.query_params)
            found = plan(filters, request.query_params)
        except ConfigError as exc:
            return self.ui.error(request, 400, str(exc))
        return await self._form(request, found)

    async def _form(self, request: Request, found: Plan, error: str | None = None, status: int = 200) -> Response:
        builds = await run_in_threadpool(self.builds.recent) if self.builds is not None else []
        context = {
            "plan": found,
            "options": found.options,
            "query": found.filters.query(after=None, limit=None),
            "command": shlex.join(found.command(self.ui.store.url, None)),
            "off": self.off,
            "error": error,
            "builds": builds,
            "negative_choices": NEGATIVE_CHOICES,
        }
        return self.ui.render(request, "datasets.html", context, status)

    async def build(self, request: Request) -> Response:
        """The form's POST: run the command, then the build's page (POST, redirect, GET)."""
        if self.ui.read_only:
            return self.ui.error(request, 403, READ_ONLY)
        if self.builds is None:
            return self.ui.error(request, 403, NO_FOLDER)
        form = await form_fields(request)
        try:
            filters = parse_filters(form)
            found = plan(filters, form)
        except FilterError as exc:
            return self.ui.error(request, 400, f"Not built: {exc}")
        except ConfigError as exc:
            return await self._form(request, _fallback(form), f"Not built: {exc}", 400)
        if not self._running.acquire(blocking=False):
            return await self._form(request, found, BUSY, 409)
        try:
            build = await run_in_threadpool(self._build, found)
        except BuildFailed as exc:
            return await self._form(request, found, f"Not built: {exc}", 400)
        finally:
            self._running.release()
        return RedirectResponse(str(request.url_for("dataset", build_id=build.id)), status_code=303)

    def _build(self, found: Plan) -> Build:
        assert self.builds is not None
        build_id, folder = self.builds.new_folder()
        try:
            summary = run_command(found, self.ui.store.url, folder, self.timeout_s)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        files = {label: Path(path).name for label, path in summary.get("files", {}).items()}
        build = Build(
            id=build_id,
            kind=found.kind,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            query=found.filters.query(after=None, limit=None),
            command=found.command(self.ui.store.url, str(folder / f"{found.kind}.jsonl")),
            not_applied=found.not_applied,
            notes=found.notes,
            summary=summary,
            files=files,
        )
        self.builds.save(build)
        return build

    async def show(self, request: Request) -> Response:
        build_id = request.path_params["build_id"]
        build = await run_in_threadpool(self.builds.get, build_id) if self.builds is not None else None
        if build is None:
            return self.ui.error(request, 404, f"Unknown dataset build: {build_id!r}")
        assert self.builds is not None
        sizes = {}
        for label, name in build.files.items():
            path = self.builds.file(build.id, name)
            sizes[label] = path.stat().st_size if path is not None else None
        return self.ui.render(request, "dataset.html", {"build": build, "sizes": sizes})

    async def download(self, request: Request) -> Response:
        build_id, name = request.path_params["build_id"], request.path_params["name"]
        path = await run_in_threadpool(self.builds.file, build_id, name) if self.builds is not None else None
        if path is None:
            return self.ui.error(request, 404, f"No such dataset file: {name!r}")
        media = "application/json" if name.endswith(".json") else "application/x-ndjson"
        return FileResponse(path, media_type=media, filename=name)


def _fallback(form: Mapping[str, str]) -> Plan:
    """The form shown again after a refused value: its filter and the defaults."""
    try:
        filters = parse_filters(form)
    except FilterError:
        filters = RunFilters()
    kind = form.get("kind") if form.get("kind") in KINDS else "sft"
    return plan(filters, {"kind": kind or "sft"})
