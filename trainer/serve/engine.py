"""The transformers engine: one model, a bounded queue of requests, and one worker thread that
generates for the requests waiting together as one batch.

    submit() ─► waiting (at most max_queue; more → QueueFull) ─► worker thread: up to max_batch at
    a time, left-padded into one `model.generate` ─► each step's tokens, for the whole batch, go to
    `_Batch` ─► per request: detokenise, cut at stop strings ─► text deltas on the caller's event loop

Batching pays on a CPU: a decoding step reads every weight once whatever the batch, so eight rows
cost little more than one. The batch is static: requests that arrive while it runs wait for the
next one, and a row that is done (its end token, stop string or limit, or its client gone) stops
producing text at once but keeps its slot until the batch ends.

Each request samples on its own (temperature, top_p, seed) inside the shared batch: `generate`
runs greedy, and `_Sampler`, the last logits processor, draws a sampled row's token with the row's
own generator and leaves only that token standing. Before it, `_Guided` holds a row that is writing
a tool call to its tools' grammar (`trainer.serve.guided`). The request alone decides how to sample, as in
OpenAI's API; the model's generation_config.json is not applied.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent_tracer.errors import AgentTracerError, ConfigError
from trainer.serve.guided import CallGuide, Guidance, ToolGrammar

logger = logging.getLogger("trainer.serve")

PROMPT_TAIL = 4
"""Prompt tokens decoded in front of the first generated ones, so a tokenizer that drops a leading
space of the first piece (SentencePiece) decodes the answer as it will read in context."""


class QueueFull(AgentTracerError):
    """Every place in the queue is taken: the client should retry later (503)."""


class GenerationFailed(AgentTracerError):
    """The model failed while generating (out of memory, a broken model); the message says how."""


@dataclass(frozen=True)
class Sampling:
    """How one request wants its answer generated."""

    max_tokens: int
    temperature: float = 1.0
    """0 is greedy."""
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tool_grammar: ToolGrammar | None = None
    """Tool calls held to the request's tools (`Engine.tool_grammar`); None: unguided."""


@dataclass
class Stats:
    """What the engine has done, for /healthz and benchmarks."""

    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    cancelled: int = 0
    rejected: int = 0


class Generation:
    """One request inside the engine, as its caller sees it: iterate for the text deltas; then
    `finish_reason` ("stop" or "length") and `completion_tokens` (every token generated, the end
    token included, as vLLM counts) are set. `cancel()` when the client has gone."""

    def __init__(self, prompt_ids: list[int], sampling: Sampling) -> None:
        self.prompt_ids = prompt_ids
        self.sampling = sampling
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.cancelled = False
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[str | _End] = asyncio.Queue()

    def cancel(self) -> None:
        self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            event = await self._events.get()
            if isinstance(event, str):
                yield event
                continue
            if event.error is not None:
                raise GenerationFailed(event.error)
            self.finish_reason, self.completion_tokens = event.reason, event.tokens
            return

    async def text(self) -> str:
        """The whole answer's text, once it has ended."""
        return "".join([delta async for delta in self])

    def _put(self, event: str | _End) -> None:
        """From the worker thread: hand `event` to the caller's loop (gone: nobody is listening)."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:
            self.cancelled = True


@dataclass(frozen=True)
class _End:
    reason: str | None
    tokens: int
    error: str | None = None


class Engine:
    """A causal LM behind a request queue. Build it with `Engine.load(name)` (what `agent-tracer
    serve` does) or from a model and tokenizer already loaded; `start()` the worker before the
    first `submit()`, `close()` at the end (the server's lifespan does both).

    model, tokenizer: a transformers causal LM (in eval mode, on its device) and its tokenizer,
        whose chat template is the one prompts are rendered with.
    max_batch: the most requests generated together.
    max_queue: the most requests waiting for a batch; one more raises `QueueFull`.
    default_max_tokens: an answer's limit when the request sets none (also capped by the context).
    gather_s: how long an idle worker, given fewer than max_batch requests, waits for more before it
        starts (clients that send together arrive a few milliseconds apart; a batch cannot be
        joined once it runs).
    logits_processors: transformers `LogitsProcessor`s applied to every row before sampling (the
        tests force known answers with one).
    guide_tool_calls: hold tool calls to the request's tools (`trainer.serve.guided`; needs
        llguidance, else the engine runs unguided and says so once).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 8,
        max_queue: int = 64,
        default_max_tokens: int = 1024,
        gather_s: float = 0.02,
        logits_processors: Sequence[Any] = (),
        guide_tool_calls: bool = True,
    ) -> None:
        if max_batch < 1 or max_queue < 0 or default_max_tokens < 1:
            raise ValueError("max_batch and default_max_tokens must be at least 1, max_queue at least 0")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.default_max_tokens = default_max_tokens
        self.gather_s = gather_s
        self.logits_processors = list(logits_processors)
        self.guidance = Guidance.create(tokenizer) if guide_tool_calls else None
        self.stats = Stats()
        self.end_ids = _end_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.end_ids)
        self.context_length = _context_length(model, tokenizer)
        self._neutral_generation_config()
        self.tokenizer_lock = threading.Lock()
        """Held around each use of the tokenizer: the loop encodes prompts while the worker decodes,
        and a Rust tokenizer that resets its padding on encoding refuses to be read meanwhile."""
        self._waiting: deque[Generation] = deque()
        self._running: list[Generation] = []
        self._condition = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None

    @classmethod
    def load(cls, name: str, *, device: str = "auto", **options: Any) -> Engine:
        """The engine for a model name as `trainer.models` understands it (a training run's folder
        has its adapter merged); a model whose own chat template ignores tools gets the built-in
        tool-calling one. `ConfigError` when the model cannot be had."""
        import torch

        from trainer.chat_template import use_tool_template
        from trainer.models import load_model, load_tokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device}: torch sees no GPU here (use cpu)")
        dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        tokenizer = load_tokenizer(name)
        use_tool_template(tokenizer)
        model = load_model(name, dtype=dtype).to(device).eval()
        return cls(model, tokenizer, **options)

    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        """The prompt's token ids: the conversation through the chat template, with the tools, up
        to the assistant's turn. The template's own errors (jinja2's) reach the caller."""
        text = self.tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=True, tokenize=False
        )
        with self.tokenizer_lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def tool_grammar(self, tools: list[dict[str, Any]], required: bool = False) -> ToolGrammar | None:
        """The grammar a request's tool calls are held to (`Sampling.tool_grammar`): None when the
        engine is unguided, there are no tools, or their schemas do not compile (served unguided)."""
        return self.guidance.grammar(tools, required) if self.guidance is not None else None

    def submit(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        """Queue a request (from the event loop that will read its deltas); `QueueFull` when the
        queue has no room."""
        generation = Generation(prompt_ids, sampling)
        with self._condition:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFull(f"all {self.max_queue} places in the queue are taken")
            self._waiting.append(generation)
            self._condition.notify()
        return generation

    def start(self) -> None:
        with self._condition:
            if self._worker is None:
                self._closed = False
                self._worker = threading.Thread(target=self._work, name="serve-generate", daemon=True)
                self._worker.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the worker: the batch in progress is cut short, waiting requests get an error."""
        with self._condition:
            self._closed = True
            for generation in self._running:
                generation.cancel()
            while self._waiting:
                self._waiting.popleft()._put(_End(None, 0, "the server is shutting down"))
            self._condition.notify_all()
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout_s)

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._generate(batch)
            except Exception as exc:  # the requests must hear of it, and the worker must live on
                logger.exception("generation failed for a batch of %d", len(batch))
                first_line = str(exc).strip().splitlines()[:1]
                reason = ": ".join([type(exc).__name__, *first_line])
                for generation in batch:
                    generation._put(_End(None, 0, f"generation failed ({reason})"))
            finally:
                with self._condition:
                    self._running = []

    def _take(self) -> list[Generation] | None:
        """The next batch: every live request waiting, up to max_batch, and those that come within
        `gather_s` of the first (None once closed)."""
        with self._condition:
            deadline = None
            while not self._closed:
                while self._waiting and len(self._running) < self.max_batch:
                    generation = self._waiting.popleft()
                    if generation.cancelled:
                        self.stats.cancelled += 1
                        generation._put(_End(None, 0))
                    else:
                        self._running.append(generation)
                if self._running and deadline is None:
                    deadline = time.monotonic() + self.gather_s
                if len(self._running) == self.max_batch or (deadline is not None and time.monotonic() >= deadline):
                    return list(self._running)
                self._condition.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            for generation in self._running:  # gathered, never started
                generation._put(_End(None, 0, "the server is shutting down"))
            return None

    def _generate(self, batch: list[Generation]) -> None:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        self.stats.batches += 1
        self.stats.rows += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        rows = [_Row(generation, self) for generation in batch]
        width = max(len(generation.prompt_ids) for generation in batch)
        ids = [[self.pad_id] * (width - len(g.prompt_ids)) + g.prompt_ids for g in batch]
        mask = [[0] * (width - len(g.prompt_ids)) + [1] * len(g.prompt_ids) for g in batch]
        device = self.model.device
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(g.sampling.max_tokens for g in batch),
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.end_ids),
        )
        step = _Batch(rows)
        guided = [_Guided(rows)] if any(row.guide for row in rows) else []
        self.model.generate(
            input_ids=torch.tensor(ids, device=device),
            attention_mask=torch.tensor(mask, device=device),
            generation_config=config,
            stopping_criteria=StoppingCriteriaList([step]),
            logits_processor=LogitsProcessorList([*self.logits_processors, *guided, _Sampler(rows)]),
        )
        for row in rows:
            row.finish("length")  # a safety net: each row ends itself, but generate also stops at its max_length

    def _neutral_generation_config(self) -> None:
        """Only the request decides how to sample: keep the model's special token ids, drop its
        defaults (a repetition penalty, a temperature) from generation_config.json."""
        from transformers import GenerationConfig

        old = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            bos_token_id=old.bos_token_id, pad_token_id=self.pad_id, eos_token_id=sorted(self.end_ids)
        )


class _Row:
    """The worker's side of one request in a batch: its decoding state and where its text goes."""

    def __init__(self, generation: Generation, engine: Engine) -> None:
        import torch

        self.generation = generation
        self.stats = engine.stats
        self.end_ids = engine.end_ids
        self.done = False
        self.tokens = 0
        self.text = _Detokenizer(engine.tokenizer, engine.tokenizer_lock, generation.prompt_ids[-PROMPT_TAIL:])
        self.stops = _StopFilter(generation.sampling.stop)
        sampling = generation.sampling
        self.guide = None
        if sampling.tool_grammar is not None and engine.guidance is not None:
            self.guide = CallGuide(engine.guidance, sampling.tool_grammar)
        self.random = None
        if sampling.temperature > 0:
            self.random = torch.Generator(device=engine.model.device)
            self.random.manual_seed(sampling.seed if sampling.seed is not None else random.getrandbits(63))

    def take(self, token: int) -> None:
        """The token generated for this row in the last step."""
        if self.done:
            return
        if self.generation.cancelled:
            self.stats.cancelled += 1
            self.finish(None)
            return
        self.tokens += 1
        if token in self.end_ids:
            self.finish("stop")
            return
        piece = self.text.add(token)
        if self.guide is not None:
            self.guide.advance(token, piece)
        delta, stopped = self.stops.push(piece)
        if delta:
            self.generation._put(delta)
        if stopped:
            self.finish("stop", flush=False)
        elif self.tokens >= self.generation.sampling.max_tokens:
            self.finish("length")

    def finish(self, reason: str | None, flush: bool = True) -> None:
        """End the row, sending what text is left (none to a cancelled one) and the end event,
        which every request gets, so whoever waits on it is released."""
        if self.done:
            return
        self.done = True
        if flush and not self.generation.cancelled:
            delta, stopped = self.stops.push(self.text.flush())
            delta += "" if stopped else self.stops.flush()
            reason = "stop" if stopped else reason
            if delta:
                self.generation._put(delta)
        self.generation._put(_End(reason, self.tokens))


class _Batch:
    """Each step's tokens for the whole batch, and which rows are done. `generate` calls its
    stopping criteria once a step with the ids so far (the newest token last), so this one object
    sees every token as it comes and can end a row on the spot."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        for row, token in zip(self.rows, input_ids[:, -1].tolist()):
            row.take(token)
        return torch.tensor([row.done for row in self.rows], device=input_ids.device)


class _Guided:
    """A logits processor: a row inside a guided tool call keeps only the tokens its grammar allows
    next (llguidance fills a bit per vocabulary entry; logits past the tokenizer's vocabulary, which
    some models pad, are never allowed there)."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for index, row in enumerate(self.rows):
            if row.done or row.guide is None or not row.guide.active:
                continue
            bits = row.guide.allowed()
            allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            width = min(len(bits), scores.shape[-1])
            allowed[:width] = torch.from_numpy(bits[:width].astype(bool)).to(scores.device)
            scores[index].masked_fill_(~allowed, float("-inf"))
        return scores


class _Sampler:
    """The last logits processor: a sampling row's token drawn with the row's temperature, top_p
    and generator, every other token set to -inf so `generate`'s greedy pick takes it."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for index, row in enumerate(self.rows):
            if row.random is None or row.done:
                continue
            sampling = row.generation.sampling
            probs = torch.softmax(scores[index] / sampling.temperature, dim=-1)
            if sampling.top_p < 1.0:
                ordered, order = torch.sort(probs, descending=True)
                outside = ordered.cumsum(-1) - ordered >= sampling.top_p  # the first token always stays
                probs[order[outside]] = 0.0
            token = torch.multinomial(probs, 1, generator=row.random)
            scores[index] = float("-inf")
            scores[index, token] = 0.0
        return scores


class _Detokenizer:
    """Text from token ids one at a time, a piece only once it is whole: a character split over
    two tokens waits for its second half (after text-generation-inference's incremental decoding)."""

    def __init__(self, tokenizer: Any, lock: threading.Lock, prompt_tail: list[int]) -> None:
        self.tokenizer = tokenizer
        self.lock = lock
        self.ids = list(prompt_tail)
        self.prefix = 0
        self.read = len(self.ids)

    def add(self, token: int) -> str:
        self.ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def _decode(self, ids: list[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)


class _StopFilter:
    """Cuts the text at the first stop string; holds back an ending that may begin one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.held = ""

    def push(self, text: str) -> tuple[str, bool]:
        """(the text that may go out now, whether a stop string was met)."""
        buffer = self.held + text
        found = [buffer.find(stop) for stop in self.stops if stop in buffer]
        if found:
            self.held = ""
            return buffer[: min(found)], True
        keep = max((n for stop in self.stops for n in range(1, len(stop)) if buffer.endswith(stop[:n])), default=0)
        self.held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def _end_ids(model: Any, tokenizer: Any) -> set[int]:
    """Tokens that end the assistant's turn: the tokenizer's and the model's end-of-sequence
    tokens, and ChatML's `<|im_end|>` where the vocabulary has it (the built-in template's)."""
    ids = {tokenizer.eos_token_id}
    configured = model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, list) else [configured])
    im_end = tokenizer.get_vocab().get("<|im_end|>")
    ids.add(im_end)
    return {i for i in ids if i is not None}


def _context_length(model: Any, tokenizer: Any) -> int:
    """The most tokens prompt and answer may take together: the model's positions, or the
    tokenizer's limit where that is smaller (tokenizers without one say 1e30)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    known = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 10**7]
    return min(known) if known else 2048
