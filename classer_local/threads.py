"""The thread policy for model work: chosen per call, set in this one place.

torch's intra-op threads spin while they wait for each other; on a machine that also does
other work a 2-thread encode of one sentence measured 560-620 ms where one thread took
9-18 ms. So: small inputs always run on one thread (threads cannot help a single sentence),
and large batches use as many threads as there are cores other processes leave free.
``CLASSER_THREADS`` (or ``OMP_NUM_THREADS``) caps the count; ``CLASSER_THREADS=1`` pins it.

How busy the machine is comes from ``/proc/stat`` (all CPU time) minus this process's own
CPU time, over the last quarter second or more: it sees neighbours within a call or two,
where the 1-minute load average takes a minute and counts our own threads too.

torch keeps the thread count per OS thread once a thread has run an op (OpenMP's setting is
per thread), so the count is set by the thread that runs the model, on every call whose
choice differs from that thread's current setting.

Example:
    >>> with for_work(1) as n:
    ...     n
    1
    >>> max_threads() >= 1
    True
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SMALL_WORK = 2048  # tokens: below this a second thread gains little, and loses a lot under load
SAMPLE_S = 0.25  # shortest window for the CPU meter
FIRST_SAMPLE_S = 0.05  # the meter's first window in a process (5 ticks of /proc/stat a core)


def max_threads() -> int:
    """The most threads model work may use: ``CLASSER_THREADS``, else ``OMP_NUM_THREADS``, else the cores."""
    for name in ("CLASSER_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip()
        if raw.isdigit() and int(raw) > 0:
            return int(raw)
    return cores()


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    # user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    ticks = [int(x) for x in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / _CLK_TCK


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


try:
    _CLK_TCK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, OSError, ValueError):
    _CLK_TCK = 100.0


class _Meter:
    """Cores other processes kept busy lately."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._busy = 0.0
        self._own = 0.0
        self._others = 0.0

    def others(self) -> float:
        with self._lock:
            now = time.monotonic()
            age = now - self._at
            if self._at and age < SAMPLE_S:
                return self._others
            busy = _busy_seconds()
            own = _own_seconds()
            if busy is not None and not self._at:
                # No window yet: a short one now. The load average would count a process that has
                # just ended (or this one's own start) for a minute: a tuning run started right
                # after another job stayed on one of two free cores.
                time.sleep(FIRST_SAMPLE_S)
                self._at, self._busy, self._own = now, busy, own
                now, busy, own = time.monotonic(), _busy_seconds(), _own_seconds()
                age = now - self._at
            if busy is not None and self._at:
                # An old window (a long call that asks every half minute) still averages what the
                # others did since: far closer to now than the load average, which counts us too.
                self._others = max(0.0, (busy - self._busy) - (own - self._own)) / age
            else:  # no /proc/stat
                try:
                    self._others = os.getloadavg()[0]
                except OSError:
                    self._others = 0.0
            self._at, self._busy, self._own = now, busy or 0.0, own
            return self._others


_meter = _Meter()


def others_busy() -> float:
    """How many cores other processes have kept busy lately (0.0 on an idle machine)."""
    return _meter.others()


def busy() -> bool:
    """Whether other work leaves less than one core free."""
    return cores() - others_busy() < 1.0


def choose(work: int, sharing: int = 1) -> int:
    """Threads for a call that processes about ``work`` tokens: one for small work, else its share
    of the free cores when ``sharing`` model calls run at once (at least one, at most ``max_threads()``)."""
    top = max_threads()
    if top == 1 or work < SMALL_WORK:
        return 1
    free = (cores() - others_busy()) / max(1, sharing)
    return max(1, min(top, int(free + 0.5)))


def share() -> int:
    """Threads for a pool that sleeps while it waits (ONNX Runtime with spinning off): all that
    ``max_threads()`` allows, shared between the model calls running at once, whatever the work
    and however busy the machine. ``choose``'s one-thread rules exist for torch's spinning
    threads; a sleeping pool loses nothing to them. Measured with ``speed.py --only busy``, three
    runs: single ``classify`` p50 beside 3 CPU-bound processes 24-32 ms this way against 39-48 ms
    with ``choose`` and 38-42 ms on one thread; quiet 16-19 ms against 17-21 ms."""
    with _running_lock:
        sharing = max(1, _running[0])
    return max(1, max_threads() // sharing)


def _set(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is None:  # nothing has imported torch (numpy backends, ONNX Runtime): no setting to keep
        return
    if torch.get_num_threads() != n:  # this OS thread's own setting (anyone may have changed it)
        torch.set_num_threads(n)


_blas: list[object] = []  # [threadpoolctl controller, len(sys.modules) when it scanned the libraries]
_blas_users: list[Any] = [0, []]  # [bodies inside single_blas now, [(BLAS library, its count before)]]
_blas_lock = threading.Lock()
_blas_pinned = [False]  # pin_single_blas was called: one thread for good


@contextmanager
def single_blas() -> Iterator[None]:
    """numpy's BLAS on one thread for the body: scoring is (n, d) @ (d, labels), far too small to
    share. OpenBLAS's idle threads spin after each call: on a busy machine a 16 ms scoring step
    took up to 256 ms, and on a quiet one the fast tier's ``classify_batch`` burnt a second core
    (1.9 CPU-seconds per wall second) for no speed. OpenBLAS's count is process-wide, so bodies
    running at once in several threads share one limit: the first in sets it, the last out puts
    back what was there. A no-op without threadpoolctl, or after ``pin_single_blas``. Torch's own
    kernels are not affected."""
    if _blas_pinned[0]:
        if _blas[1] != len(sys.modules):  # a library imported since may have brought its own BLAS
            pin_single_blas()
        yield
        return
    with _blas_lock:
        if _blas_users[0] == 0:
            _blas_users[1] = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
            for lib, _ in _blas_users[1]:
                _set_blas(lib, 1)
        _blas_users[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users[0] -= 1
            if _blas_users[0] == 0:
                for lib, count in _blas_users[1]:
                    _set_blas(lib, count)
                _blas_users[1] = []


def pin_single_blas() -> None:
    """numpy's BLAS on one thread for the rest of the process: for a process that only serves
    (``classer-local serve``). Setting the count costs ~0.1 ms each way; a server sets it once
    instead of around every model call."""
    with _blas_lock:
        for lib in _blas_libraries():
            _set_blas(lib, 1)
        _blas_pinned[0] = True


def _set_blas(lib: Any, n: int | None) -> None:
    # threadpoolctl lets only the first Python thread that limited OpenBLAS change it again (it
    # ignores the rest); our bodies are counted under one lock, so any thread may set it.
    if n is not None:
        getattr(lib, "_real_set_num_threads", lib.set_num_threads)(n)


def _blas_libraries() -> list[Any]:
    # The controller scans the loaded libraries once; a package imported later (OCR's onnxruntime,
    # opencv) may load another BLAS, so scan again whenever more modules are loaded than at the scan.
    if not _blas or (_blas[0] is not None and _blas[1] != len(sys.modules)):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas[:] = [None, 0]
        else:
            _blas[:] = [ThreadpoolController(), len(sys.modules)]
    controller = _blas[0]
    if controller is None:
        return []
    return [lib for lib in controller.lib_controllers if lib.user_api == "blas"]  # type: ignore[attr-defined]


_running = [0]  # model calls in this process right now (the server runs two at once)
_running_lock = threading.Lock()


def rechoose(work: int) -> int:
    """Inside ``for_work``, on the same thread: choose again. A call that runs for minutes
    (tuning) sees neighbours come and go; chosen once, a count taken beside a process that then
    ended kept a 2-core box's tuning on one thread for its whole run."""
    with _running_lock:
        sharing = max(1, _running[0])
    n = choose(work, sharing)
    _set(n)
    return n


@contextmanager
def for_work(work: int) -> Iterator[int]:
    """Run the body with ``choose(work)`` threads (set for the calling thread, where torch keeps it);
    model calls running at once in this process share the free cores between them. A long body
    calls ``rechoose`` now and then."""
    with _running_lock:
        _running[0] += 1
    try:
        yield rechoose(work)
    finally:
        with _running_lock:
            _running[0] -= 1
