"""The one scoring front door: lookup -> cached -> run -> remember -> usage -> latency.

The library's verbs and the server's routes both score through here; the server passes its
micro-batcher as ``run`` (``score_async``) and the caller's key, so usage rows and cache
namespaces come from the caller, never from global state.

Example:
    >>> from classer_local.classifier import Classifier, Item
    >>> clf = Classifier(["sports", "politics"])                       # doctest: +SKIP
    >>> score(clf, [Item("2-1 at half time")], "classify", endpoint="classify").results[0].label  # doctest: +SKIP
    'sports'
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import request_cache, usagelog, validation
from .errors import ClasserError
from .request_ids import new_request_id

if TYPE_CHECKING:
    from .classifier import Classifier, Item

Run = Callable[["Classifier", str, "float | None", "list[Item]"], list[Any]]
AsyncRun = Callable[["Classifier", str, "float | None", "list[Item]"], Awaitable[list[Any]]]
ToThread = Callable[..., Awaitable[Any]]


@dataclass
class Scored:
    """One call's answers and what it cost."""

    results: list[Any]
    keys: list[str | None]
    hits: int
    tokens: int
    visual_tokens: int
    latency_ms: float

    @property
    def billed(self) -> int:
        return self.tokens + self.visual_tokens


def _begin(clf: Classifier, items: Sequence[Item], op: str, threshold: Any) -> float | None:
    from .classifier import check_item

    thr = None if threshold is None else validation.threshold(threshold)
    for i, it in enumerate(items):
        check_item(it, i if len(items) > 1 else None, clf.policy_)
    return thr  # None for tag: the classifier's own (its constructor's, or each label's fitted one)


def _finish(clf: Classifier, out: list[Any], keys: list[Any], t0: float, endpoint: str,
            key_id: str | None, request_id: str | None, fresh_final: bool = False) -> Scored:
    """Stamp the call's latency (and the caller's request id on a single answer), then record usage.

    ``fresh_final``: the answers made in this call were built with their final latency
    already (the in-process path), so only cache hits are re-stamped.
    """
    ms = (time.perf_counter() - t0) * 1000
    single = len(out) == 1 and not endpoint.endswith("batch")
    per = round(ms if single else ms / max(len(out), 1), 3)
    final = [r if fresh_final and not r.cached and not (single and request_id)
             else r.with_meta(latency_ms=per, request_id=(request_id if single and request_id else r.request_id))
             for r in out]
    fresh = [r for r in final if not r.cached]
    tokens = sum(r.tokens for r in fresh)
    vtokens = sum(r.visual_tokens for r in fresh)
    usagelog.record(endpoint=endpoint, model=clf.spec_.name, labels=len(clf.labels_), items=len(final),
                    tokens=tokens, visual_tokens=vtokens, latency_ms=ms, cached_items=len(final) - len(fresh),
                    request_id=request_id or (final[0].request_id if single else None), key_id=key_id)
    return Scored(final, keys, len(final) - len(fresh), tokens, vtokens, round(ms, 3))


def _failed(clf: Classifier | None, n: int, t0: float, endpoint: str, exc: ClasserError,
            key_id: str | None, request_id: str | None) -> None:
    usagelog.record(endpoint=endpoint, model=clf.spec_.name if clf else None, labels=len(clf.labels_) if clf else 0,
                    items=n, latency_ms=(time.perf_counter() - t0) * 1000, status="error", error_code=exc.code,
                    request_id=request_id, key_id=key_id)


def score(clf: Classifier, items: list[Item], op: str, *, threshold: Any = None, cache: bool | None = None,
          endpoint: str, key_id: str | None = None, request_id: str | None = None,
          cache_namespace: str | None = None, run: Run | None = None, adapt: bool = False) -> Scored:
    """Score ``items`` with ``clf`` through the request cache; one usage row per call.

    ``adapt=True`` (batch adaptation) bypasses the request cache: an adapted answer depends on
    the rest of its batch, so it is neither looked up nor remembered.
    """
    clf._setup()  # a bad parameter fails as it would at construction: before any lookup or usage row
    t0 = time.perf_counter()
    use_cache = (clf.cache if cache is None else cache) and not adapt
    try:
        thr = _begin(clf, items, op, threshold)
        out: list[Any] = [None] * len(items)
        keys: list[Any] = [None] * len(items)
        if use_cache:
            out, keys = request_cache.cached(clf, items, op, thr, cache_namespace)
        todo = [i for i, r in enumerate(out) if r is None]
        if todo:
            todo_items = [items[i] for i in todo]
            fresh = run(clf, op, thr, todo_items) if run else clf.run(todo_items, op, thr, t0=t0, adapt=adapt)
            for i, r in zip(todo, fresh):
                out[i] = r
            if use_cache:
                request_cache.remember(keys, out, todo)
    except ClasserError as exc:
        _failed(clf, len(items), t0, endpoint, exc, key_id, request_id)
        raise
    return _finish(clf, out, keys, t0, endpoint, key_id, request_id, fresh_final=run is None)


async def score_async(clf: Classifier, items: list[Item], op: str, *, threshold: Any = None,
                      cache: bool | None = None, endpoint: str, run: AsyncRun, to_thread: ToThread,
                      key_id: str | None = None, request_id: str | None = None,
                      cache_namespace: str | None = None, t0: float | None = None) -> Scored:
    """``score`` for an event loop: ``run`` is awaited (the server's micro-batcher) and the
    cache's disk work goes through ``to_thread`` (e.g. starlette's ``run_in_threadpool``)."""
    clf._setup()  # as in score
    t0 = time.perf_counter() if t0 is None else t0
    use_cache = clf.cache if cache is None else cache
    try:
        thr = _begin(clf, items, op, threshold)
        out: list[Any] = [None] * len(items)
        keys: list[Any] = [None] * len(items)
        if use_cache:
            out, keys = await to_thread(request_cache.cached, clf, items, op, thr, cache_namespace)
        todo = [i for i, r in enumerate(out) if r is None]
        if todo:
            fresh = await run(clf, op, thr, [items[i] for i in todo])
            for i, r in zip(todo, fresh):
                out[i] = r
            if use_cache:
                await to_thread(request_cache.remember, keys, out, todo)
    except ClasserError as exc:
        _failed(clf, len(items), t0, endpoint, exc, key_id, request_id)
        raise
    return _finish(clf, out, keys, t0, endpoint, key_id, request_id)


def failed(clf: Classifier | None, n: int, t0: float, endpoint: str, exc: ClasserError, *,
           key_id: str | None = None, request_id: str | None = None) -> None:
    """Record a call that failed before it reached ``score`` (e.g. no such saved classifier)."""
    _failed(clf, n, t0, endpoint, exc, key_id, request_id)


__all__ = ["Scored", "failed", "new_request_id", "score", "score_async"]
