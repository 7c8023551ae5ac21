"""Micro-batching: concurrent requests share one model call, across label sets.

Encoding a text does not depend on the labels, so requests are grouped by their
classifier's ``encoder_key`` (model, device, truncation), not by classifier: sixteen clients
with sixteen label sets make one encode of every queued text, then each request is scored
against its own prototypes (``Classifier.run(..., encoded=...)``), classify and tag alike.
Requests with images or documents, or whose classifier cannot share an encode, are batched
per (classifier, op, threshold) and go through ``Classifier.run`` whole, as before.

One drain task serves the queue. When a request finds it idle, it waits up to
``max_wait_ms`` for company (less if ``max_items`` are queued sooner), then runs the group of
the oldest request in a model thread. Whatever arrives meanwhile goes out in the next call
without waiting, so under load batches grow by themselves; an idle server adds at most
``max_wait_ms`` to a request.

All model work goes through the ``workers`` model threads (the event loop never tokenises or
runs a model). Up to ``workers`` calls run at once: a small batch runs on one thread
(``classer_local.threads``), so with a single model thread a 2-core server left a core idle
under load; calls running at once share the free cores, so they do not oversubscribe them.
While one call runs, another starts only once ``join_items`` are queued or the oldest request
has waited ``join_wait_ms``: taking each arrival alone kept the second call's batches tiny.

Example:
    >>> import asyncio
    >>> class Echo:
    ...     def run(self, items, op, threshold=None):
    ...         return [f"{op}:{x}" for x in items]
    >>> async def main():
    ...     b = MicroBatcher(max_wait_ms=1)
    ...     clf = Echo()
    ...     return await asyncio.gather(b.submit(clf, "classify", None, ["a"]),
    ...                                 b.submit(clf, "classify", None, ["b", "c"]))
    >>> asyncio.run(main())
    [['classify:a'], ['classify:b', 'classify:c']]
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Request:
    clf: Any
    op: str
    threshold: float | None
    items: list[Any]
    future: asyncio.Future[list[Any]]
    context: contextvars.Context  # the caller's, for the work done on its behalf
    key: Hashable  # requests with equal keys go out in one call
    shared: bool  # plain texts: encoded together with other classifiers' texts
    arrived: float  # loop time at submit


@dataclass
class BatchStats:
    calls: int = 0
    requests: int = 0
    items: int = 0
    classifiers: int = 0  # distinct classifiers summed over calls
    shared_calls: int = 0  # calls whose texts were encoded once for every classifier in them

    def to_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "requests": self.requests,
            "items": self.items,
            "shared_calls": self.shared_calls,
            "requests_per_call": round(self.requests / self.calls, 3) if self.calls else 0.0,
            "classifiers_per_call": round(self.classifiers / self.calls, 3) if self.calls else 0.0,
        }


@dataclass
class _Queue:
    pending: deque[_Request] = field(default_factory=deque)
    size: int = 0


class MicroBatcher:
    def __init__(
        self, max_wait_ms: float = 2.0, max_items: int = 256, executor: ThreadPoolExecutor | None = None,
        workers: int = 1, join_items: int = 8, join_wait_ms: float = 30.0,
    ) -> None:
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.max_items = max(1, max_items)
        self.workers = max(1, workers)  # model calls at once (they share the cores: threads.for_work)
        # While a call runs, another starts only for join_items queued, or a request waiting join_wait_ms:
        # a free worker that took every arrival at once kept batches at one or two requests.
        self.join_items = max(1, join_items)
        self.join_wait_s = max(0.0, join_wait_ms) / 1000
        self.executor = executor or ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="classer-model")
        self._queue = _Queue()
        self._full: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the model thread, with the caller's context variables."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.executor, ctx.run, fn, *args)

    async def submit(self, clf: Any, op: str, threshold: float | None, items: list[Any]) -> list[Any]:
        """``clf.run(items, op, threshold)``, batched with whatever else is queued."""
        loop = asyncio.get_running_loop()
        shared = _shareable(clf, items)
        key: Hashable = ("text", clf.encoder_key) if shared else ("whole", id(clf), op, threshold)
        req = _Request(clf, op, threshold, items, loop.create_future(), contextvars.copy_context(), key, shared,
                       loop.time())
        q = self._queue
        q.pending.append(req)
        q.size += len(items)
        if self._task is None:
            # One pair per drain: an Event belongs to the loop that awaits it.
            self._full, self._arrived = asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._drain())
        else:
            if q.size >= self.max_items and self._full is not None:
                self._full.set()
            if self._arrived is not None:
                self._arrived.set()
        return await req.future

    def _take(self) -> list[_Request]:
        """The oldest request's group, in arrival order, up to ``max_items`` (at least one request);
        requests whose caller went away are dropped."""
        q = self._queue
        while q.pending and q.pending[0].future.done():
            q.size -= len(q.pending.popleft().items)
        if not q.pending:
            return []
        key = q.pending[0].key
        take: list[_Request] = []
        rest: deque[_Request] = deque()
        n = 0
        for req in q.pending:
            if req.key == key and not req.future.done() and (not take or n + len(req.items) <= self.max_items):
                take.append(req)
                n += len(req.items)
            elif not req.future.done():
                rest.append(req)
        q.pending = rest
        q.size = sum(len(r.items) for r in rest)
        return take

    async def _drain(self) -> None:
        q = self._queue
        full, arrived = self._full, self._arrived
        assert full is not None and arrived is not None
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        first = True
        try:
            while q.pending or running:
                free = bool(q.pending) and len(running) < self.workers
                if free and (not running or q.size >= self.join_items
                             or loop.time() - q.pending[0].arrived >= self.join_wait_s):
                    if first and q.size < self.max_items and self.max_wait_s:
                        try:
                            await asyncio.wait_for(full.wait(), self.max_wait_s)
                        except TimeoutError:
                            pass
                    first = False
                    full.clear()
                    batch = self._take()
                    if batch:
                        running.add(loop.create_task(self._run(batch)))
                    continue
                # Every worker busy, nothing queued, or too little to join the running call yet: wait for
                # a call to end, a request to arrive, or the oldest one's join_wait to pass.
                wait = max(0.0, q.pending[0].arrived + self.join_wait_s - loop.time()) if free else None
                arrival = loop.create_task(arrived.wait())
                done, _ = await asyncio.wait({*running, arrival}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                arrival.cancel()
                arrived.clear()
                running -= done
                for task in done - {arrival}:
                    task.exception()  # retrieved: _run already handed it to its requests
        except BaseException as exc:  # cancelled at shutdown: fail whoever is still waiting
            for task in running:
                task.cancel()
            _fail(q.pending, exc)
            q.pending.clear()
            q.size = 0
            raise
        finally:
            self._task = None

    async def _run(self, batch: list[_Request]) -> None:
        """One model call for ``batch`` in a model thread; each request gets its outcome."""
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(self.executor, _run_batch, batch)
        except BaseException as exc:  # the executor is gone (shutdown), or this task was cancelled
            _fail(batch, exc)
            raise
        self.stats.calls += 1
        self.stats.requests += len(batch)
        self.stats.items += sum(len(r.items) for r in batch)
        self.stats.classifiers += len({id(r.clf) for r in batch})
        self.stats.shared_calls += batch[0].shared
        for req, outcome in zip(batch, outcomes):
            if req.future.done():  # the client went away
                continue
            if isinstance(outcome, BaseException):
                req.future.set_exception(outcome)
            else:
                req.future.set_result(outcome)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _fail(requests: Iterable[_Request], exc: BaseException) -> None:
    """Hand ``exc`` to every request still waiting (a cancellation as "server shutting down")."""
    err = exc if isinstance(exc, Exception) else RuntimeError("server shutting down")
    for req in requests:
        if not req.future.done():
            req.future.set_exception(err)


def _shareable(clf: Any, items: list[Any]) -> bool:
    """Whether ``items`` are plain texts a shared encode can serve (and ``clf`` takes one)."""
    if getattr(clf, "encoder_key", None) is None or not hasattr(clf, "encode"):
        return False
    for it in items:
        if getattr(it, "image", None) is not None or getattr(it, "file", None) is not None:
            return False
        text = getattr(it, "text", None)
        if not isinstance(text, str) or not text.strip():
            return False  # run() leaves an empty text unencoded: the shared vectors would not line up
    return True


def _run_batch(batch: list[_Request]) -> list[Any]:
    """One call of the model thread: each request's results, or the exception it gets."""
    from .. import threads

    with threads.single_blas():
        if batch[0].shared:
            return _run_shared(batch)
        return _run_units(batch)


def _run_shared(batch: list[_Request]) -> list[Any]:
    """Encode every request's texts at once, then score each against its own classifier; if the
    encode fails (one text too long, say), each request alone, so the error reaches only its own."""
    texts = [it.text for req in batch for it in req.items]
    try:
        vectors, tokens = batch[0].context.run(batch[0].clf.encode, texts)
    except Exception:  # noqa: BLE001 - every request is retried alone below and gets its own error
        return [_run_one(req, req.items) for req in batch]
    out: list[Any] = []
    i = 0
    for req in batch:
        j = i + len(req.items)
        out.append(_run_one(req, req.items, (vectors[i:j], list(tokens[i:j]))))
        i = j
    return out


def _run_one(req: _Request, items: list[Any], encoded: tuple[Any, list[int]] | None = None) -> Any:
    try:
        if encoded is None:
            return req.context.run(req.clf.run, items, req.op, req.threshold)
        return req.context.run(req.clf.run, items, req.op, req.threshold, encoded=encoded)
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request, which re-raises it
        return exc


def _run_units(batch: list[_Request]) -> list[Any]:
    """One ``run`` over every request's items (same classifier, op, threshold); if it fails, each
    request alone, so one bad input fails one request."""
    first = batch[0]
    if len(batch) == 1:
        return [_run_one(first, first.items)]
    flat = [item for req in batch for item in req.items]
    whole = _run_one(first, flat)
    if isinstance(whole, Exception):
        return [_run_one(req, req.items) for req in batch]
    out, i = [], 0
    for req in batch:
        out.append(whole[i : i + len(req.items)])
        i += len(req.items)
    return out
