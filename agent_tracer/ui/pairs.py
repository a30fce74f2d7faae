"""The run page's "Make a DPO pair": a correction of the run's last answer, saved as feedback that
`agent-tracer dataset dpo` pairs (see `agent_tracer.corrections`).

The form is filled with the answer the run gave (its text; its tool calls as JSON to edit). Below
it, on request (`?same_task=1`: a full-text search, not paid on every view of a run), the successful
runs of the same task, each with its answer at the point this run answered: one button saves it as
the correction, a link fills the form with it first. A refused value (JSON that does not parse, a
correction with nothing in it) is one line on the page, the form keeping what was typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent_tracer.corrections import RunAnswer, as_correction, final_answer, same_task_runs
from agent_tracer.errors import ConfigError, TraceNotFound
from agent_tracer.messages import Message, message_text, parse_arguments
from agent_tracer.store import TraceDetail
from agent_tracer.ui.forms import form_fields
from agent_tracer.ui.views import MessageView, message_view

if TYPE_CHECKING:
    from agent_tracer.ui.app import UI

READ_ONLY = "This UI is read-only (started with --read-only): corrections are not saved."
FIELDS = ("content", "tool_calls", "comment")
"""The form's fields, kept as typed when a value is refused."""


@dataclass
class Candidate:
    trace_id: str
    answer: MessageView
    """Its answer at the point the corrected run answered."""


@dataclass
class PairForm:
    answer: MessageView | None
    """The run's last answer (what the pair rejects); None when no model call answered."""
    fields: dict[str, str] = field(default_factory=dict)
    candidates: list[Candidate] | None = None
    """Successful runs of the same task; None until asked for."""


async def context(ui: UI, request: Request, detail: TraceDetail, typed: dict[str, str] | None) -> dict[str, Any]:
    """The run page's `pair` (None in read-only mode): the form as typed, or filled with the run's
    answer, or with a candidate's (`?use=TRACE_ID`)."""
    if ui.read_only:
        return {"pair": None}
    wanted = bool(request.query_params.get("same_task"))

    def load() -> tuple[RunAnswer | None, list[RunAnswer] | None]:
        run = final_answer(ui.store, detail)
        return run, (same_task_runs(ui.store, run) if run is not None and wanted else None)

    run, others = await run_in_threadpool(load)
    if run is None:
        return {"pair": PairForm(None)}
    form = PairForm(message_view(run.answer, answer=True), typed or _fields(run.answer))
    if others is not None:
        form.candidates = [Candidate(other.trace_id, message_view(other.answer_at(run))) for other in others]
        use = request.query_params.get("use")
        chosen = next((other for other in others if other.trace_id == use), None)
        if chosen is not None and typed is None:
            form.fields = _fields(chosen.answer_at(run), comment=f"answer of run {chosen.trace_id}")
    return {"pair": form}


class Pairs:
    """The form's POST: `/runs/{trace_id}/pair`."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui

    async def save(self, request: Request) -> Response:
        """Save the correction (typed, or `from_run`: another run's answer) as feedback with source
        "ui", then back to the run's feedback."""
        ui = self.ui
        if ui.read_only:
            return ui.error(request, 403, READ_ONLY)
        form = await form_fields(request)
        trace_id = request.path_params["trace_id"]
        try:
            saved = await run_in_threadpool(self._write, trace_id, form)
        except TraceNotFound as exc:
            return ui.error(request, 404, f"Unknown run: {exc}")
        except ConfigError as exc:
            typed = {name: form.get(name, "") for name in FIELDS}
            return await ui.run(request, message=f"Not saved: {exc}", status=400, pair_form=typed)
        url = request.url_for("run", trace_id=saved)
        return RedirectResponse(f"{url}#feedback", status_code=303)

    def _write(self, trace_id: str, form: dict[str, str]) -> str:
        store = self.ui.store
        detail = store.get_trace(trace_id, full_calls=())
        run = final_answer(store, detail)
        if run is None:
            raise ConfigError("this run has no answer to correct (no model call answered)")
        comment = form.get("comment", "").strip() or None
        from_run = form.get("from_run", "").strip()
        correction: Any
        if from_run:
            try:
                other = final_answer(store, store.get_trace(from_run, full_calls=()))
            except TraceNotFound as exc:
                raise ConfigError(f"the other run: {exc}") from None
            if other is None or other.trace_id == run.trace_id:
                raise ConfigError(f"run {from_run[:12]} has no other answer to take")
            correction = as_correction(other.answer_at(run))
            comment = comment or f"answer of run {other.trace_id}"
        else:
            correction = {"content": form.get("content", ""), "tool_calls": _tool_calls(form.get("tool_calls", ""))}
        store.record_feedback(detail.trace.id, comment=comment, source="ui", correction=correction)
        return detail.trace.id


def _tool_calls(text: str) -> Any:
    """The tool-calls field: nothing, or a JSON list (`feedback.correction_message` checks the rest)."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"tool calls are not JSON: {exc}") from None


def _fields(message: Message, *, comment: str = "") -> dict[str, str]:
    """The form filled with an answer: its text, and its tool calls as an editable JSON list of
    {"name", "arguments"} (arguments parsed, so they read as JSON, not as a string of it)."""
    calls = [
        {"name": function.get("name"), "arguments": parse_arguments(function.get("arguments") or "{}")}
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict) and isinstance(function := call.get("function") or {}, dict)
    ]
    return {
        "content": message_text(message),
        "tool_calls": json.dumps(calls, indent=2, ensure_ascii=False) if calls else "",
        "comment": comment,
    }
