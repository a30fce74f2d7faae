"""What the commands share with the library for talking to a person at a terminal.

The options every command spells the same way (`--db`, `--json`, the trace selection, times),
the options made from a settings dataclass (`config_options`), the store opened for a command
(its errors as one-line `click.ClickException`s), text tables and progress bars. The commands
(`agent_tracer/commands/`, `trainer/commands/`) and library code that prints (dataset builds,
reports, the quickstart) import them from here, so the library never imports a command. Light on
purpose: click and the standard library at import time, the store and tqdm inside the functions
that need them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from agent_tracer.errors import AgentTracerError, first_line
from agent_tracer.prices import PRICES_HELP

if TYPE_CHECKING:
    from agent_tracer.store import TraceStore


# -- shared options -------------------------------------------------------------------------------

db_option = click.option(
    "--db",
    metavar="URL",
    envvar="AGENT_TRACER_DB",
    help="Trace store: sqlite:///path.db or postgresql://… [env AGENT_TRACER_DB; default sqlite:///agent_tracer.db]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
prices_option = click.option("--prices", type=click.Path(exists=True, dir_okay=False), help=PRICES_HELP)
"""What tokens cost (`agent_tracer.prices`): a price file over the default table."""


class TimeParam(click.ParamType):
    """An ISO-8601 date or datetime (UTC unless it says otherwise), or an age: 30m, 2h, 7d, 1w."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from agent_tracer.store.queries import parse_time

        try:
            return parse_time(value)
        except AgentTracerError as exc:
            self.fail(str(exc), param, ctx)


def selection_options(
    *, limit: int | None = None, order: str = "newest", outcome: str | None = None, limit_flag: str = "--limit"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that choose traces, for `traces list`, `traces export` and the dataset commands
    (their keywords are `TraceStore.traces()`'s; the limit arrives as `limit`)."""
    outcome_help = "Only traces with this outcome (success, failure, …)"
    options = [
        click.option(
            "--outcome",
            default=outcome,
            show_default=outcome is not None,
            help=outcome_help + ("; any: all traces." if outcome else "."),
        ),
        click.option("--min-rating", type=float, help="Only traces rated at least this."),
        click.option("--name", help="Agent name; * matches anything."),
        click.option("--tag", "tags", multiple=True, help="Only traces with this tag (repeat: all of them)."),
        click.option(
            "--since", type=TimeParam(), help="Started at or after: 2024-05-01, 2024-05-01T10:00, or an age: 2h, 7d."
        ),
        click.option("--until", type=TimeParam(), help="Started before (same forms as --since)."),
        click.option("--model", help="Only traces with a call to (or answered by) this model."),
        click.option(
            "--has-tool-calls/--no-tool-calls", default=None, help="Only traces whose model called tools / did not."
        ),
        click.option(
            "--search",
            "text",
            metavar="WORDS",
            help="Only traces with a call whose messages, answer or tool calls hold every word (the last may be "
            "the start of one); full-text search, case-insensitive.",
        ),
        click.option(
            limit_flag,
            "limit",
            type=click.IntRange(min=1),
            default=limit,
            show_default=limit is not None,
            help="At most this many traces.",
        ),
        click.option(
            "--order",
            type=click.Choice(["newest", "oldest", "best"]),
            default=order,
            show_default=True,
            help="best: highest rating first, unrated last.",
        ),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


# -- options from a settings dataclass ------------------------------------------------------------


def config_options(
    config: type, *names: str, layered: Callable[[dataclasses.Field[Any]], str] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for each named field of the dataclass `config` (all fields when none are
    named), in that order, so that no setting is described twice. Each field's metadata says:

    - `help`: the option's help (required);
    - `flag`: its name when not `--field-name`; a bool field is `--x/--no-x` unless `flag` names
      one switch (`--require-key`), which turns the setting on;
    - `type` (a click type, such as `click.IntRange(min=1)` or `OrNone(...)`) or `choices`; else
      the annotation's int or float, or text;
    - `multiple`: the option may be repeated (its value is a tuple).

    The option's default is the field's, shown in the help. With `layered` (settings that a preset
    and a config file also give), every option defaults to None, so an absent flag leaves those
    layers be, and the help ends with `[default: …]` saying what `layered(field)` says a run gets.
    """
    hints = typing.get_type_hints(config)
    specs = {spec.name: spec for spec in dataclasses.fields(config)}
    chosen = [specs[name] for name in names] if names else list(specs.values())
    options = [_config_option(spec, hints[spec.name], layered) for spec in chosen]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _config_option(
    spec: dataclasses.Field[Any], hint: Any, layered: Callable[[dataclasses.Field[Any]], str] | None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    meta = spec.metadata
    flag = meta.get("flag") or "--" + spec.name.replace("_", "-")
    settings: dict[str, Any] = {"help": meta["help"]}
    if layered is not None:
        shown = layered(spec)
        settings.update(default=None, help=settings["help"] + (f"  [default: {shown}]" if shown else ""))
    else:
        default = None if spec.default is dataclasses.MISSING else spec.default
        settings.update(default=default, show_default=default is not None)
    if meta.get("multiple"):
        settings["multiple"] = True
    base = _base_type(hint)
    if base is bool:
        if "flag" in meta:
            return click.option(flag, spec.name, is_flag=True, **settings)
        return click.option(f"{flag}/--no-{flag[2:]}", spec.name, **settings)
    if "type" in meta:
        kind = meta["type"]
    elif meta.get("choices"):
        kind = click.Choice(meta["choices"])
    else:
        kind = base if base in (int, float) else str
    return click.option(flag, spec.name, type=kind, **settings)


def _base_type(hint: Any) -> Any:
    """The annotation without `| None`, and without its parameters (`list[str]` → list)."""
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


class OrNone(click.ParamType):
    """A value of `inner`, or `none` for None: a setting left to the server (reasoning models
    refuse a temperature, so an evaluation of one must be able to send none)."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = f"{inner.name}|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        try:
            return self.inner.convert(value, param, ctx)
        except click.BadParameter as exc:
            self.fail(f"{exc.message.rstrip('.')} (or none: the server's default)", param, ctx)


# -- the store ------------------------------------------------------------------------------------


@contextmanager
def open_store(db: str | None, *, create: bool = False) -> Iterator[TraceStore]:
    """The store for a command; its errors (and the database's) become one-line CLI errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from agent_tracer.store import TraceStore
    from agent_tracer.store.database import parse_url, sqlite_path

    try:
        path = sqlite_path(parse_url(db))
        if not create and path is not None and not path.exists():
            raise click.ClickException(f"no trace store at {path} (choose one with --db URL or AGENT_TRACER_DB)")
        store = TraceStore(db, create=create)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open the trace store: {first_line(exc)}") from None
    try:
        yield store
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {first_line(exc)}") from None
    finally:
        store.close()


# -- output ---------------------------------------------------------------------------------------


def check_key_options(require_key: bool, key_file: str | None, *, host: str = "", beyond: str | None = None) -> None:
    """The key options of a server command (`proxy`, `ui`, `collect`): `--key-file` only with
    `--require-key`; and, where `beyond` says what listening past loopback would do ("serves trace
    contents beyond this machine"), a host other than a loopback name only with `--require-key`."""
    from agent_tracer.proxy.config import LOOPBACK_HOSTS

    if key_file and not require_key:
        raise click.UsageError("--key-file is only used with --require-key")
    if beyond is not None and host not in LOOPBACK_HOSTS and not require_key:
        raise click.UsageError(f"listening on {host} {beyond}: add --require-key")


def text_table(headers: list[str], rows: list[list[str]], *, right: frozenset[int] | set[int] = frozenset()) -> str:
    """Columns padded to their widest cell, two spaces apart; the columns in `right` right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def progress_bar(description: str, unit: str, total: int | None = None) -> Any:
    """A progress bar on stderr, shown only when stderr is a terminal (not in logs or pipes)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit=unit, disable=None, dynamic_ncols=True, leave=False)


def bar_over(items: Iterable[Any], bar: Any) -> Iterator[Any]:
    """The items, counting each on the bar as it is taken."""
    for item in items:
        bar.update(1)
        yield item
