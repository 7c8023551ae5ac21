"""The HTTP app: the hosted API's wire format over the library, for ``classer-local serve``.

Every request passes through, in order: the body limit (1 MB on real-time routes),
authentication (``Authorization: Bearer <key>``; 401), the key's token balance (402),
its rate limits (429 with ``Retry-After``), then the route. Scoring routes look the
request cache up first; misses wait in a micro-batch (``batching``) and run in the one
model thread. Every error body is ``ClasserError.to_dict()`` (``server.errors``).

Example:
    >>> from classer_local.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(auth=False))  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__, usagelog, validation
from ..classifier import Item
from ..errors import (
    AuthenticationError,
    ClasserError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from . import errors as server_errors
from .batching import MicroBatcher
from .keys import MAX_LIMIT, KeyStore
from .ratelimit import Decision, RateLimiter

MAX_BODY_BYTES = 1_000_000
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_LOG_ROWS = 1000


@dataclass
class ServerConfig:
    """How ``create_app`` behaves; ``classer-local serve`` fills it from its flags."""

    auth: bool = True
    rpm: int = 600  # default requests/min for keys without their own limit (0: unlimited)
    tpm: int = 0  # default tokens/min (0: unlimited)
    max_body_bytes: int = MAX_BODY_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    batch_wait_ms: float = 2.0
    batch_max_items: int = 256
    preload: list[str] = field(default_factory=list)  # priorities or model names to load at start
    keys_path: str | None = None


# ---------------------------------------------------------------------- request and response models
Priority = Literal["standard", "fast"]
Truncate = Literal["NONE", "START", "END"]
ImageField = str | list[str]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Options(_Body):
    labels: list[str] | None = Field(None, description="1 to 200 labels; or give `classifier`.")
    descriptions: dict[str, str] | None = None
    examples: dict[str, list[str]] | None = None
    text_type: str | None = Field(None, description='What the inputs are, e.g. "support ticket".')
    priority: Priority | None = Field(None, description="standard (default) or fast.")
    model: str | None = Field(None, description="A model name from `GET /v1/models`; overrides priority.")
    cache: bool = True
    truncate: Truncate | None = None
    classifier: str | None = Field(None, description='A saved classifier, "name" or "name@v2".')


class ClassifyRequest(_Options):
    text: str | None = None
    image: ImageField | None = Field(None, description="base64, a data: URL or an http(s) URL; or a list.")
    file: str | None = Field(None, description="A PDF or DOCX as base64, a data: URL or an http(s) URL.")


class TagRequest(ClassifyRequest):
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class BatchRequest(_Options):
    texts: list[str] | None = None
    images: list[ImageField | None] | None = None
    files: list[str | None] | None = None


class TagBatchRequest(BatchRequest):
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class CohereExample(BaseModel):
    text: str
    label: str


class CohereRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputs: list[str]
    examples: list[CohereExample]
    truncate: Truncate | None = "END"
    model: str | None = None
    priority: Priority | None = None


class KeyCreateRequest(_Body):
    name: str = Field(..., min_length=1, max_length=100)
    quota: int | None = Field(None, ge=0, le=MAX_LIMIT, description="Token budget; null for unlimited.")
    rpm: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Requests per minute; null for the server default, 0 unlimited."
    )
    tpm: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Tokens per minute; null for the server default, 0 unlimited."
    )
    admin: bool = False


class ClassifierCreateRequest(_Body):
    name: str
    labels: list[str] | None = None
    descriptions: dict[str, str] | None = None
    examples: dict[str, list[str]] | None = None
    text_type: str | None = None
    model: str | None = None
    priority: Priority | None = None
    threshold: float = Field(0.5, ge=0, le=1, allow_inf_nan=False)
    truncate: Truncate | None = None
    calibrate: bool = True


class LabelScoreOut(BaseModel):
    label: str
    confidence: float


class ClassifyResponse(BaseModel):
    label: str
    confidence: float
    scores: dict[str, float]
    tokens: int
    visual_tokens: int
    latency_ms: float
    cached: bool
    model: str
    request_id: str


class TagResponse(BaseModel):
    labels: list[LabelScoreOut]
    scores: dict[str, float]
    threshold: float
    tokens: int
    visual_tokens: int
    latency_ms: float
    cached: bool
    model: str
    request_id: str


class ErrorBody(BaseModel):
    error: str
    code: str
    message: str
    details: dict[str, Any]
    docs_url: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (400, 401, 402, 404, 409, 413, 422, 429, 500)
}


# ---------------------------------------------------------------------- callers
@dataclass
class Caller:
    """Who is calling: a key's public row, or None when the server runs with ``--no-auth``."""

    key: dict[str, Any] | None
    decision: Decision | None = None

    @property
    def key_id(self) -> str | None:
        return self.key["id"] if self.key else None

    @property
    def admin(self) -> bool:
        return self.key is None or bool(self.key["admin"])


class _RequestIdMiddleware:
    """Give every request an id, and every response ``X-Request-ID`` plus the rate-limit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = "req_" + uuid.uuid4().hex[:24]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = {
                    "x-request-id": state["request_id"],
                    **{k.lower(): v for k, v in (state.get("headers") or {}).items()},
                }
                for k, v in extra.items():
                    if k.encode() not in names:
                        headers.append((k.encode(), str(v).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _state(request: Request) -> _AppState:
    return request.app.state.classer  # type: ignore[no-any-return]


class _AppState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.keys = KeyStore(config.keys_path)
        self.limiter = RateLimiter()
        self.batcher = MicroBatcher(config.batch_wait_ms, config.batch_max_items)


async def _identify(request: Request) -> Caller:
    st = _state(request)
    if not st.config.auth:
        usagelog.current_key.set(None)
        return Caller(None)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        if st.keys.count() == 0:
            raise AuthenticationError(
                "no_api_keys",
                "This server requires an API key and none exists yet. Create one with "
                "`classer-local keys create --name NAME --admin`, or start the server with --no-auth.",
            )
        raise AuthenticationError("missing_api_key", "Pass your API key as `Authorization: Bearer <key>`.")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("invalid_authorization", "The Authorization header must be `Bearer <key>`.")
    key = st.keys.verify(token.strip())
    usagelog.current_key.set(key["id"])
    return Caller(key)


async def authenticate(request: Request) -> Caller:
    """The caller's key, checked (401) and within its request rate limit (429)."""
    caller = await _identify(request)
    if caller.key is not None:
        _admit(request, caller, tokens=False)
    return caller


async def metered(request: Request) -> Caller:
    """As ``authenticate``, for routes that spend tokens: balance left (402) and token rate limit (429)."""
    caller = await _identify(request)
    if caller.key is not None:
        quota, used = caller.key["quota"], caller.key["used"]
        if quota is not None and used >= quota:
            raise InsufficientBalanceError(
                "balance_exhausted",
                f"This key has used its quota of {quota} tokens. Ask an admin to raise it.",
                {"quota": quota, "used": used, "remaining": 0},
            )
        _admit(request, caller, tokens=True)
    return caller


def _admit(request: Request, caller: Caller, tokens: bool) -> None:
    st = _state(request)
    key = caller.key
    assert key is not None
    rpm = st.config.rpm if key["rpm"] is None else key["rpm"]
    tpm = (st.config.tpm if key["tpm"] is None else key["tpm"]) if tokens else 0
    decision = st.limiter.check(key["id"], rpm=rpm, tpm=tpm)
    request.state.headers = decision.headers()
    if not decision.allowed:
        if decision.reason == "requests":
            raise RateLimitError(
                "rate_limit_requests",
                f"Rate limit of {rpm} requests/min reached.",
                {"limit": rpm, "retry_after_s": round(decision.retry_after, 3)},
                retry_after=decision.retry_after,
            )
        raise RateLimitError(
            "rate_limit_tokens",
            f"Token rate limit of {tpm} tokens/min reached.",
            {"limit_tokens": tpm, "retry_after_s": round(decision.retry_after, 3)},
            retry_after=decision.retry_after,
        )
    caller.decision = decision


Authed = Annotated[Caller, Depends(authenticate)]
Metered = Annotated[Caller, Depends(metered)]


def _require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise AuthenticationError("admin_required", "This needs an admin key.")


# ---------------------------------------------------------------------- input conversion
_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pdf", ".docx")


def _source(value: Any, what: str, index: int | None = None) -> Any:
    """A client's image/file string as bytes (base64) or a URL; never a path on this machine."""
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            raise InvalidRequestError(
                f"{what}_invalid", f"{what} must not be an empty list.", {"index": index}
            )
        return [_source(v, what, index) for v in value]
    low = value[:16].lower()
    if low.startswith(("data:", "http://", "https://")):
        return value
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"{what}_invalid", f"{what} must be base64, a data: URL or an http(s):// URL.", {"index": index}
        ) from None


def _check_strings(value: Any) -> None:
    """Refuse strings that cannot be UTF-8 (lone surrogates from JSON escapes), before they reach a model."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                "unicode_invalid", "The request holds a string that is not valid Unicode (a lone surrogate)."
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k)
            _check_strings(v)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v)


def _check_examples(examples: dict[str, list[str]] | None) -> None:
    for label, items in (examples or {}).items():
        for j, ex in enumerate(items):
            if (
                ex.lower().endswith(_FILE_SUFFIXES)
                and not ex.lower().startswith(("data:", "http"))
                and os.path.exists(ex)
            ):
                raise InvalidRequestError(
                    "example_path_not_allowed",
                    "Over HTTP, examples are texts or data: URLs, not paths on the server.",
                    {"label": label, "index": j},
                )


def _get_classifier(body: _Options) -> Any:
    from ..api import get_classifier

    if body.classifier is not None and body.labels is not None:
        raise InvalidRequestError("classifier_and_labels", "Give either labels or classifier, not both.")
    if body.classifier is None and body.labels is None:
        validation.labels(None)
    _check_examples(body.examples)
    return get_classifier(
        body.labels,
        descriptions=body.descriptions,
        examples=body.examples,
        text_type=body.text_type,
        priority=body.priority or "standard",
        model=body.model,
        truncate=body.truncate,
        classifier=body.classifier,
    )


def _single_item(body: ClassifyRequest) -> Item:
    item = Item(body.text, _source(body.image, "image"), _source(body.file, "file"))
    if item.image is None and item.file is None:
        validation.text(item.text)
    return item


def _batch_items(body: BatchRequest) -> list[Item]:
    given = {
        n: v
        for n, v in (("texts", body.texts), ("images", body.images), ("files", body.files))
        if v is not None
    }
    if not given:
        raise InvalidRequestError("input_required", "texts, images or files is required.")
    sizes = {n: len(validation.batch(v, n)) for n, v in given.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidRequestError(
            "batch_length_mismatch", f"texts, images and files must have the same length, got {sizes}.", sizes
        )
    n = next(iter(sizes.values()))
    items = []
    for i in range(n):
        item = Item(
            body.texts[i] if body.texts is not None else None,
            _source(body.images[i], "image", i) if body.images is not None else None,
            _source(body.files[i], "file", i) if body.files is not None else None,
        )
        if item.image is None and item.file is None or item.text is not None:
            validation.text(item.text, i)
        items.append(item)
    return items


# ---------------------------------------------------------------------- scoring
@dataclass
class _Scored:
    results: list[Any]
    keys: list[str | None]
    hits: int
    billed: int


async def _score(
    request: Request,
    caller: Caller,
    body: _Options,
    items: list[Item],
    op: str,
    thr: float | None,
    endpoint: str,
    t0: float,
) -> _Scored:
    st = _state(request)
    rid = request.state.request_id
    clf = None
    try:
        # An ad-hoc classifier is an LRU hit or a lazy constructor (no embedding): cheap enough for
        # the event loop. A saved one may read its arrays from disk.
        clf = await run_in_threadpool(_get_classifier, body) if body.classifier else _get_classifier(body)
        if op == "tag" and thr is None:
            thr = clf.threshold
        if body.cache:
            out, keys = await run_in_threadpool(clf.cached, items, op, thr)
        else:
            out, keys = [None] * len(items), [None] * len(items)
        todo = [i for i, r in enumerate(out) if r is None]
        if todo:
            fresh = await st.batcher.submit(clf, op, thr, [items[i] for i in todo])
            for i, r in zip(todo, fresh):
                out[i] = r
            if body.cache:
                await run_in_threadpool(clf.remember, keys, out, todo)
    except ClasserError as exc:
        usagelog.record(
            endpoint=endpoint,
            model=clf.spec.name if clf else None,
            labels=len(clf.labels) if clf else 0,
            items=len(items),
            latency_ms=(time.perf_counter() - t0) * 1000,
            status="error",
            error_code=exc.code,
            request_id=rid,
            key_id=caller.key_id,
        )
        raise
    ms = round((time.perf_counter() - t0) * 1000, 3)
    single = len(items) == 1 and not endpoint.endswith("batch")
    final = [
        r.with_meta(
            latency_ms=ms if single else round(ms / len(items), 3),
            request_id=rid if single else "req_" + uuid.uuid4().hex[:24],
        )
        for r in out
    ]
    fresh_results = [r for r in final if not r.cached]
    tokens = sum(r.tokens for r in fresh_results)
    vtokens = sum(r.visual_tokens for r in fresh_results)
    usagelog.record(
        endpoint=endpoint,
        model=clf.spec.name,
        labels=len(clf.labels),
        items=len(final),
        tokens=tokens,
        visual_tokens=vtokens,
        latency_ms=ms,
        cached_items=len(final) - len(fresh_results),
        request_id=rid,
        key_id=caller.key_id,
    )
    billed = tokens + vtokens
    await _bill(request, caller, billed)
    return _Scored(final, keys, len(final) - len(fresh_results), billed)


async def _bill(request: Request, caller: Caller, tokens: int) -> None:
    if caller.key is None or tokens <= 0:
        return
    st = _state(request)
    st.limiter.record(caller.key["id"], tokens)
    await run_in_threadpool(st.keys.charge, caller.key["id"], tokens)


def _cache_headers(scored: _Scored, use_cache: bool) -> dict[str, str]:
    h = {"X-Tokens-Used": str(scored.billed)}
    n = len(scored.results)
    if not use_cache:
        h["X-Cache"] = "BYPASS"
    elif scored.hits == n:
        h["X-Cache"] = "HIT"
    elif scored.hits == 0:
        h["X-Cache"] = "MISS"
    else:
        h["X-Cache"] = "PARTIAL"
    if n == 1 and use_cache and scored.keys[0]:
        h["X-Cache-Key"] = scored.keys[0][:16]
        h["X-Cache-Age"] = str(round(scored.results[0].cache_age_s, 3)) if scored.results[0].cached else "0"
    elif use_cache:
        h["X-Cache-Hits"] = str(scored.hits)
    return h


# ---------------------------------------------------------------------- the app
def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app; one per process (it owns the model thread)."""
    config = config or ServerConfig()
    state = _AppState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.preload:
            from ..backends import load_text
            from ..registry import resolve

            for name in config.preload:
                spec = resolve(None, name) if name in ("standard", "fast") else resolve(name, None)
                await state.batcher.call(load_text, spec, "auto")
        yield
        state.batcher.shutdown()
        usagelog.flush()
        state.keys.close()

    app = FastAPI(
        title="classer_local",
        version=__version__,
        lifespan=lifespan,
        description="Offline classification server speaking the hosted classification API.",
    )
    app.state.classer = state
    server_errors.install(app)
    limits: dict[str, int | None] = {"/v1/batch": None}
    app.add_middleware(server_errors.BodyLimitMiddleware, limit=config.max_body_bytes, limits=limits)
    app.add_middleware(_RequestIdMiddleware)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "auth": config.auth,
            "batching": state.batcher.stats.to_dict(),
        }

    # ----------------------------------------------------------------- real-time scoring
    @app.post("/v1/classify", tags=["classify"], response_model=ClassifyResponse, responses=_ERRORS)
    async def classify(body: ClassifyRequest, request: Request, caller: Metered) -> JSONResponse:
        t0 = time.perf_counter()
        _check_strings(body.model_dump())
        items = [_single_item(body)]
        scored = await _score(request, caller, body, items, "classify", None, "classify", t0)
        return JSONResponse(scored.results[0].to_dict(), headers=_cache_headers(scored, body.cache))

    @app.post("/v1/tag", tags=["classify"], response_model=TagResponse, responses=_ERRORS)
    async def tag(body: TagRequest, request: Request, caller: Metered) -> JSONResponse:
        t0 = time.perf_counter()
        _check_strings(body.model_dump())
        items = [_single_item(body)]
        scored = await _score(request, caller, body, items, "tag", body.threshold, "tag", t0)
        return JSONResponse(scored.results[0].to_dict(), headers=_cache_headers(scored, body.cache))

    async def _batch(
        request: Request, caller: Caller, body: BatchRequest, op: str, thr: float | None
    ) -> JSONResponse:
        t0 = time.perf_counter()
        _check_strings(body.model_dump())
        items = _batch_items(body)
        scored = await _score(request, caller, body, items, op, thr, f"{op}_batch", t0)
        res = scored.results
        payload = {
            "results": [r.to_dict() for r in res],
            "total_tokens": sum(r.tokens for r in res if not r.cached),
            "total_visual_tokens": sum(r.visual_tokens for r in res if not r.cached),
            "cached_count": scored.hits,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "model": res[0].model if res else "",
            "request_id": request.state.request_id,
        }
        return JSONResponse(payload, headers=_cache_headers(scored, body.cache))

    @app.post("/v1/classify/batch", tags=["classify"], responses=_ERRORS)
    async def classify_batch(body: BatchRequest, request: Request, caller: Metered) -> JSONResponse:
        return await _batch(request, caller, body, "classify", None)

    @app.post("/v1/tag/batch", tags=["classify"], responses=_ERRORS)
    async def tag_batch(body: TagBatchRequest, request: Request, caller: Metered) -> JSONResponse:
        return await _batch(request, caller, body, "tag", body.threshold)

    @app.post("/cohere/v1/classify", tags=["cohere"], responses=_ERRORS)
    async def cohere_classify(body: CohereRequest, request: Request, caller: Metered) -> JSONResponse:
        from .. import cohere

        t0 = time.perf_counter()
        data = body.model_dump()
        _check_strings(data)
        res = await state.batcher.call(
            lambda: cohere.classify(
                data["inputs"],
                data["examples"],
                truncate=body.truncate,
                model=body.model,
                priority=body.priority or "standard",
            )
        )
        out = res.to_dict()
        billed = int(out["meta"]["billed_units"].get("input_tokens", 0))
        await _bill(request, caller, billed)
        headers = {
            "X-Tokens-Used": str(billed),
            "X-Latency-Ms": str(round((time.perf_counter() - t0) * 1000, 3)),
        }
        return JSONResponse(out, headers=headers)

    # ----------------------------------------------------------------- models, keys, balance, usage
    @app.get("/v1/models", tags=["meta"], responses=_ERRORS)
    async def models(caller: Authed) -> dict[str, Any]:
        from ..registry import models as list_models

        return {"models": await run_in_threadpool(list_models)}

    @app.get("/v1/keys", tags=["keys"], responses=_ERRORS)
    async def list_keys(caller: Authed) -> dict[str, Any]:
        if caller.key is not None and not caller.admin:
            return {"keys": [await run_in_threadpool(state.keys.get, caller.key["id"])]}
        return {"keys": await run_in_threadpool(state.keys.list)}

    @app.post("/v1/keys", tags=["keys"], status_code=201, responses=_ERRORS)
    async def create_key(body: KeyCreateRequest, caller: Authed) -> dict[str, Any]:
        _require_admin(caller)
        _check_strings(body.name)
        key, row = await run_in_threadpool(
            lambda: state.keys.create(
                body.name, quota=body.quota, rpm=body.rpm, tpm=body.tpm, admin=body.admin
            )
        )
        return {"key": key, **row}

    @app.get("/v1/balance", tags=["keys"], responses=_ERRORS)
    async def balance(caller: Authed) -> dict[str, Any]:
        if caller.key is None:
            return {"key_id": None, "name": None, "quota": None, "used": None, "remaining": None}
        row = await run_in_threadpool(state.keys.get, caller.key["id"])
        return {
            "key_id": row["id"],
            "name": row["name"],
            "quota": row["quota"],
            "used": row["used"],
            "remaining": row["remaining"],
        }

    def _scope(caller: Caller, key_id: str | None) -> str | None:
        # A key that is not admin sees only its own rows.
        return key_id if caller.admin else caller.key_id

    @app.get("/v1/usage", tags=["usage"], responses=_ERRORS)
    async def usage(
        caller: Authed,
        since: str | None = None,
        until: str | None = None,
        group_by: Literal["day", "hour", "month", "endpoint", "model", "key_id"] | None = "day",
        endpoint: str | None = None,
        model: str | None = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        _check_strings([since, until, endpoint, model, key_id])
        return await run_in_threadpool(
            lambda: usagelog.usage(
                since=_time_arg(since, "since"),
                until=_time_arg(until, "until"),
                group_by=group_by,
                endpoint=endpoint,
                model=model,
                key_id=_scope(caller, key_id),
            )
        )

    @app.get("/v1/logs", tags=["usage"], responses=_ERRORS)
    async def logs(
        caller: Authed,
        limit: int = Query(100, ge=1, le=MAX_LOG_ROWS),
        offset: int = Query(0, ge=0, le=2**62),
        since: str | None = None,
        until: str | None = None,
        endpoint: str | None = None,
        status: str | None = None,
        cached: bool | None = None,
        key_id: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        _check_strings([since, until, endpoint, status, key_id, request_id])
        rows = await run_in_threadpool(
            lambda: usagelog.logs(
                limit=MAX_LOG_ROWS if request_id else limit,
                offset=offset,
                since=_time_arg(since, "since"),
                until=_time_arg(until, "until"),
                endpoint=endpoint,
                status=status,
                cached=cached,
                key_id=_scope(caller, key_id),
            )
        )
        if request_id:
            rows = [r for r in rows if r["request_id"] == request_id][:limit]
        return {"logs": rows}

    # ----------------------------------------------------------------- saved classifiers
    @app.get("/v1/classifiers", tags=["classifiers"], responses=_ERRORS)
    async def list_classifiers(caller: Authed) -> dict[str, Any]:
        from .. import store

        return {"classifiers": await run_in_threadpool(store.list)}

    @app.post("/v1/classifiers", tags=["classifiers"], status_code=201, responses=_ERRORS)
    async def create_classifier(
        body: ClassifierCreateRequest, request: Request, caller: Metered
    ) -> dict[str, Any]:
        from .. import store

        data = body.model_dump()
        _check_strings(data)
        _check_examples(body.examples)
        priority = data.pop("priority") or "standard"
        name = data.pop("name")
        labels = data.pop("labels")
        # Fitting embeds every label and example: model work, so the model thread.
        return await state.batcher.call(lambda: store.create(name, labels, priority=priority, **data))

    @app.get("/v1/classifiers/{name}", tags=["classifiers"], responses=_ERRORS)
    async def get_classifier(name: str, caller: Authed) -> dict[str, Any]:
        from .. import store

        _check_strings(name)
        return await run_in_threadpool(store.get, name)

    @app.delete("/v1/classifiers/{name}", tags=["classifiers"], responses=_ERRORS)
    async def delete_classifier(name: str, caller: Authed) -> dict[str, Any]:
        from .. import store

        _check_strings(name)
        return await run_in_threadpool(store.delete, name)

    # ----------------------------------------------------------------- batch jobs
    _install_jobs(app, state)
    return app


def _time_arg(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import datetime

    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"{name}_invalid", f"{name} must be an ISO time or Unix seconds.", {name: value}
        ) from None
    return value


def _jobs() -> Any:
    try:
        from .. import jobs
    except ImportError as exc:
        raise ServerError(
            "not_implemented", "Batch jobs are not available in this build.", {"reason": str(exc)}
        ) from None
    return jobs


def _job_dict(job: Any) -> dict[str, Any]:
    d = dict(job.to_dict())
    # Server paths are no business of the client's; it reads results through the API.
    d.pop("input", None)
    d.pop("results", None)
    d["results_url"] = f"/v1/batch/{d['id']}/results"
    return d


def _scan_upload(path: Path) -> None:
    """Refuse uploaded rows whose image/file names a path on this machine (the job would read it)."""
    import json

    with open(path, "rb") as fh:
        for row, raw in enumerate(fh):
            if b'"image"' not in raw and b'"file"' not in raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue  # the job reports bad lines itself
            if not isinstance(obj, dict):
                continue
            for name in ("image", "file"):
                values = obj.get(name)
                for v in values if isinstance(values, list) else [values]:
                    if (
                        isinstance(v, str)
                        and len(v) < 4096
                        and not v[:8].lower().startswith(("data:", "http://", "https:/"))
                        and os.path.exists(v)
                    ):
                        raise InvalidRequestError(
                            "path_not_allowed",
                            f"Row {row}: over HTTP, {name} must be base64, a data: URL or "
                            "an http(s) URL, not a path on the server.",
                            {"row": row, "field": name},
                        )


def _install_jobs(app: FastAPI, state: _AppState) -> None:
    async def upload_to_file(request: Request) -> tuple[Path, dict[str, Any]]:
        """Stream an NDJSON upload (multipart ``file`` or the raw body) to a temporary file."""
        limit = state.config.max_upload_bytes
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_upload_dir()))
        path = folder / "input.ndjson"
        form_fields: dict[str, Any] = {}
        ctype = request.headers.get("content-type", "").lower()
        size = 0

        def too_large() -> InvalidRequestError:
            return InvalidRequestError(
                "request_too_large", f"The upload is larger than {limit} bytes.", {"max_bytes": limit}
            )

        try:
            if ctype.startswith("multipart/form-data"):
                try:
                    form = await request.form(max_files=1, max_fields=20)
                except Exception as exc:  # noqa: BLE001 - any malformed multipart is the client's 400
                    raise InvalidRequestError(
                        "multipart_invalid", f"Could not read the multipart body: {exc}."
                    ) from None
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise InvalidRequestError(
                        "file_required", "Upload the NDJSON as the multipart field `file`."
                    )
                with open(path, "wb") as fh:  # noqa: ASYNC230 - local disk, 1 MB chunks
                    while chunk := await upload.read(1 << 20):
                        size += len(chunk)
                        if size > limit:
                            raise too_large()
                        fh.write(chunk)
                form_fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
                form_fields["label"] = [v for v in form.getlist("label") if isinstance(v, str)]
            else:
                with open(path, "wb") as fh:  # noqa: ASYNC230 - local disk, small chunks
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > limit:
                            raise too_large()
                        fh.write(chunk)
            if size == 0:
                raise InvalidRequestError("file_empty", "The uploaded NDJSON is empty.")
            await run_in_threadpool(_scan_upload, path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return path, form_fields

    @app.post(
        "/v1/batch",
        tags=["jobs"],
        status_code=201,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                },
            }
        },
    )
    async def create_job(
        request: Request,
        caller: Metered,
        labels: str | None = Query(None, description="Comma-separated labels."),
        label: list[str] | None = Query(None, description="A label; repeat for more."),  # noqa: B008
        classifier: str | None = None,
        kind: Literal["classify", "tag"] = "classify",
        priority: Priority | None = None,
        threshold: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
        start: bool = False,
    ) -> dict[str, Any]:
        """Upload NDJSON rows ``{"id"?, "text" | "image" | "file"}`` as a job; ``start=true`` runs it now."""
        jobs = _jobs()
        path, form = await upload_to_file(request)
        try:
            names = [*(label or []), *form.get("label", [])]
            for raw in (labels, form.get("labels")):
                if raw:
                    names.extend(x.strip() for x in raw.split(",") if x.strip())
            classifier = classifier or form.get("classifier")
            kind = form.get("kind", kind)
            _check_strings([names, classifier, kind])
            kwargs: dict[str, Any] = {
                "kind": kind,
                "priority": priority or form.get("priority") or "standard",
                "threshold": threshold,
                "copy": True,
            }
            if names:
                kwargs["labels"] = names
            if classifier:
                kwargs["classifier"] = classifier
            job = await run_in_threadpool(lambda: jobs.create(str(path), **kwargs))
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
        if start or str(form.get("start", "")).lower() in ("1", "true", "yes"):
            await run_in_threadpool(lambda: job.start(wait=False))
        return _job_dict(job)

    @app.post("/v1/batch/{job_id}/start", tags=["jobs"], responses=_ERRORS)
    async def start_job(job_id: str, caller: Metered) -> dict[str, Any]:
        jobs = _jobs()
        _check_strings(job_id)
        job = await run_in_threadpool(jobs.get, job_id)
        await run_in_threadpool(lambda: job.start(wait=False))
        return _job_dict(job)

    @app.get("/v1/batch", tags=["jobs"], responses=_ERRORS)
    async def list_jobs(
        caller: Authed,
        status: Literal["created", "running", "completed", "failed", "cancelled"] | None = None,
    ) -> dict[str, Any]:
        jobs = _jobs()
        return {"jobs": await run_in_threadpool(lambda: [_job_dict(j) for j in jobs.list(status)])}

    @app.get("/v1/batch/{job_id}", tags=["jobs"], responses=_ERRORS)
    async def get_job(job_id: str, caller: Authed) -> dict[str, Any]:
        jobs = _jobs()
        _check_strings(job_id)
        return await run_in_threadpool(lambda: _job_dict(jobs.get(job_id)))

    @app.get("/v1/batch/{job_id}/results", tags=["jobs"], responses=_ERRORS)
    async def job_results(job_id: str, caller: Authed) -> StreamingResponse:
        """The result lines written so far, as NDJSON, in input order."""
        import json

        jobs = _jobs()
        _check_strings(job_id)
        job = await run_in_threadpool(jobs.get, job_id)

        def lines() -> Any:
            for row in job.results():
                yield (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"X-Job-Status": job.status}
        )

    @app.delete("/v1/batch/{job_id}", tags=["jobs"], responses=_ERRORS)
    async def delete_job(job_id: str, caller: Authed) -> dict[str, Any]:
        jobs = _jobs()
        _check_strings(job_id)
        await run_in_threadpool(jobs.delete, job_id)
        return {"id": job_id, "object": "job", "deleted": True}


def _upload_dir() -> Path:
    from .. import config

    return config.subdir("uploads")


def serve(
    host: str = "127.0.0.1", port: int = 8000, config: ServerConfig | None = None, log_level: str = "info"
) -> None:
    """Run the server in this process (one process: the model is loaded once)."""
    import uvicorn

    uvicorn.run(
        create_app(config), host=host, port=port, log_level=log_level, workers=1, timeout_graceful_shutdown=5
    )


__all__ = ["ServerConfig", "create_app", "serve"]
