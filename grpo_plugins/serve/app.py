"""The ASGI app: admission control (bounded concurrency + bounded queue), size limits, bearer token,
and the routes of every protocol, all over one RewardHost."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hmac
import json
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import SettingError
from ..host import RewardError, RewardHost, RewardTimeout
from ..io import dumps
from ..manager import PluginManager
from ..rewards import sample_from_record
from . import protocols as p
from .config import ServeConfig
from .observe import Metrics, Observe, log_rows, note_error
from .rows import RowScorer


class Busy(Exception):
    """Every scoring slot and queue place is taken: answer 503 with Retry-After."""


class Admission:
    """At most ``concurrency`` batches scoring and ``queue`` waiting; the rest are turned away at once."""

    def __init__(self, concurrency: int, queue: int):
        self.concurrency, self.queue = concurrency, queue
        self.active = 0  # holding a slot (their thread may outlive a timed-out request)
        self.waiting = 0
        self._slots = asyncio.Semaphore(concurrency)
        self.pool = cf.ThreadPoolExecutor(concurrency, thread_name_prefix="score")

    async def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        """Run ``fn`` in a scoring thread once a slot is free; raise Busy or asyncio.TimeoutError."""
        if self.active + self.waiting >= self.concurrency + self.queue:
            raise Busy()
        self.waiting += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        finally:
            self.waiting -= 1
        self.active += 1
        fut = loop.run_in_executor(self.pool, fn)

        def release(_):
            # the slot frees when the work really ends, not when a timed-out request gives up on it
            self.active -= 1
            self._slots.release()

        fut.add_done_callback(release)
        return await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - loop.time()))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    try:  # the fast path; io.dumps (NaN/inf -> null, so always valid JSON) only when it is needed
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError):
        text = dumps(body)
    return Response(text, status_code=status, media_type="application/json", headers=headers)


async def _read_json(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise p.BadRequest(f"request body of {int(length)} bytes is over this server's {limit} (serve.max_body_mb)",
                           status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise p.BadRequest(f"request body is over this server's {limit} bytes (serve.max_body_mb)", status=413)
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise p.BadRequest(f"request body is not UTF-8 JSON (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise p.BadRequest(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def create_app(cfg: ServeConfig, manager: PluginManager | None = None, token: str | None = None,
               host: RewardHost | None = None) -> FastAPI:
    """The server app over a new RewardHost built from ``cfg`` (closed when the app shuts down)."""
    opts = cfg.serve
    host = host or RewardHost(cfg.rewards, manager=manager)
    needed = p.needed_columns(host)
    limit = int(opts.max_body_mb * 1024 * 1024)
    eos = opts.strip_tokens()  # loads serve.tokenizer once, before the first request
    pay_host = _pay_host(host, opts.pay_without_label)
    rows_scorer = RowScorer(host, opts.label_column, opts.pay_without_label, needed, pay_host)
    admission: Admission | None = None
    secret = token.encode() if token else None

    @asynccontextmanager
    async def lifespan(app):
        nonlocal admission
        admission = Admission(opts.max_concurrency, opts.max_queue)
        try:
            yield
        finally:
            admission.pool.shutdown(wait=True)
            host.close()
            if pay_host is not None:
                pay_host.close()

    app = FastAPI(title="grpo-plugins reward server", lifespan=lifespan, docs_url=None, redoc_url=None)
    metrics = Metrics()
    app.add_middleware(Observe, metrics=metrics)

    def fail(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        """A 4xx/5xx answer whose message the middleware logs with the request id."""
        note_error(request.scope, body)
        return _json(status, body, headers)

    def denied(request: Request) -> Response | None:
        """401 unless the request carries the bearer token (checked in every route but /health)."""
        if secret is None:
            return None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        # compare_digest takes the same time wherever the first difference is
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), secret):
            return None
        return fail(request, 401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})

    async def handle(request: Request, to_rows, respond, peer: bool = False,
                     gold_field: str | None = None) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        try:
            body = await _read_json(request, limit)
            rows = to_rows(body)
            if peer:  # a peer without labels sends rows without gold: the no-gold rule answers them
                for r in rows:
                    r.setdefault(opts.label_column, None)
            p.check_columns(rows, needed)
            samples = [sample_from_record(r) for r in rows]
        except p.BadRequest as exc:
            return fail(request, exc.status, exc.body())
        try:
            scores, statuses = await admission.run(lambda: rows_scorer.score(samples, rows, peer, gold_field),
                                                   opts.request_timeout)
        except Busy:
            return fail(request, 503, {"error": f"server busy: {admission.active} scoring, {admission.waiting} queued; "
                                        f"retry after {opts.retry_after}s"},
                         {"Retry-After": str(opts.retry_after)})
        except asyncio.TimeoutError:
            return fail(request, 504, {"error": f"request not scored within {opts.request_timeout}s (serve.request_timeout)"})
        except RewardTimeout as exc:
            return fail(request, 504, _reward_error(exc))
        except RewardError as exc:
            # the reward's on_error is raise: the request fails, naming the reward and the row
            return fail(request, 422, _reward_error(exc))
        log_rows(request.scope["state"]["request_id"], request.url.path, statuses, metrics)
        return _json(200, respond(scores, len(samples), statuses))

    @app.post("/score")
    async def score(request: Request):
        return await handle(request, lambda b: p.rows_from_score_request(b, opts.max_rows), p.score_response)

    @app.post("/get_reward")
    async def get_reward(request: Request):
        return await handle(request, lambda b: p.rows_from_openrlhf(b, opts.max_rows, opts.label_column, eos),
                            lambda s, n, st: p.openrlhf_response(s, n, opts.none_reward, st), peer=True,
                            gold_field="labels")

    @app.post("/slime")
    async def slime(request: Request):
        return await handle(request, lambda b: p.row_from_slime(b, opts.label_column, eos),
                            lambda s, n, st: p.slime_response(s, opts.none_reward, st), peer=True,
                            gold_field="label")

    @app.get("/health")
    async def health():
        return _json(200, {"status": "ok", "scoring": admission.active, "queued": admission.waiting,
                           "max_concurrency": opts.max_concurrency, "max_queue": opts.max_queue})

    @app.get("/metrics")
    async def prometheus():
        # no token, as /health: counts only, and a scraper need not hold the scoring secret
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/rewards")
    async def rewards(request: Request):
        if (refused := denied(request)) is not None:
            return refused
        out = []
        for c in host.configs:
            out.append({"label": c.label, "name": c.name, "plugin": host.entries[c.label].plugin,
                        "granularity": host.granularity(c.label), "weight": c.weight, "on_error": c.on_error,
                        "timeout": c.timeout, "columns": needed[c.label],
                        "options": host.rewards[c.label].options.model_dump(mode="json")})
        return _json(200, {"rewards": out, "label_column": opts.label_column, "eos_tokens": list(eos)})

    app.state.host = host
    app.state.metrics = metrics
    return app


def _pay_host(host: RewardHost, labels: list[str]) -> RewardHost | None:
    """A host of the rewards that score rows without a gold answer (serve.pay_without_label); None if none."""
    if not labels:
        return None
    known = [c.label for c in host.configs]
    unknown = [x for x in labels if x not in known]
    if unknown:
        raise SettingError("serve.pay_without_label", f"no configured reward labelled {', '.join(map(repr, unknown))}",
                           f"configured: {', '.join(known)}")
    return RewardHost([c for c in host.configs if c.label in labels], manager=host.manager)


def _reward_error(exc: RewardError) -> dict[str, Any]:
    out = {"error": str(exc), "reward": exc.label, "plugin": exc.plugin}
    if exc.index is not None:
        out["row"] = exc.index
    return out
