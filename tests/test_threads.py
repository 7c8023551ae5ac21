"""The thread policy: caps from the environment, one thread for small work, the CPU meter sees
real neighbours, and the setting lands on the thread that runs the model."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from classer_local import threads


def test_caps_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("CLASSER_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.max_threads() == threads.cores() >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.max_threads() == 3
    monkeypatch.setenv("CLASSER_THREADS", "1")  # ours wins over OpenMP's
    assert threads.max_threads() == 1
    assert threads.choose(10**9) == 1  # pinned, however large the work
    monkeypatch.setenv("CLASSER_THREADS", "junk")
    assert threads.max_threads() == 3


def test_small_work_runs_on_one_thread(monkeypatch):
    monkeypatch.delenv("CLASSER_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose(0) == threads.choose(threads.SMALL_WORK - 1) == 1
    assert 1 <= threads.choose(10**9) <= threads.max_threads()


def test_the_meter_sees_cpu_bound_neighbours(monkeypatch):
    monkeypatch.delenv("CLASSER_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = threads.cores() + 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        seen = 0.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a wait for the meter's window, not a timed assertion
            time.sleep(threads.SAMPLE_S)
            seen = threads.others_busy()
            if seen >= threads.cores() - 0.5:
                break
        assert seen >= threads.cores() - 0.5, seen
        assert threads.busy()
        assert threads.choose(10**9) == 1  # no free core: large work runs on one thread too
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_the_setting_lands_on_the_thread_that_runs_the_model():
    torch = pytest.importorskip("torch")
    seen: dict[str, int] = {}
    ready, go = threading.Event(), threading.Event()

    def model_thread() -> None:
        torch.get_num_threads()  # this thread has started torch's threading (it syncs once, then keeps its own)
        torch.set_num_threads(2)  # and runs on two threads
        ready.set()
        go.wait(30)
        with threads.for_work(1):
            seen["inside"] = torch.get_num_threads()

    t = threading.Thread(target=model_thread)
    t.start()
    ready.wait(30)
    with threads.for_work(1):  # another thread asks for one thread first
        seen["main"] = torch.get_num_threads()
    go.set()
    t.join(30)
    # torch keeps the count per OS thread: a process-wide "already set" would have left the
    # model thread on two threads.
    assert seen == {"main": 1, "inside": 1}


# OpenBLAS's count is process-wide, and earlier tests leave threads behind (a job's engine, a
# batcher) that may be inside single_blas while these run: each check runs in a fresh process.
_BLAS_PRELUDE = (
    "import threading, numpy, threadpoolctl\n"
    "from classer_local import threads\n"
    "def blas():\n"
    "    return sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'})\n"
    "if not blas():\n"
    "    print('no BLAS'); raise SystemExit\n"
    "threadpoolctl.threadpool_limits(limits=2, user_api='blas')  # as on a 2-core box without OMP_NUM_THREADS\n"
    "before = blas()  # what the BLAS libraries took of that (a capped build may stay at 1)\n"
)


def _blas_check(body: str) -> str:
    pytest.importorskip("threadpoolctl")
    out = subprocess.run([sys.executable, "-c", _BLAS_PRELUDE + body], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    if out == "no BLAS":
        pytest.skip("no BLAS library loaded")
    return out


def test_single_blas_holds_numpy_to_one_thread_and_restores_it():
    out = _blas_check(
        "with threads.single_blas():\n"
        "    inside = blas()\n"
        "print(inside, blas() == before)\n"
    )
    assert out == "[1] True"


def test_single_blas_bodies_at_once_share_one_limit():
    """Bodies in several threads overlap (A in, B in, A out, B out): the limit holds until the last
    is out, then the count from before the first comes back (not the 1 that B saw on its way in).
    Any thread may set it: threadpoolctl alone obeys only the first thread that limited OpenBLAS."""
    out = _blas_check(
        "a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()\n"
        "seen = {}\n"
        "def a():\n"
        "    with threads.single_blas():\n"
        "        a_in.set(); b_in.wait(10)\n"
        "    a_out.set()\n"
        "def b():\n"
        "    a_in.wait(10)\n"
        "    with threads.single_blas():\n"
        "        b_in.set(); a_out.wait(10); seen['b'] = blas()\n"
        "workers = [threading.Thread(target=a), threading.Thread(target=b)]\n"
        "[w.start() for w in workers]; [w.join(20) for w in workers]\n"
        "print(seen['b'], blas() == before)\n"
    )
    assert out == "[1] True"


_FAST_TICKS = """
import json, os, threading
import classer_local as cl

labels = ["World", "Sports", "Business", "Sci/Tech"]
texts = [f"Story {i}: the team won the cup final and shares rose" for i in range(1000)]
cl.classify_batch(texts=texts, labels=labels, priority="fast", cache=False)

def ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out

me = str(threading.get_native_id())
before = ticks()
for _ in range(30):
    cl.classify_batch(texts=texts, labels=labels, priority="fast", cache=False)
after = ticks()
print(json.dumps({"own": after[me] - before.get(me, 0),
                  "others": sum(v - before.get(k, 0) for k, v in after.items() if k != me)}))
"""


def test_fast_tier_scoring_keeps_blas_to_its_own_thread(tmp_path):
    """A fast-tier batch uses one CPU core: OpenBLAS's spinning workers burnt a second one. In a
    fresh process, so no thread an earlier test left behind is counted."""
    import json
    import os

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc")
    env = dict(os.environ, CLASSER_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _FAST_TICKS], capture_output=True, text=True, timeout=300,
                         check=True, env=env).stdout.strip().splitlines()[-1]
    got = json.loads(out)
    assert got["own"] > 0
    assert got["others"] <= max(2, got["own"] // 5), got


def test_model_calls_at_once_share_the_free_cores(monkeypatch):
    monkeypatch.delenv("CLASSER_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= threads.choose(10**9, sharing=2) <= max(1, int(threads.cores() / 2 + 0.5))
    assert threads.choose(10**9, sharing=4 * threads.cores()) == 1  # many calls at once: one thread each
    assert threads.choose(0, sharing=2) == 1
    # for_work counts the calls inside it: a call inside another runs on its share.
    with threads.for_work(10**9):
        with threads.for_work(10**9) as n:
            assert n <= max(1, int(threads.cores() / 2 + 0.5))


def test_a_sleeping_pool_takes_its_share_of_all_cores(monkeypatch):
    monkeypatch.setenv("CLASSER_THREADS", "4")
    monkeypatch.setattr(threads, "others_busy", lambda: 8.0)  # a machine far past busy: no matter here
    assert threads.share() == 4  # not inside a model call: all of them, even for one short text
    with threads.for_work(1):
        assert threads.share() == 4
        with threads.for_work(1):
            assert threads.share() == 2  # two calls at once share them
    monkeypatch.setenv("CLASSER_THREADS", "1")
    assert threads.share() == 1


def test_a_long_call_rechooses_when_neighbours_leave(monkeypatch):
    """Chosen beside a busy neighbour, a long call (tuning) gets the cores back once it is gone."""
    torch = pytest.importorskip("torch")
    if threads.cores() < 2:
        pytest.skip("needs two cores")
    monkeypatch.setenv("CLASSER_THREADS", "2")
    busy = [float(threads.cores())]
    monkeypatch.setattr(threads, "others_busy", lambda: busy[0])
    with threads.for_work(10**6) as n:
        assert n == 1 and torch.get_num_threads() == 1
        busy[0] = 0.0  # the neighbour ended
        assert threads.rechoose(10**6) == 2
        assert torch.get_num_threads() == 2


def test_a_serving_process_pins_blas_to_one_thread():
    """``serve`` pins numpy's BLAS once (no setting around every call); single_blas then leaves it."""
    pytest.importorskip("threadpoolctl")
    code = (
        "import numpy, threadpoolctl\n"
        "from classer_local import threads\n"
        "blas = lambda: sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'})\n"
        "threadpoolctl.threadpool_limits(2, user_api='blas')\n"
        "threads.pin_single_blas()\n"
        "with threads.single_blas():\n"
        "    inside = blas()\n"
        "print(inside, blas())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    if out.strip() == "[] []":
        pytest.skip("no BLAS library loaded")
    assert out.strip() == "[1] [1]"


def test_the_meter_never_reads_the_load_average_where_proc_stat_exists(monkeypatch):
    """The load average counts, for a minute, a process that has just ended and this one's own
    work: the meter takes a short window of its own first, and an old window still averages."""
    if threads._busy_seconds() is None:
        pytest.skip("no /proc/stat")

    def load_average() -> tuple[float, float, float]:
        raise AssertionError("read the load average")

    monkeypatch.setattr(threads.os, "getloadavg", load_average)
    meter = threads._Meter()
    first = meter.others()  # no window yet: a short one now
    assert 0.0 <= first <= threads.cores() + 0.5
    meter._at -= 60.0  # a window a minute old (a long call asking again)
    assert 0.0 <= meter.others() <= threads.cores() + 0.5
