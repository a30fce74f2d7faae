"""The UI's Starlette app: routes, the store it reads, and the guard on its doors.

The store is opened when the app is made and closed at shutdown; its calls run in Starlette's
thread pool. While the app runs, a task keeps SQLite's search index caught up (`catchup.py`).
Errors become a page with one line and the right status (400 for a bad value, 404 for an unknown
run, 403 for a write in read-only mode, 500 otherwise), never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent_tracer.config import TracerConfig
from agent_tracer.errors import AgentTracerError, ConfigError, TraceNotFound
from agent_tracer.otlp.receiver import Receiver
from agent_tracer.prices import DEFAULT_PRICES, Prices, load_prices
from agent_tracer.store import LLMCall, TraceDetail, TraceStore
from agent_tracer.ui import costs, pairs, views
from agent_tracer.ui.catchup import index_while_idle
from agent_tracer.ui.datasets import DatasetsPage
from agent_tracer.ui.evals import Evaluations
from agent_tracer.ui.filters import FilterError, cursor, parse_filters
from agent_tracer.ui.forms import READ_ONLY, form_fields, form_lists
from agent_tracer.ui.overview import Overview
from agent_tracer.ui.queue import ReviewQueue
from agent_tracer.ui.replay import Replay, Replayed, ReplayTargets
from agent_tracer.ui.security import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, Guard

logger = logging.getLogger("agent_tracer.ui")

HERE = Path(__file__).parent
OTLP_PATH = "/v1/traces"
"""OTLP/HTTP trace exports (`agent_tracer.otlp`): the UI takes them as `agent-tracer collect` does."""
OTLP_LOGS_PATH = "/v1/logs"
"""OTLP/HTTP log exports: the GenAI message events of those spans."""
OUTCOMES = ("success", "failure", "partial")
"""Offered in the review form (any other text may be typed, as `traces rate` takes it)."""


class UI:
    """The pages, over one store."""

    def __init__(self, store: TraceStore, *, read_only: bool, guard: Guard, prices: Prices = DEFAULT_PRICES) -> None:
        self.store = store
        self.read_only = read_only
        self.guard = guard
        self.prices = prices
        """What tokens cost, by model (`agent_tracer.prices`)."""
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
        self.templates.env.globals.update(
            ms=views.ms, count=views.count, number=views.number, when=views.when, usd=costs.usd
        )
        self.replay: Replay | None = None
        """The run page's replay (`ui/replay.py`), set by `create_app`."""

    # -- rendering -------------------------------------------------------------------------------

    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        """A page, with the browser's session cookie (made here when it has none) and its CSRF token."""
        session = request.cookies.get(SESSION_COOKIE)
        fresh = session is None
        if session is None:
            session = Guard.new_session()
        context = {
            "read_only": self.read_only,
            "requires_key": self.guard.requires_key,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.guard.csrf_token(session),
            **context,
        }
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        if fresh:
            _set_cookie(request, response, SESSION_COOKIE, session)
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", {"status": status, "message": message}, status)

    # -- pages -----------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        try:
            filters = parse_filters(request.query_params)
            found = await run_in_threadpool(
                self.store.traces, **filters.store, after=filters.after, limit=filters.limit + 1
            )
        except (FilterError, ConfigError) as exc:
            return self.render(request, "runs.html", {"error": str(exc), "filters": None, "rows": []}, 400)
        more = len(found) > filters.limit
        found = found[: filters.limit]
        ids = [trace.id for trace in found]
        summaries = await run_in_threadpool(self.store.trace_summaries, ids)
        routes = await run_in_threadpool(self.store.trace_routes, ids)
        usage = await run_in_threadpool(self.store.tokens_by_model, ids)  # cost: one grouped query
        empty = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0}
        rows = [
            {
                "trace": trace,
                "summary": summaries.get(trace.id, empty),
                "routes": routes.get(trace.id, []),
                "cost": costs.total_cost(usage.get(trace.id, []), self.prices),
            }
            for trace in found
        ]
        next_query = filters.query(after=cursor(found[-1].started_at, found[-1].id)) if more and found else None
        context = {
            "filters": filters,
            "rows": rows,
            "next_query": next_query,
            "first_query": filters.query(after=None) if filters.after else None,
            "outcomes": OUTCOMES,
            "notice": _reviewed_notice(request.query_params.get("reviewed", "")),
            "review_query": filters.query(after=None),
        }
        return self.render(request, "runs.html", context)

    async def run(
        self,
        request: Request,
        message: str | None = None,
        status: int = 200,
        replayed: Replayed | None = None,
        pair_form: dict[str, str] | None = None,
    ) -> Response:
        trace_id = request.path_params["trace_id"]
        try:
            page: int | None = int(request.query_params.get("page") or 1)
        except ValueError:
            page = None

        def load() -> TraceDetail:
            """The run with only the shown page's model calls read whole (a long run's bodies are
            most of its bytes), the others light: enough for the waterfall and the paging."""
            detail = self.store.get_trace(trace_id, full_calls=())
            self.store.fill_calls(detail, views.page_call_ids(detail, page or 1))
            return detail

        try:
            detail = await run_in_threadpool(load)
        except TraceNotFound as exc:
            return self.error(request, 404, f"Unknown run: {exc}")
        if page is None:
            return self.error(request, 400, f"page must be a whole number, not {request.query_params['page']!r}")
        shown = views.run_page(detail, page)
        call_costs = {call.id: costs.call_cost(call, self.prices) for call in detail.calls}
        context = {
            "call_costs": call_costs,
            "run_cost": costs.sum_costs(call_costs.values()),
            "detail": detail,
            "trace": detail.trace,
            "nodes": shown.nodes,
            "paging": shown,
            "timing": views.waterfall(detail, (shown.first_call, shown.last_call) if shown.pages > 1 else None),
            "outcomes": OUTCOMES,
            "message": message,
            "replay": self.replay.view(replayed) if self.replay is not None else None,
            **await pairs.context(self, request, detail, pair_form),  # "Make a DPO pair" (pairs.py)
        }
        return self.render(request, "run.html", context, status)

    async def call_bodies(self, request: Request) -> Response:
        """One model call's request and response bodies: their own page in a paged run."""
        trace_id, call_id = request.path_params["trace_id"], request.path_params["call_id"]

        def load() -> LLMCall | None:
            with Session(self.store.engine) as session:
                call = session.get(LLMCall, call_id)
                return call if call is not None and call.trace_id == trace_id else None

        call = await run_in_threadpool(load)
        if call is None:
            return self.error(request, 404, f"Unknown model call: {call_id!r} in run {trace_id!r}")
        context = {"trace_id": trace_id, "call": call, "bodies": views.call_bodies(call)}
        return self.render(request, "call.html", context)

    async def review(self, request: Request) -> Response:
        """The review form's POST: feedback as `traces rate` writes it, then back to the run."""
        if self.read_only:
            return self.error(request, 403, READ_ONLY)
        form = await form_fields(request)
        trace_id = request.path_params["trace_id"]
        try:
            detail = await run_in_threadpool(self.store.get_trace, trace_id)
        except TraceNotFound as exc:
            return self.error(request, 404, f"Unknown run: {exc}")
        try:
            await self.save_review([detail.trace.id], form)
        except ConfigError as exc:
            return await self.run(request, message=f"Not saved: {exc}", status=400)
        url = request.url_for("run", trace_id=detail.trace.id)
        return RedirectResponse(f"{url}#review", status_code=303)

    async def save_review(self, trace_ids: list[str], form: dict[str, str]) -> None:
        """A review form's outcome, rating, comment, label and tags for each run: a feedback row
        as `traces rate` writes it (source "ui") and the tags merged into the trace's. Nothing is
        written when a value is refused (`ConfigError`, as when the form gives nothing)."""
        fields = {key: form.get(key, "").strip() for key in ("outcome", "rating", "comment", "label", "tags")}
        tags = [tag.strip() for tag in fields["tags"].split(",") if tag.strip()]
        feedback = {
            "outcome": fields["outcome"] or None,
            "rating": _rating(fields["rating"]),
            "comment": fields["comment"] or None,
            "label": fields["label"] or None,
        }
        if not tags and all(value is None for value in feedback.values()):
            raise ConfigError("give at least one of outcome, rating, comment, label, tags")

        def write() -> None:
            if any(value is not None for value in feedback.values()):
                for trace_id in trace_ids:  # the first refuses a bad value before anything is written
                    self.store.record_feedback(trace_id, **feedback, source="ui")  # type: ignore[arg-type]
            if tags:
                self.store.write([("trace", {"id": trace_id, "tags": tags}) for trace_id in trace_ids])

        await run_in_threadpool(write)

    async def bulk_review(self, request: Request) -> Response:
        """The runs page's bulk form: the same review for every selected run, then back to the
        same filtered page with a notice (POST, redirect, GET)."""
        if self.read_only:
            return self.error(request, 403, READ_ONLY)
        lists = await form_lists(request)
        form = {key: values[0] for key, values in lists.items()}
        trace_ids = list(dict.fromkeys(value.strip().lower() for value in lists.get("run", []) if value.strip()))
        try:
            back = parse_filters(dict(parse_qsl(form.get("back", ""))))
        except FilterError as exc:
            return self.error(request, 400, f"Not saved: {exc}")
        if not trace_ids:
            return self.error(request, 400, "Not saved: select at least one run.")
        known = await run_in_threadpool(self.store.known_traces, trace_ids)
        unknown = [trace_id for trace_id in trace_ids if trace_id not in known]
        if unknown:
            return self.error(request, 400, f"Not saved: unknown runs: {', '.join(unknown[:5])}")
        try:
            await self.save_review(trace_ids, form)
        except ConfigError as exc:
            return self.error(request, 400, f"Not saved: {exc}")
        query = back.query(reviewed=str(len(trace_ids)))
        return RedirectResponse(f"{request.url_for('runs')}?{query}", status_code=303)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html", {"failed": False})
        form = await form_fields(request)
        value = self.guard.login_cookie(form.get("key", ""))
        if value is None:
            return self.render(request, "login.html", {"failed": True}, 401)
        response = RedirectResponse(str(request.url_for("runs")), status_code=303)
        _set_cookie(request, response, LOGIN_COOKIE, value)
        return response

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def create_app(
    db_url: str | None,
    *,
    read_only: bool = False,
    keys: Iterable[str] | None = None,
    root_path: str = "",
    create: bool = False,
    datasets_dir: str | Path | None = None,
    reports: Iterable[str | Path] = (),
    replay: ReplayTargets | None = None,
    prices: str | Path | None = None,
) -> Starlette:
    """The UI over the store at `db_url` (an existing one: `StoreError` if an SQLite file is
    missing, unless `create`, as the proxy that records into it does). `keys`: the client keys
    that may use it (None: anyone who can reach it, which the command allows on loopback only);
    `root_path`: where it is mounted, e.g. "/agent-tracer/ui"; `datasets_dir`: where the datasets
    page builds datasets (None: the page shows the command only); `reports`: folders of evaluation
    reports (see `agent_tracer.ui.evals`); `replay`: the endpoints the run page may replay its
    model calls on (see `agent_tracer.ui.replay`); `prices`: a price file over the default table
    (`agent_tracer.prices`; `ConfigError` naming it when it cannot be used)."""
    table = load_prices(prices)
    store = TraceStore(db_url, create=create)
    ui = UI(store, read_only=read_only, guard=Guard(keys), prices=table)
    queue = ReviewQueue(ui)
    datasets = DatasetsPage(ui, Path(datasets_dir) if datasets_dir is not None else None)
    overview = Overview(ui)
    evals = Evaluations(ui, reports)
    ui.replay = replayer = Replay(ui, replay)
    receiver = Receiver(TracerConfig(db=store.url))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        catching_up = asyncio.create_task(index_while_idle(store))
        try:
            yield
        finally:
            catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catching_up  # a batch under way ends first: its thread is not interrupted
            await replayer.close()
            receiver.close()
            store.close()

    routes = [
        Route("/", ui.runs, name="runs"),
        Route("/runs/{trace_id}", ui.run, name="run"),
        Route("/runs/{trace_id}/review", ui.review, methods=["POST"], name="review"),
        Route("/runs/{trace_id}/replay", replayer.post, methods=["POST"], name="replay"),
        Route("/runs/{trace_id}/pair", pairs.Pairs(ui).save, methods=["POST"], name="make_pair"),
        Route("/bulk-review", ui.bulk_review, methods=["POST"], name="bulk_review"),
        Route("/review", queue.page, name="queue"),
        Route("/review/{trace_id}", queue.review, methods=["POST"], name="queue_review"),
        Route("/runs/{trace_id}/calls/{call_id}", ui.call_bodies, name="call_bodies"),
        Route("/datasets", datasets.page, name="datasets"),
        Route("/datasets", datasets.build, methods=["POST"], name="build_dataset"),
        Route("/datasets/{build_id}", datasets.show, name="dataset"),
        Route("/datasets/{build_id}/files/{name}", datasets.download, name="dataset_file"),
        Route("/overview", overview.page, name="overview"),
        Route("/evals", evals.list, name="evals"),
        Route("/evals/{report}", evals.report, name="eval_report"),
        Route("/evals/{report}/cases/{case_id:path}", evals.case, name="eval_case"),
        Route("/evals/{report}/files/{name}", evals.file, name="eval_file"),
        Route("/login", ui.login, methods=["GET", "POST"], name="login"),
        Route("/healthz", ui.healthz, name="healthz"),
        Route(OTLP_PATH, receiver.endpoint, methods=["POST"], name="otlp_traces"),
        Route(OTLP_LOGS_PATH, receiver.logs_endpoint, methods=["POST"], name="otlp_logs"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def server_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, SQLAlchemyError):
            text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            message = f"Database error: {text[0] if text else type(exc).__name__}"
        elif isinstance(exc, AgentTracerError):
            message = str(exc)
        else:
            message = "Internal error; the server's log has the details."
        logger.exception("UI request %s %s failed", request.method, request.url.path, exc_info=exc)
        return ui.error(request, 500, message)

    inner = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(_GuardMiddleware, ui=ui)],
        exception_handlers={Exception: server_error},
    )
    if not root_path.strip("/"):
        return inner
    return Starlette(routes=[Mount("/" + root_path.strip("/"), app=inner)], lifespan=lifespan)


class _GuardMiddleware:
    """Keys (when required) on every page but login, health and the stylesheet; a CSRF token and
    a same-origin Origin on every POST. OTLP exports (`/v1/traces`, `/v1/logs`) are no form: they need the key
    as a bearer token when keys are required, are refused in read-only mode, and their body is
    left to the receiver (which reads it with its size limit); no CSRF token, since a browser
    can only send their content types across sites after a CORS preflight, which is never
    answered."""

    OPEN = ("/login", "/healthz", "/static/")

    def __init__(self, app: Any, ui: UI) -> None:
        self.app = app
        self.ui = ui

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        guard = self.ui.guard
        if path in (OTLP_PATH, OTLP_LOGS_PATH):
            await self._otlp(scope, receive, send, request)
            return
        if not path.startswith(self.OPEN) and not guard.allows(request.headers, request.cookies):
            response = self.ui.render(request, "login.html", {"failed": False}, 401)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            body = await request.body()
            refusal = await self._refusal(Request(scope, _replay(body)))
            if refusal is not None:
                await self.ui.error(request, 403, refusal)(scope, receive, send)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)

    async def _otlp(self, scope: Any, receive: Any, send: Any, request: Request) -> None:
        if self.ui.guard.requires_key and not self.ui.guard.allows(request.headers, {}):
            refusal: Response = PlainTextResponse("a client key is required", 401, {"www-authenticate": "Bearer"})
        elif self.ui.read_only:
            refusal = PlainTextResponse("read-only: this UI stores no traces", 403)
        else:
            await self.app(scope, receive, send)
            return
        await refusal(scope, receive, send)

    async def _refusal(self, request: Request) -> str | None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
            return f"Refused: a form sent from another site ({origin})."
        if origin == "null":
            return "Refused: a form sent from an opaque origin."
        form = await form_fields(request)
        if not self.ui.guard.csrf_ok(request.cookies.get(SESSION_COOKIE), form.get(CSRF_FIELD)):
            return "Refused: the form's security token is missing or stale. Reload the page and send it again."
        return None


def _replay(body: bytes) -> Any:
    """An ASGI `receive` that hands the already-read body to the app once more."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _reviewed_notice(text: str) -> str | None:
    """The runs page's line after a bulk review (`?reviewed=N`)."""
    if not text.isdigit():
        return None
    return f"Rated {int(text)} run{'' if int(text) == 1 else 's'}."


def _rating(text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"rating must be a number from 1 to 5, not {text!r}") from None


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    root = request.scope.get("root_path") or "/"
    response.set_cookie(name, value, httponly=True, samesite="strict", path=root, secure=request.url.scheme == "https")
