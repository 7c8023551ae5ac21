"""Real-time scoring: ``/v1/classify``, ``/v1/tag``, their batch forms, and Cohere's ``/v1/classify``.

A request is converted (``convert``), its classifier built with ``allow_paths=False``, its
inputs routed as the library routes them (``api.route``: ``language="auto"`` sends inputs that
are not English to the multilingual model), then each route is scored through the library's
front door, ``service.score_async``, with the micro-batcher as its ``run``: cache lookup
(namespaced by the caller's key) -> batch -> remember -> usage row. The whole of it runs under
the server's wall-time budget (504 ``request_timeout``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ... import service, store
from ...api import Route, check_language, gather, route
from ...classifier import Classifier, Item
from ...errors import ClasserError, ServerError
from .. import convert
from ..deps import Caller, Metered, bill
from ..schemas import (
    ERRORS,
    BatchRequest,
    ClassifyRequest,
    ClassifyResponse,
    CohereRequest,
    Options,
    TagBatchRequest,
    TagRequest,
    TagResponse,
)
from ..state import app_state

router = APIRouter(tags=["classify"], responses=ERRORS)


def classifier_for(body: Options, caller: Caller) -> Classifier:
    """The request's classifier; a saved one only if the caller may read it (else 404, as if absent).

    Blocking (a saved classifier is read from disk): run it in a worker thread.
    """
    opts = convert.options(body).validate()
    if opts.classifier is not None:
        opts = opts.with_(classifier=visible_ref(opts.classifier, caller))
    return opts.build(allow_paths=False)


def routes_for(body: Options, caller: Caller, items: list[Item]) -> list[Route]:
    """The request's classifier and, under ``language``, which inputs it leaves to another
    (``api.route``: documents are read for their language). Blocking: run it in a worker thread."""
    return route(classifier_for(body, caller), items, body.language)


def visible_ref(ref: str, caller: Caller) -> str:
    """``ref`` pinned to a version the caller may read (``name@vN``); 404 otherwise."""
    info = store.get(ref)
    if not caller.may_read(info.get("owner"), info.get("shared", False)):
        raise store.not_found(ref)
    return str(info["ref"])


async def _score(
    request: Request, caller: Caller, body: Options, items: list[Item], op: str, threshold: Any,
    endpoint: str, t0: float,
) -> service.Scored:
    st = app_state(request)
    rid = request.state.request_id
    try:
        routes = await run_in_threadpool(routes_for, body, caller, items)
    except ClasserError as exc:
        service.failed(None, len(items), t0, endpoint, exc, key_id=caller.key_id, request_id=rid)
        raise
    scored = gather(routes, [await service.score_async(
        r.clf, r.items, op, threshold=threshold, cache=body.cache, endpoint=endpoint,
        run=lambda c, o, thr, its: st.batcher.submit(c, o, thr, its),
        to_thread=run_in_threadpool, key_id=caller.key_id, request_id=rid,
        cache_namespace=caller.key_id, t0=t0,
    ) for r in routes])
    await bill(request, caller, scored.billed)
    return scored


async def _within_budget(
    request: Request, caller: Caller, endpoint: str, n: int, t0: float, work: Any
) -> Any:
    """``await work`` within the server's wall-time budget; past it, 504 ``request_timeout``."""
    budget = app_state(request).config.request_timeout_s
    try:
        return await asyncio.wait_for(work, budget)
    except TimeoutError:
        err = ServerError(
            "request_timeout",
            f"The request took longer than the server's budget of {budget:g} s; "
            "send fewer or smaller inputs.",
            {"timeout_s": budget},
        )
        service.failed(None, n, t0, endpoint, err, key_id=caller.key_id, request_id=request.state.request_id)
        raise err from None


def _cache_headers(scored: service.Scored, use_cache: bool) -> dict[str, str]:
    """X-Cache headers; keys and ages are of the caller's own namespace, so they disclose no one else's."""
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


async def _single(
    request: Request, caller: Caller, body: ClassifyRequest, op: str, threshold: Any
) -> JSONResponse:
    t0 = time.perf_counter()
    convert.check_strings(body.model_dump())
    check_language(body.language)  # before any input is read

    async def work() -> service.Scored:
        if convert.has_media(body):
            items = [await run_in_threadpool(convert.single_item, body)]
        else:
            items = [convert.single_item(body)]
        return await _score(request, caller, body, items, op, threshold, op, t0)

    scored = await _within_budget(request, caller, op, 1, t0, work())
    return JSONResponse(scored.results[0].to_dict(), headers=_cache_headers(scored, body.cache))


async def _batch(
    request: Request, caller: Caller, body: BatchRequest, op: str, threshold: Any
) -> JSONResponse:
    t0 = time.perf_counter()
    convert.check_strings(body.model_dump())
    check_language(body.language)
    endpoint = f"{op}_batch"
    n = max((len(v) for v in (body.texts, body.images, body.files) if v is not None), default=0)

    async def work() -> service.Scored:
        if convert.has_media(body):
            items = await run_in_threadpool(convert.batch, body)
        else:
            items = convert.batch(body)
        return await _score(request, caller, body, items, op, threshold, endpoint, t0)

    scored = await _within_budget(request, caller, endpoint, n, t0, work())
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


@router.post("/v1/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, request: Request, caller: Metered) -> JSONResponse:
    """One input (text, image or file) -> the best label and every label's confidence."""
    return await _single(request, caller, body, "classify", None)


@router.post("/v1/tag", response_model=TagResponse)
async def tag(body: TagRequest, request: Request, caller: Metered) -> JSONResponse:
    """One input -> every label above the threshold, best first."""
    return await _single(request, caller, body, "tag", body.threshold)


@router.post("/v1/classify/batch")
async def classify_batch(body: BatchRequest, request: Request, caller: Metered) -> JSONResponse:
    """Up to 1,000 inputs in one request."""
    return await _batch(request, caller, body, "classify", None)


@router.post("/v1/tag/batch")
async def tag_batch(body: TagBatchRequest, request: Request, caller: Metered) -> JSONResponse:
    """Up to 1,000 inputs in one request, tagged."""
    return await _batch(request, caller, body, "tag", body.threshold)


@router.post("/cohere/v1/classify", tags=["cohere"])
async def cohere_classify(body: CohereRequest, request: Request, caller: Metered) -> JSONResponse:
    """Cohere's classify: labels learnt from ``examples`` (at least 2 per label)."""
    from ... import cohere

    st = app_state(request)
    t0 = time.perf_counter()
    data = body.model_dump()
    convert.check_strings(data)

    def run() -> Any:
        return cohere.classify(
            data["inputs"], data["examples"], truncate=body.truncate, model=body.model,
            priority=body.priority or "standard", key_id=caller.key_id, request_id=request.state.request_id,
            cache_namespace=caller.key_id, allow_paths=False,  # a key's cached answers are its own
        )

    res = await _within_budget(request, caller, "cohere", len(body.inputs), t0, st.batcher.call(run))
    out = res.to_dict()
    billed = int(out["meta"]["billed_units"].get("input_tokens", 0))
    await bill(request, caller, billed)
    headers = {"X-Tokens-Used": str(billed), "X-Latency-Ms": str(round((time.perf_counter() - t0) * 1000, 3))}
    return JSONResponse(out, headers=headers)
