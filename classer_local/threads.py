"""The thread policy for model work: set once per process, chosen per call.

torch's intra-op threads spin while they wait for each other; on a machine that also does
other work a 2-thread encode of one sentence measured 560-620 ms where one thread took
9-18 ms. So: small inputs always run on one thread (threads cannot help a single sentence),
large batches use every allowed core, but only while the machine has cores to spare.
``CLASSER_THREADS`` (or ``OMP_NUM_THREADS``) caps the count; ``CLASSER_THREADS=1`` pins it.

Example:
    >>> with for_work(1):
    ...     pass
    >>> max_threads() >= 1
    True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SMALL_WORK = 2048  # tokens: below this one thread is as fast as two, and safe under load

_lock = threading.Lock()
_current: int | None = None


def max_threads() -> int:
    """The most threads model work may use: ``CLASSER_THREADS``, else ``OMP_NUM_THREADS``, else the cores."""
    for name in ("CLASSER_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip()
        if raw.isdigit() and int(raw) > 0:
            return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def busy() -> bool:
    """Whether other work already keeps every core busy (1-minute load average)."""
    try:
        return os.getloadavg()[0] >= max_threads() + 1.0
    except OSError:
        return False


def choose(work: int) -> int:
    """Threads for a call that processes about ``work`` tokens."""
    top = max_threads()
    if top == 1 or work < SMALL_WORK or busy():
        return 1
    return top


def _set(n: int) -> None:
    global _current
    if _current == n:
        return
    import torch

    torch.set_num_threads(n)
    _current = n


@contextmanager
def for_work(work: int) -> Iterator[int]:
    """Run the body with the thread count ``choose(work)`` (torch's setting is per process,
    so concurrent callers are serialised on it only while they set it)."""
    n = choose(work)
    with _lock:
        _set(n)
    yield n
