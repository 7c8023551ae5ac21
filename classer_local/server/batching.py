"""Micro-batching: concurrent requests for the same classifier share one model call.

Each (classifier, op, threshold) has a lane. The first request into an idle lane starts
its drain task, which waits up to ``max_wait_ms`` for company (or until ``max_items``
are queued), then runs every queued request as one ``Classifier.run`` in the model
thread. While that call runs, new requests queue up and go out together in the next
call, so under load batches grow by themselves and throughput approaches
``classify_batch``; an idle server adds at most ``max_wait_ms`` to a request.

All model work goes through one single-thread executor: the event loop never runs a
model, and models never race each other for the CPU.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Lane:
    clf: Any
    op: str
    threshold: float | None
    pending: list[tuple[list[Any], asyncio.Future[list[Any]]]] = field(default_factory=list)
    size: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass
class BatchStats:
    calls: int = 0
    requests: int = 0
    items: int = 0

    def to_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "requests": self.requests,
            "items": self.items,
            "requests_per_call": round(self.requests / self.calls, 3) if self.calls else 0.0,
        }


class MicroBatcher:
    def __init__(
        self, max_wait_ms: float = 2.0, max_items: int = 256, executor: ThreadPoolExecutor | None = None
    ) -> None:
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.max_items = max(1, max_items)
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="classer-model")
        self._lanes: dict[tuple[int, str, float | None], _Lane] = {}
        self.stats = BatchStats()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the model thread, with the caller's context variables."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.executor, ctx.run, fn, *args)

    async def submit(self, clf: Any, op: str, threshold: float | None, items: list[Any]) -> list[Any]:
        """``clf.run(items, op, threshold)``, batched with whatever else is queued for ``clf``."""
        key = (id(clf), op, threshold)
        lane = self._lanes.get(key)
        if lane is None or lane.clf is not clf:
            lane = self._lanes[key] = _Lane(clf, op, threshold)
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        lane.pending.append((items, fut))
        lane.size += len(items)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(key, lane))
        elif lane.size >= self.max_items:
            lane.full.set()
        return await fut

    async def _drain(self, key: tuple[int, str, float | None], lane: _Lane) -> None:
        first = True
        try:
            while lane.pending:
                if first and lane.size < self.max_items and self.max_wait_s:
                    try:
                        await asyncio.wait_for(lane.full.wait(), self.max_wait_s)
                    except TimeoutError:
                        pass
                first = False
                lane.full.clear()
                take, n = 0, 0
                while take < len(lane.pending) and (
                    take == 0 or n + len(lane.pending[take][0]) <= self.max_items
                ):
                    n += len(lane.pending[take][0])
                    take += 1
                units, lane.pending = lane.pending[:take], lane.pending[take:]
                lane.size -= n
                outcomes = await self.call(
                    _run_units, lane.clf, lane.op, lane.threshold, [u[0] for u in units]
                )
                self.stats.calls += 1
                self.stats.requests += len(units)
                self.stats.items += n
                for (_, fut), outcome in zip(units, outcomes):
                    if fut.done():  # the client went away
                        continue
                    if isinstance(outcome, BaseException):
                        fut.set_exception(outcome)
                    else:
                        fut.set_result(outcome)
        except BaseException as exc:  # cancelled at shutdown: fail whoever is still waiting
            for _, fut in lane.pending:
                if not fut.done():
                    fut.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("server shutting down")
                    )
            raise
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _run_units(clf: Any, op: str, threshold: float | None, units: list[list[Any]]) -> list[Any]:
    """One ``run`` over every unit's items; if it fails, each unit alone, so one bad input fails one request."""
    flat = [item for unit in units for item in unit]
    try:
        results = clf.run(flat, op, threshold)
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request, which re-raises it
        if len(units) == 1:
            return [exc]
        return [_run_units(clf, op, threshold, [unit])[0] for unit in units]
    out, i = [], 0
    for unit in units:
        out.append(results[i : i + len(unit)])
        i += len(unit)
    return out
