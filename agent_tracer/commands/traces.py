"""`agent-tracer traces …`: list, show, rate, stats, prune, erase, import and export the recorded traces.

Every command takes `--db URL` (env `AGENT_TRACER_DB`) and, where it prints data, `--json` for
scripts. The store (SQLModel, SQLAlchemy) is imported inside the commands, so `agent-tracer --help`
stays fast. Errors are one line: `click.ClickException`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent_tracer.console import (
    TimeParam,
    bar_over,
    db_option,
    json_option,
    open_store,
    progress_bar,
    selection_options,
    text_table,
)
from agent_tracer.errors import AgentTracerError
from agent_tracer.feedback import BETTER_THAN
from agent_tracer.formats.bfcl import open_bfcl
from agent_tracer.formats.export import (
    ExportCounts,
    ExportRow,
    export_rows,
    runs_up_to,
    write_openai_jsonl,
    write_parquet,
)
from agent_tracer.formats.imports import ImportOptions, Opener, counted, open_spill
from agent_tracer.formats.openai_jsonl import open_openai_jsonl
from agent_tracer.formats.sharegpt import open_sharegpt
from agent_tracer.messages import message_key, message_text
from agent_tracer.records import Record

if TYPE_CHECKING:
    from agent_tracer.store import LLMCall, TraceDetail


@click.group()
def traces() -> None:
    """Recorded agent runs and their LLM calls."""


# -- list -----------------------------------------------------------------------------------------


@traces.command("list")
@selection_options(limit=20)
@db_option
@json_option
def list_traces(db: str | None, as_json: bool, tags: tuple[str, ...], **filters: Any) -> None:
    """List traces, newest first."""
    with open_store(db) as store:
        found = store.traces(tags=list(tags) or None, **filters)
        summaries = store.trace_summaries([trace.id for trace in found])
    empty = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0}
    if as_json:
        rows = [{**trace.model_dump(mode="json"), **summaries.get(trace.id, empty)} for trace in found]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("No traces match.")
        return
    table = []
    for trace in found:
        summary = summaries.get(trace.id, empty)
        table.append(
            [
                trace.id[:12],
                _clip(trace.name or "-", 28),
                _time(trace.started_at),
                str(summary["calls"]),
                f"{summary['input_tokens'] + summary['output_tokens']:,}",
                trace.outcome or "-",
                _number(trace.rating),
                trace.status or "-",
            ]
        )
    headers = ["ID", "NAME", "STARTED (UTC)", "CALLS", "TOKENS", "OUTCOME", "RATING", "STATUS"]
    click.echo(text_table(headers, table, right={3, 4, 6}))


# -- show -----------------------------------------------------------------------------------------


@traces.command("show")
@click.argument("trace_id")
@db_option
@json_option
def show_trace(trace_id: str, db: str | None, as_json: bool) -> None:
    """Show one trace as a conversation. TRACE_ID may be a unique prefix, or the run id an agent sent the proxy."""
    with open_store(db) as store:
        detail = store.get_trace(trace_id)
    if as_json:
        click.echo(json.dumps(detail.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(render_trace(detail)))


def render_trace(detail: TraceDetail) -> list[str]:
    """The trace as readable lines: a header, then agent runs, LLM calls and tool executions as
    a tree by parent span, each call showing only the messages not shown before it."""
    trace = detail.trace
    lines = [f"Trace {trace.id}"]
    duration = _duration(trace.started_at, trace.ended_at)
    started = f"{_time(trace.started_at)} UTC" + (f"  ({duration})" if duration else "")
    fields = [
        ("agent", trace.name),
        ("task", trace.task),
        ("started", started if trace.started_at else None),
        ("status", trace.status + (f": {trace.error}" if trace.error else "") if trace.status else None),
        ("outcome", trace.outcome),
        ("rating", _number(trace.rating) if trace.rating is not None else None),
        ("comment", trace.comment),
        ("tags", ", ".join(trace.tags) if trace.tags else None),
        ("source", trace.source),
    ]
    lines += [f"  {label + ':':<9} {value}" for label, value in fields if value]
    if trace.meta:
        lines.append(f"  {'meta:':<9} {_json(trace.meta)}")

    nodes: list[tuple[str, Any]] = (
        [("agent", run) for run in detail.agent_runs]
        + [("llm", call) for call in detail.calls]
        + [("tool", tool) for tool in detail.tools]
    )
    ids = {node.id for _, node in nodes}
    children: dict[str | None, list[tuple[str, Any]]] = {}
    for kind, node in nodes:
        parent = node.parent_span_id if node.parent_span_id in ids else None
        children.setdefault(parent, []).append((kind, node))
    for siblings in children.values():
        siblings.sort(key=lambda item: (item[1].started_at is None, item[1].started_at or datetime.min, item[1].id))

    seen: set[tuple[tuple[Any, ...], int]] = set()
    numbers = {call.id: number for number, call in enumerate(detail.calls, start=1)}

    def walk(parent: str | None, depth: int) -> None:
        for kind, node in children.get(parent, []):
            pad = "  " * depth
            lines.append("")
            if kind == "agent":
                lines.append(f"{pad}[agent] {node.name or '?'}" + _suffix(_ms(node.latency_ms)))
                if node.input is not None:
                    lines.extend(_block(f"{pad}  input: ", _json(node.input)))
                walk(node.id, depth + 1)
                if node.output is not None:
                    lines.extend(_block(f"{pad}  output: ", _json(node.output)))
                if node.error:
                    lines.extend(_block(f"{pad}  error: ", node.error))
            elif kind == "llm":
                lines.extend(_render_call(node, numbers.get(node.id, 0), pad, seen))
                walk(node.id, depth + 1)
            else:
                lines.extend(_render_tool(node, pad))
                walk(node.id, depth + 1)

    walk(None, 0)
    if detail.feedback:
        lines += ["", "Feedback"]
        for item in detail.feedback:
            parts = [
                f"{label} {value}"
                for label, value in (
                    ("outcome", item.outcome),
                    ("rating", _number(item.rating) if item.rating is not None else None),
                    ("label", item.label),
                    ("from", item.source),
                )
                if value
            ]
            if item.comment:
                parts.append(json.dumps(item.comment, ensure_ascii=False))
            if item.correction:
                parts.append(f"correction {_said(item.correction)}")
            lines.append(f"  {_time(item.created_at)}  " + "  ".join(parts))
    return lines


def _render_call(call: LLMCall, number: int, pad: str, seen: set[tuple[tuple[Any, ...], int]]) -> list[str]:
    model = call.request_model or call.response_model or "?"
    if call.response_model and call.request_model and call.response_model != call.request_model:
        model += f" -> {call.response_model}"
    facts = [
        _ms(call.latency_ms),
        f"ttft {_ms(call.ttft_ms)}" if call.ttft_ms is not None else None,
        f"tokens {_count(call.input_tokens)} in / {_count(call.output_tokens)} out"
        if call.input_tokens is not None or call.output_tokens is not None
        else None,
        call.status + (f" (HTTP {call.http_status})" if call.http_status and call.http_status >= 400 else ""),
        f"route {call.route}" + (f" ({call.fallback_reason})" if call.fallback_reason else "") if call.route else None,
        "streamed" if call.streamed else None,
    ]
    lines = [f"{pad}[llm #{number}] {model}" + _suffix(*facts)]
    inner = pad + "    "
    messages = (call.request or {}).get("messages") or []
    occurrences: dict[tuple[Any, ...], int] = {}
    for message in messages:
        key = message_key(message)
        occurrence = occurrences.get(key, 0)
        occurrences[key] = occurrence + 1
        if (key, occurrence) in seen:
            continue
        seen.add((key, occurrence))
        lines.extend(_render_message(message, inner))
    answer = (call.response or {}).get("message")
    if answer:
        seen.add((message_key(answer), 0))
        lines.extend(_render_message(answer, inner))
    if call.error:
        lines.extend(_block(f"{inner}error: ", call.error))
    return lines


def _render_tool(tool: Any, pad: str) -> list[str]:
    lines = [f"{pad}[tool] {tool.name or '?'}" + _suffix(_ms(tool.latency_ms), "error" if tool.error else None)]
    if tool.arguments is not None:
        lines.extend(_block(f"{pad}    args: ", _json(tool.arguments)))
    if tool.error:
        lines.extend(_block(f"{pad}    error: ", tool.error))
    elif tool.result is not None:
        lines.extend(_block(f"{pad}    result: ", _json(tool.result)))
    return lines


def _render_message(message: dict[str, Any], pad: str) -> list[str]:
    role = message.get("role") or "?"
    if role == "tool" and message.get("tool_call_id"):
        role = f"tool [{message['tool_call_id']}]"
    lines: list[str] = []
    text = message_text(message, placeholders=True)
    if text:
        lines.extend(_block(f"{pad}{role}: ", text))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        label = f"{pad}{role}: -> {function.get('name') or '?'}"
        lines.extend(_block(f"{label}(", f"{function.get('arguments') or ''})"))
        if call.get("id"):
            lines[-1] += f"  [{call['id']}]"
    if not lines:
        lines.append(f"{pad}{role}: (empty)")
    return lines


# -- rate -----------------------------------------------------------------------------------------


@traces.command("rate")
@click.argument("trace_id")
@click.option("--outcome", help="success, failure, partial, … (free text).")
@click.option("--rating", type=click.FloatRange(0, 5), help="A number from 0 to 5.")
@click.option("--comment", help="Free text.")
@click.option("--label", help="A label for curation (e.g. golden, bad-tool-use).")
@click.option(
    "--better-than",
    metavar="OTHER",
    help="This trace answered better than trace OTHER (a pairwise judgement, for reward data).",
)
@db_option
@json_option
def rate_trace(
    trace_id: str,
    outcome: str | None,
    rating: float | None,
    comment: str | None,
    label: str | None,
    better_than: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Record feedback on a trace. TRACE_ID may be a unique prefix, or the run id an agent sent the proxy."""
    if outcome is None and rating is None and comment is None and label is None and better_than is None:
        raise click.UsageError("give at least one of --outcome, --rating, --comment, --label, --better-than")
    if label is not None and better_than is not None:
        raise click.UsageError("--better-than is a label of its own: give --label or --better-than, not both")
    with open_store(db) as store:
        trace = store.get_trace(trace_id).trace
        if better_than is not None:
            label = BETTER_THAN + store.get_trace(better_than).trace.id
        feedback = store.record_feedback(
            trace.id, outcome=outcome, rating=rating, comment=comment, label=label, source="cli"
        )
    if as_json:
        click.echo(json.dumps(feedback.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    given = [
        f"{name} {value}"
        for name, value in (
            ("outcome", outcome),
            ("rating", _number(rating) if rating is not None else None),
            ("label", label),
            ("comment", json.dumps(comment, ensure_ascii=False) if comment else None),
        )
        if value
    ]
    click.echo(f"Rated {trace.id[:12]}: {', '.join(given)}")


# -- correct --------------------------------------------------------------------------------------


@traces.command("correct")
@click.argument("trace_id")
@click.option("--answer", help="The answer the run should have given (its text).")
@click.option(
    "--answer-file", type=click.File("r", encoding="utf-8"), help="The answer's text from a file ('-': standard input)."
)
@click.option(
    "--tool-calls",
    metavar="JSON",
    help='The tool calls it should have made: a JSON list such as [{"name": "lookup", "arguments": {"id": "A1"}}].',
)
@click.option(
    "--from-run",
    metavar="OTHER",
    help="Take the answer from run OTHER (a successful run of the same task): its turn at the point this run answered.",
)
@click.option("--comment", help="Free text, kept with the correction.")
@db_option
@json_option
def correct_trace(
    trace_id: str,
    answer: str | None,
    answer_file: Any,
    tool_calls: str | None,
    from_run: str | None,
    comment: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Correct a run's last answer: stored as feedback that `dataset dpo` makes a pair of (the
    correction chosen, the run's answer rejected, the conversation it was sent as the prompt)."""
    from agent_tracer.corrections import as_correction, final_answer

    if answer is not None and answer_file is not None:
        raise click.UsageError("give --answer or --answer-file, not both")
    text = answer_file.read() if answer_file is not None else answer
    if from_run is not None and (text is not None or tool_calls is not None):
        raise click.UsageError(
            "--from-run takes the whole answer from the other run: leave out --answer and --tool-calls"
        )
    if from_run is None and text is None and tool_calls is None:
        raise click.UsageError("give --answer, --answer-file, --tool-calls or --from-run")
    calls: Any = None
    if tool_calls is not None:
        try:
            calls = json.loads(tool_calls)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON ({exc})", param_hint="--tool-calls") from None
    with open_store(db) as store:
        detail = store.get_trace(trace_id, full_calls=())
        run = final_answer(store, detail)
        if run is None:
            raise click.ClickException(f"run {detail.trace.id[:12]} has no answer to correct (no model call answered)")
        if from_run is not None:
            other_detail = store.get_trace(from_run, full_calls=())
            other = final_answer(store, other_detail)
            if other is None or other.trace_id == run.trace_id:
                raise click.ClickException(f"run {other_detail.trace.id[:12]} has no other answer to take")
            correction = as_correction(other.answer_at(run))
            comment = comment or f"answer of run {other.trace_id}"
        else:
            correction = {"content": text, "tool_calls": calls}
        feedback = store.record_feedback(detail.trace.id, comment=comment, source="cli", correction=correction)
    if as_json:
        click.echo(json.dumps(feedback.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    click.echo(f"Corrected {detail.trace.id[:12]}: {_said(feedback.correction or {})}")


def _said(message: dict[str, Any]) -> str:
    """An assistant message in one line: its text, and its tool calls as name(arguments)."""
    parts = [json.dumps(message["content"], ensure_ascii=False)] if message.get("content") else []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(f"{function.get('name')}({function.get('arguments')})")
    return ", ".join(parts)


# -- stats ----------------------------------------------------------------------------------------


@traces.command("stats")
@click.option("--since", type=TimeParam(), help="Only what started at or after this (date or age like 7d).")
@db_option
@json_option
def trace_stats(since: datetime | None, db: str | None, as_json: bool) -> None:
    """Counts, outcomes, models, errors and latency."""
    with open_store(db) as store:
        stats = store.stats(since=since)
    if as_json:
        click.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    lines = [] if since is None else [f"Since {_time(since)} UTC", ""]
    lines += [
        f"Traces            {stats['traces']:>8,}   errors {stats['trace_errors']:,}",
        f"LLM calls         {stats['llm_calls']:>8,}   errors {stats['errors']:,}",
        f"Tool executions   {stats['tool_executions']:>8,}   errors {stats['tool_errors']:,}",
        f"Feedback          {stats['feedback']:>8,}",
        f"Tokens            {stats['input_tokens']:>8,} in   {stats['output_tokens']:,} out",
        f"Latency           p50 {_ms(stats['latency_ms']['p50'])}   p95 {_ms(stats['latency_ms']['p95'])}",
        f"First token       p50 {_ms(stats['ttft_ms']['p50'])}",
    ]
    size = stats["store"]
    if size["bytes"] is not None:
        line = f"Store             {_mb(size['bytes'])}"
        if size["bytes_per_call"] is not None:
            days = sum(size["calls_per_day"].values())
            line += f", {size['bytes_per_call'] / 1000:,.1f} KB a model call"
            line += f"; {days:,} calls in the last 7 days, about {_mb(size['bytes_per_day'])} a day"
        lines.append(line)
    if stats["by_outcome"]:
        lines += ["", "By outcome"]
        lines += [f"  {outcome:<16} {count:>8,}" for outcome, count in stats["by_outcome"].items()]
    if stats["by_model"]:
        lines += ["", "By model"]
        rows = [
            [
                item["model"] or "?",
                f"{item['calls']:,}",
                f"{item['input_tokens']:,}",
                f"{item['output_tokens']:,}",
                f"{item['errors']:,}",
            ]
            for item in stats["by_model"]
        ]
        table = text_table(["MODEL", "CALLS", "TOKENS IN", "TOKENS OUT", "ERRORS"], rows, right={1, 2, 3, 4})
        lines += ["  " + line for line in table.splitlines()]
    click.echo("\n".join(lines))


# -- prune ----------------------------------------------------------------------------------------


@traces.command("prune")
@click.option(
    "--older-than",
    "cutoff",
    type=TimeParam(),
    required=True,
    help="Delete runs that started before this: an age (30d, 12w, 6h) or a date (2026-01-01).",
)
@click.option("--keep-rated", is_flag=True, help="Keep runs with a rating, an outcome or any feedback, however old.")
@click.option("--keep-tag", "keep_tags", multiple=True, help="Keep runs with this tag, however old (repeatable).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--vacuum", is_flag=True, help="Then give the freed space back to the disk (SQLite: rewrites the file).")
@db_option
@json_option
def prune_traces(
    cutoff: datetime, keep_rated: bool, keep_tags: tuple[str, ...], dry_run: bool, vacuum: bool, db: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Delete old runs with their model calls, agent runs, tool executions and feedback.

    In batches of 500 runs, each its own short transaction, so a proxy or capture writing into
    the same store keeps going. Say what stays with --keep-rated and --keep-tag (the runs a
    dataset or an evaluation used, once tagged); try it first with --dry-run."""
    from agent_tracer.store.retention import prunable

    conditions = prunable(cutoff, keep_rated=keep_rated, keep_tags=keep_tags)
    what = f"runs that started before {_time(cutoff)} UTC"
    _delete_runs(db, conditions, what, cutoff=cutoff, dry_run=dry_run, vacuum=vacuum, as_json=as_json)


@traces.command("erase")
@click.option("--user", "users", multiple=True, help="Every run of this end user (its user.id; repeatable).")
@click.option("--session", "sessions", multiple=True, help="Every run of this session (its session.id; repeatable).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--vacuum", is_flag=True, help="Then rewrite the store without the freed pages (SQLite), so no copy lingers."
)
@db_option
@json_option
def erase_traces(
    users: tuple[str, ...], sessions: tuple[str, ...], dry_run: bool, vacuum: bool, db: str | None, as_json: bool
) -> None:
    """Delete every run of an end user or a session, whatever its age (a data-protection request).

    Runs are found by the `user.id` / `session.id` in their metadata: the proxy's X-Agent-User and
    X-Agent-Session headers, OpenTelemetry's user.id, enduser.id and session.id attributes, or
    @trace_agent(metadata={"user.id": ...}). Their model calls, agent runs, tool executions and
    feedback go with them, and no copy stays in the store's files (SQLite overwrites what it
    deletes and empties its log; PostgreSQL vacuums the tables)."""
    from agent_tracer.store.retention import of_people

    if not users and not sessions:
        raise click.UsageError("name whose runs to erase: --user ID or --session ID")
    who = " or ".join([*(f"user {u}" for u in users), *(f"session {s}" for s in sessions)])
    conditions = of_people(users, sessions)
    _delete_runs(db, conditions, f"runs of {who}", dry_run=dry_run, vacuum=vacuum, secure=True, as_json=as_json)


def _delete_runs(db: str | None, conditions: list[Any], what: str, *, as_json: bool, **options: Any) -> None:
    """Delete the runs meeting `conditions` (`retention.delete_runs`) and say what went."""
    from agent_tracer.store.retention import delete_runs

    with open_store(db) as store, progress_bar("deleting", "runs") as bar:

        def report(done: Any) -> None:
            bar.update(done.runs - bar.n)

        deleted = delete_runs(store.engine, conditions, progress=report, **options)
    if as_json:
        click.echo(json.dumps(deleted.to_dict(), indent=2))
        return
    rows = deleted.rows
    click.echo(
        f"{'would delete' if deleted.dry_run else 'deleted'} {deleted.runs:,} {what}, with {rows['llm_calls']:,} "
        f"model calls, {rows['agent_runs']:,} agent runs, {rows['tool_executions']:,} tool executions, "
        f"{rows['feedback']:,} feedback and {rows['unmapped_spans']:,} unmapped spans"
    )
    if not deleted.dry_run and deleted.size_before is not None and deleted.size_after is not None:
        line = f"the store: {_mb(deleted.size_before)} before, {_mb(deleted.size_after)} after"
        if deleted.free_after:
            line += f"; {_mb(deleted.free_after)} free inside it, for new runs (--vacuum gives it back to the disk)"
        elif deleted.vacuumed:
            line += " (vacuumed)"
        click.echo(line)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


# -- import ---------------------------------------------------------------------------------------


IMPORT_FORMATS: dict[str, Opener] = {
    "bfcl": open_bfcl,
    "openai-jsonl": open_openai_jsonl,
    "sharegpt": open_sharegpt,
    "spill": open_spill,
}
"""Format name → opener: `(FILE, options)` → a `Reader` of the file's `(kind, row)` records that
says afterwards what it met. A new format (OTLP JSON, another tool's export) is a module in
`agent_tracer/formats/` and one more entry here."""


@traces.command("import")
@click.argument("file")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(IMPORT_FORMATS)),
    default="spill",
    show_default=True,
    help="spill: the JSONL file the writer keeps when the store is unavailable; openai-jsonl: OpenAI "
    "fine-tuning lines; sharegpt: ShareGPT conversations; bfcl: Berkeley Function Calling "
    "Leaderboard questions with their ground truth (FILE may be bfcl:<category>).",
)
@click.option(
    "--strict", is_flag=True, help="Stop at the first line that is not an example (default: warn, skip and count it)."
)
@click.option(
    "--answers",
    type=click.Path(exists=True, dir_okay=False),
    help="bfcl: the ground-truth file [default: possible_answer/ beside FILE].",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Records written per transaction."
)
@db_option
@json_option
def import_traces(
    file: str, fmt: str, strict: bool, answers: str | None, batch_size: int, db: str | None, as_json: bool
) -> None:
    """Load records from FILE into the store. Importing a file again adds nothing twice.

    Each example of openai-jsonl, sharegpt and bfcl becomes a successful run: a trace tagged with
    the format, one call whose answer is the example's last assistant message, and feedback with
    outcome success. BFCL's live_* categories are tagged held-out: for evaluation, never training.
    """
    if answers is not None and fmt != "bfcl":
        raise click.UsageError("--answers goes with --format bfcl")
    options = ImportOptions(strict=strict, answers=answers, warn=lambda text: click.echo(f"Warning: {text}", err=True))
    try:
        reader = IMPORT_FORMATS[fmt](file, options)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    read = written = 0
    with open_store(db, create=True) as store, progress_bar("importing", " records") as bar:
        try:
            for batch in _batches(reader, batch_size):
                written += store.write(batch)
                read += len(batch)
                bar.update(len(batch))
        except AgentTracerError as exc:
            done = f"; the {read:,} records before it are in the store, and importing again is safe" if read else ""
            raise click.ClickException(f"{exc}{done}") from None
    summary = {"file": file, "format": fmt, "records": read, "written": written, **reader.notes()}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    message = f"Imported {read:,} records from {file}: {written:,} rows new or changed"
    remarks = reader.remarks()
    if remarks:
        message += f" ({'; '.join(remarks)})"
    click.echo(message)


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """The records in lists of `size`. When reading stops with an error (a bad line under --strict,
    a damaged spill file), the records read before it come first, to be written before it is raised."""
    batch: list[Record] = []
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
    except AgentTracerError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


# -- export ---------------------------------------------------------------------------------------


EXPORT_FORMATS: dict[str, Callable[[Iterable[ExportRow], Path], int]] = {
    "openai-jsonl": write_openai_jsonl,
    "parquet": write_parquet,
}
"""Format name → writer: takes the rows and the file, returns how many rows it wrote."""


@traces.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(EXPORT_FORMATS)),
    default="openai-jsonl",
    show_default=True,
    help="openai-jsonl: OpenAI fine-tuning lines {messages, tools}; parquet: the same with the trace's "
    "columns, messages and tools as JSON strings (needs pyarrow).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (replaced when the export is complete).",
)
@click.option(
    "--per-call",
    is_flag=True,
    help="One row per stored call with an answer, instead of each run's final conversations.",
)
@click.option(
    "--include-held-out", is_flag=True, help="Also export traces tagged held-out (evaluation data: never train on it)."
)
@selection_options()
@db_option
@json_option
def export_traces(
    fmt: str,
    out: Path,
    per_call: bool,
    include_held_out: bool,
    tags: tuple[str, ...],
    db: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """Write the selected traces' conversations to a file: by default each run's final
    conversation (the last call's messages and answer), with --per-call one per stored call."""
    counts = ExportCounts()
    with open_store(db) as store, progress_bar("exporting", " traces", store.count_traces(**filters)) as bar:
        runs = bar_over(
            runs_up_to(
                store, filters.pop("limit"), include_held_out=include_held_out, tags=list(tags) or None, **filters
            ),
            bar,
        )
        rows = EXPORT_FORMATS[fmt](export_rows(runs, counts, per_call=per_call, include_held_out=include_held_out), out)
    if as_json:
        summary = {
            "file": str(out),
            "format": fmt,
            "rows": rows,
            "traces": counts.traces,
            "held_out_left_out": counts.held_out,
        }
        click.echo(json.dumps(summary, indent=2))
        return
    message = f"Wrote {counted(rows, 'conversation')} from {counted(counts.traces, 'trace')} to {out}"
    if counts.held_out:
        message += f" (left out {counted(counts.held_out, 'held-out trace')}: --include-held-out exports them)"
    click.echo(message)


# -- formatting -----------------------------------------------------------------------------------


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if not start or not end:
        return None
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def _suffix(*facts: str | None) -> str:
    shown = [fact for fact in facts if fact and fact != "-"]
    return ("  " + "  ".join(shown)) if shown else ""


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _block(prefix: str, text: str) -> list[str]:
    """`prefix` + the text's first line; later lines indented under it."""
    indent = " " * len(prefix)
    text_lines = str(text).splitlines() or [""]
    return [prefix + text_lines[0], *(indent + line for line in text_lines[1:])]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
