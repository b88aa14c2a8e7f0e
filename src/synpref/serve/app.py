"""The FastAPI app: endpoints, auth, limits, metrics, graceful drain.

Endpoints (all POST bodies are JSON objects sent as ``application/json``; errors are
``{"error": {"field", "message", "status"}}``):

* ``POST /v1/score``: ``{"conversations": [[{role, content}, ...], ...], "normalize"?}``
  -> ``{"rewards": [...]}``; each conversation ends with the scored assistant turn.
* ``POST /v1/compare``: ``{"prompt", "a", "b"}`` -> rewards of both and
  ``prob_a_beats_b = sigmoid(reward_a - reward_b)`` (Bradley-Terry, on raw rewards).
* ``POST /v1/best-of-n``: ``{"prompt", "candidates": [...]}`` -> rewards, ranking
  (indices, best first) and ``best``.
* ``POST /get_reward`` (OpenRLHF): ``{"query": [...], "prompts"?: [...]}`` or
  ``{"messages": [[...], ...]}`` -> ``{"rewards": [...], "scores": [...]}``.
* ``GET /health``, ``GET /metrics`` (Prometheus text).

A prompt is a user string or a list of messages; a candidate is an assistant
string or a list of messages ending with an assistant turn. Rewards of items the
checkpoint's length policy drops are ``null``.

The event loop only moves bytes: parsing, tokenization and the model run in
threads, so ``/health`` and ``/metrics`` answer while a large request is worked
on. A body over ``max_body_bytes`` is refused while it streams in
(``synpref.http_limits``). An unexpected error is a 500 in the same JSON shape,
logged with its traceback, and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import math
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..http_limits import BodyLimitMiddleware, BodyTooLarge
from ..numeric import sigmoid
from ..scoring import choose, rank_indices
from . import payloads as p
from .batcher import BatcherClosed, MicroBatcher
from .config import ServeConfig
from .metrics import Metrics
from .rendered import RenderedTextError, query_to_conversation

log = logging.getLogger(__name__)
_OPEN_PATHS = ("/health",)
_ROUTES = ("/v1/score", "/v1/compare", "/v1/best-of-n", "/get_reward", "/health", "/metrics")


class RewardService:
    """What the endpoints share: the model, the batcher, settings and counters."""

    def __init__(self, rm, config: ServeConfig):
        self.rm = rm
        self.config = config
        self.metrics = Metrics()
        self.batcher = MicroBatcher(
            rm,
            batching=config.batching,
            max_batch_tokens=config.max_batch_tokens,
            max_wait_ms=config.max_wait_ms,
            precision=config.precision,
            metrics=self.metrics,
        )
        self.metrics.queue_depth = self.batcher.queue_depth
        self.draining = False
        mean, std = rm.meta.get("reward_mean"), rm.meta.get("reward_std")
        self.norm = (float(mean), float(std)) if mean is not None and std else None
        if config.normalize and self.norm is None:
            raise ValueError("--normalize needs reward_mean/reward_std saved with the checkpoint; this one has none")

    async def json_body(self, request: Request) -> dict:
        """The request's JSON object; the size limit is enforced while reading, parsing runs off the event loop."""
        p.check_content_type(request.headers.get("content-type"))
        return await asyncio.to_thread(p.parse_body, await request.body())

    async def rewards(self, conversations, names, normalize: bool) -> list[float]:
        _request_items.get([0])[0] += len(conversations)  # for the access log line
        encoded = await asyncio.to_thread(p.encode_all, self.rm, conversations, names, self.config)
        raw = await self.batcher.score(encoded)
        return self.normalized(raw) if normalize else raw

    def normalized(self, rewards: list[float]) -> list[float]:
        if self.norm is None:
            raise p.PayloadError("normalize", "this checkpoint has no reward mean/std saved; send normalize=false")
        mean, std = self.norm
        return [(r - mean) / std for r in rewards]

    def check_normalize(self, normalize: bool) -> None:
        if normalize and self.norm is None:
            raise p.PayloadError("normalize", "this checkpoint has no reward mean/std saved; send normalize=false")


def _json_number(x: float):
    return None if math.isnan(x) else x


def create_app(rm, config: ServeConfig | None = None) -> FastAPI:
    config = config if config is not None else ServeConfig()
    service = RewardService(rm, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        yield
        # uvicorn has stopped accepting and waited for in-flight requests; score
        # whatever is still queued, then stop the scoring thread.
        service.draining = True
        await asyncio.to_thread(service.batcher.close)

    app = FastAPI(title="synpref reward server", lifespan=lifespan)
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes, refuse=lambda status, message: _error(p.PayloadError(None, message, status)))
    app.add_middleware(GuardMiddleware, service=service)  # auth first; sees every status, 500s included
    if config.access_log:  # added last: outermost, so it also logs what the guard refuses
        app.add_middleware(AccessLogMiddleware)

    @app.exception_handler(p.PayloadError)
    async def payload_error(request: Request, exc: p.PayloadError):
        return _error(exc)

    @app.exception_handler(BatcherClosed)
    async def closed_error(request: Request, exc: BatcherClosed):
        return _error(p.PayloadError(None, str(exc), 503))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge):
        return _error(p.PayloadError(None, f"{exc.detail}; send fewer or shorter items per request", 413))

    @app.get("/health")
    async def health():
        return {
            "status": "draining" if service.draining else "ok",
            "model": config.model_name,
            "batching": config.batching,
            "normalization_available": service.norm is not None,
            "max_length": rm.policy.max_length,
            "length_policy": rm.policy.length_policy,
        }

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/score")
    async def score(request: Request):
        body = await service.json_body(request)
        normalize = p.normalize_flag(body, config)
        service.check_normalize(normalize)
        items = p.item_list(body, "conversations", config)
        names = [f"conversations[{i}]" for i in range(len(items))]
        convs = [p.conversation(c, n) for c, n in zip(items, names)]
        rewards = await service.rewards(convs, names, normalize)
        return {"model": config.model_name, "normalized": normalize, "rewards": [_json_number(r) for r in rewards]}

    @app.post("/v1/compare")
    async def compare(request: Request):
        body = await service.json_body(request)
        normalize = p.normalize_flag(body, config)
        service.check_normalize(normalize)
        context = p.prompt(p.field(body, "prompt", (str, list)), "prompt")
        a = p.candidate(p.field(body, "a", (str, list)), "a")
        b = p.candidate(p.field(body, "b", (str, list)), "b")
        raw_a, raw_b = await service.rewards([context + a, context + b], ["a", "b"], normalize=False)
        if math.isnan(raw_a) or math.isnan(raw_b):
            prob = None
        else:  # Bradley-Terry on raw rewards: the scale the model was trained on
            prob = sigmoid(raw_a - raw_b)
        shown = service.normalized([raw_a, raw_b]) if normalize else [raw_a, raw_b]
        return {
            "model": config.model_name,
            "normalized": normalize,
            "reward_a": _json_number(shown[0]),
            "reward_b": _json_number(shown[1]),
            "prob_a_beats_b": prob,
        }

    @app.post("/v1/best-of-n")
    async def best_of_n(request: Request):
        body = await service.json_body(request)
        normalize = p.normalize_flag(body, config)
        service.check_normalize(normalize)
        context = p.prompt(p.field(body, "prompt", (str, list)), "prompt")
        items = p.item_list(body, "candidates", config)
        names = [f"candidates[{i}]" for i in range(len(items))]
        convs = [context + p.candidate(c, n) for c, n in zip(items, names)]
        rewards = await service.rewards(convs, names, normalize)
        return {
            "model": config.model_name,
            "normalized": normalize,
            "rewards": [_json_number(r) for r in rewards],
            "ranking": rank_indices(rewards),
            "best": choose(rewards),
        }

    @app.post("/get_reward")
    async def get_reward(request: Request):
        body = await service.json_body(request)
        normalize = p.normalize_flag(body, config)
        service.check_normalize(normalize)
        if "messages" in body:
            items = p.item_list(body, "messages", config)
            names = [f"messages[{i}]" for i in range(len(items))]
            convs = [p.conversation(c, n) for c, n in zip(items, names)]
        else:
            items = p.item_list(body, "query", config)
            prompts = p.field(body, "prompts", list, required=False)
            if prompts is not None and len(prompts) != len(items):
                raise p.PayloadError("prompts", f"'prompts' has {len(prompts)} items but 'query' has {len(items)}")
            names = [f"query[{i}]" for i in range(len(items))]
            convs = [_query(items, prompts, i) for i in range(len(items))]
        rewards = [_json_number(r) for r in await service.rewards(convs, names, normalize)]
        return {"rewards": rewards, "scores": rewards}

    return app


class GuardMiddleware:
    """Auth, the shutdown gate and request metrics, as plain ASGI (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app, service: RewardService):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        service, path = self.service, scope["path"]
        started = time.perf_counter()
        status, status_sent = 500, False
        service.metrics.request_started()

        async def send_status(message):
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
            await send(message)

        try:
            if path not in _OPEN_PATHS and not _authorized(Request(scope), service.config.api_key):
                error = p.PayloadError(None, "missing or wrong API key (send 'Authorization: Bearer KEY')", 401)
                await _error(error)(scope, receive, send_status)
            elif service.draining:
                await _error(p.PayloadError(None, "the server is shutting down", 503))(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        except Exception as exc:  # a bug or a failing model: answer 500 here, so the connection stays usable
            log.error("internal error on %s %s", scope.get("method"), path, exc_info=exc)
            if status_sent:
                raise  # half a response is out: only closing the connection is left (uvicorn does)
            error = p.PayloadError(None, f"internal error: {type(exc).__name__}: {str(exc)[:300]} (the server log has the traceback)", 500)
            await _error(error)(scope, receive, send_status)
        finally:
            label = path if path in _ROUTES else "other"  # bounded label set
            service.metrics.request_finished(label, status, time.perf_counter() - started)


_request_items: contextvars.ContextVar[list[int]] = contextvars.ContextVar("synpref_request_items")
access_log = logging.getLogger("synpref.serve.access")


class AccessLogMiddleware:
    """One line per request on stderr: client, method, path, status, latency and items scored (off: --no-access-log)."""

    def __init__(self, app):
        self.app = app
        if access_log.level == logging.NOTSET:
            access_log.setLevel(logging.INFO)
        if not access_log.handlers:  # uvicorn configures its own loggers only
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s synpref access: %(message)s"))
            access_log.addHandler(handler)
            access_log.propagate = False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, items = time.perf_counter(), 500, [0]
        token = _request_items.set(items)

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _request_items.reset(token)
            client = "%s:%s" % tuple(scope["client"]) if scope.get("client") else "-"
            access_log.info('%s "%s %s" %d %.1f ms items=%d', client, scope["method"], scope["path"], status,
                            (time.perf_counter() - started) * 1000, items[0])


def _query(queries: list, prompts: list | None, i: int):
    query = queries[i]
    if not isinstance(query, str):
        raise p.PayloadError(f"query[{i}]", f"query[{i}] must be a string, got {p._json_type(query)}")
    prompt = None
    if prompts is not None:
        prompt = prompts[i]
        if not isinstance(prompt, str):
            raise p.PayloadError(f"prompts[{i}]", f"prompts[{i}] must be a string, got {p._json_type(prompt)}")
    try:
        conv = query_to_conversation(query, prompt)
    except RenderedTextError as e:
        raise p.PayloadError(f"query[{i}]", f"query[{i}]: {e}") from None
    p.check_text(conv, f"query[{i}]", from_string=True)
    return conv


def _authorized(request: Request, api_key: str | None) -> bool:
    if not api_key:
        return True
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), api_key.encode())


class _AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: an error message quoting odd input (a lone surrogate) still encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(exc: p.PayloadError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _AsciiJSON(exc.to_dict(), status_code=exc.status, headers=headers)
