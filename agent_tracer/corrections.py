"""Corrections: the answer a run should have given, kept as feedback (`Feedback.correction`), which
`agent-tracer dataset dpo` turns into a preference pair: the conversation the run's last model call
was sent is the prompt, what it answered is rejected, the correction is chosen.

What a run answered is found here once, for the run page and `traces correct`, by the rule the
datasets follow (`trainer.data`: a run's final conversation): the last model call of the run that
ended "ok" with an answer. A correction may be taken from another run of the same task (the same
text from the user), a successful one: its answer *at the same point*, the assistant turn whose
place among its turns is the corrected answer's (a run that looked the order up before answering
gives the lookup, not the answer the lookup's result made possible).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_tracer.conversations import call_conversation
from agent_tracer.feedback import correction_message
from agent_tracer.messages import Message, message_text, user_text

if TYPE_CHECKING:
    from agent_tracer.store import TraceDetail, TraceStore

SEARCH_WORDS = 12
"""Words of the task the search for other runs of it looks for (each run found is compared whole)."""


@dataclass
class RunAnswer:
    """A run's last answer: the conversation its last answered model call was sent, and the answer."""

    trace_id: str
    prompt: list[Message]
    answer: Message
    tools: list[dict[str, Any]] = field(default_factory=list)
    call_id: str | None = None

    @property
    def task(self) -> str:
        """What the user asked (`messages.user_text`): what two runs of the same task share."""
        return user_text(self.prompt)

    def answer_at(self, other: RunAnswer) -> Message:
        """This run's assistant turn at the point where `other` answered: the turn with as many
        assistant turns before it as `other`'s prompt holds (this run's last, if it has fewer)."""
        place = sum(1 for message in other.prompt if message.get("role") == "assistant")
        turns = [message for message in [*self.prompt, self.answer] if message.get("role") == "assistant"]
        return turns[min(place, len(turns) - 1)]


def last_answer(trace_id: str, calls: Iterable[Any]) -> RunAnswer | None:
    """The run's last answer from its model calls (oldest first; store rows as dicts or `LLMCall`s
    read whole), or None when no call ended "ok" with an answer."""
    for call in reversed(list(calls)):
        row = call if isinstance(call, dict) else {name: getattr(call, name) for name in _CALL_FIELDS}
        if row["status"] != "ok":
            continue
        conversation = call_conversation(row["id"], trace_id, row["request"], row["response"])
        if conversation is not None:
            *prompt, answer = conversation.messages
            return RunAnswer(trace_id, prompt, answer, conversation.tools, row["id"])
    return None


_CALL_FIELDS = ("id", "status", "request", "response")


def final_answer(store: TraceStore, detail: TraceDetail) -> RunAnswer | None:
    """The last answer of a run read by `store.get_trace` (its light calls are read whole one at a
    time from the last, usually one: a long run's bodies are not all read)."""
    import sqlalchemy as sa

    for call in reversed([call for call in detail.calls if call.status == "ok"]):
        if "request" in sa.inspect(call).unloaded:  # a light call: read it whole
            store.fill_calls(detail, {call.id})
            call = next(item for item in detail.calls if item.id == call.id)
        found = last_answer(detail.trace.id, [call])
        if found is not None:
            return found
    return None


def same_task_runs(
    store: TraceStore, run: RunAnswer, *, outcome: str = "success", limit: int = 10, scan: int = 50
) -> list[RunAnswer]:
    """Other runs with this outcome whose user asked what `run`'s user asked (the same text),
    newest first, at most `limit`, found among the `scan` newest such runs whose calls hold the
    task's first words (the full-text search)."""
    from agent_tracer.store.search import search_words

    task = run.task
    words = search_words(task)[:SEARCH_WORDS]
    if not words:
        return []
    found: list[RunAnswer] = []
    columns = ("trace_id", *_CALL_FIELDS)
    for other in store.iter_runs(outcome=outcome, text=" ".join(words), limit=scan, call_columns=columns):
        if other.trace["id"] == run.trace_id:
            continue
        answer = last_answer(other.trace["id"], other.calls)
        if answer is not None and answer.task == task:
            found.append(answer)
            if len(found) >= limit:
                break
    return found


def as_correction(message: Message) -> Message:
    """A recorded assistant message as a correction (its text and tool calls); `ConfigError` when
    it cannot be one (no text nor calls, arguments that are not a JSON object)."""
    return correction_message(
        {"content": message_text(message) or None, "tool_calls": message.get("tool_calls") or None}
    )
