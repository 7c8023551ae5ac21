"""Batch-job throughput and memory: rows/s and peak RSS for NDJSON inputs of growing size.

For each size, a generated NDJSON file (real AG News sentences when ``../shared/evaldata``
is there, else synthetic ones) is run as a job in a fresh process, and the same process
then runs ``classify_batch`` (1,000 rows a call, no cache) on the file's first rows, so
the two rates come from the same machine state. Peak RSS is sampled from /proc while the
job runs: it must stay flat as the file grows (the input is streamed).

    python benchmarks/jobs.py                       # 100 MB and 1 GB, fast tier
    python benchmarks/jobs.py --sizes 5 --priority standard
    python benchmarks/jobs.py --sizes 10,100 --kind tag --workdir /tmp/jobs-bench
    python benchmarks/jobs.py --sizes "" --ray 10   # local engine vs Ray, 1 and 2 workers, 10 MB

``--ray MB`` (needs ``pip install 'classer-local[ray]'``) runs one more fresh process that
starts a local Ray (``num_cpus`` = this machine's CPUs) and runs the same input as a local
job, then as a Ray job with 1 and with 2 workers, one after the other. "rows/s" is the
whole job (a Ray job includes starting its actors and loading the model in each);
"steady rows/s" counts from the first checkpointed rows to the end.

Generated files go to ``--workdir`` (a temporary folder by default), never the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AG_NEWS = REPO.parent / "shared" / "evaldata" / "ag_news" / "test.jsonl"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def rss_mb() -> float:
    """Current resident set size, from psutil when installed, else /proc."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class PeakRSS:
    """Samples RSS every 50 ms on a thread; ``peak`` is the largest value seen."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())


def sentences() -> list[str]:
    if AG_NEWS.exists():
        with open(AG_NEWS, encoding="utf-8") as fh:
            texts = [json.loads(line)["text"] for line in fh if line.strip()]
        if texts:
            return texts
    rng = random.Random(0)
    words = ("invoice refund crash login quote demo team price server error update plan market match "
             "election vote storm launch rocket chip stocks").split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) for _ in range(5000)]


def generate(path: Path, size_mb: float) -> int:
    """Write NDJSON rows until the file holds ``size_mb`` MB; returns the row count."""
    texts = sentences()
    target = int(size_mb * 1_000_000)
    n = written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            line = json.dumps({"id": f"row-{n}", "text": texts[n % len(texts)]}, ensure_ascii=False) + "\n"
            fh.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return n


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import classer_local as cl

    src = Path(args.worker)
    rss_start = rss_mb()
    clf = cl.Classifier(LABELS, priority=args.priority)
    clf.classify_items([cl.Item("warm up the model")], cache=False)
    rss_warm = rss_mb()

    t0 = time.perf_counter()
    job = cl.jobs.create(src, labels=LABELS, priority=args.priority, kind=args.kind,
                         chunk_size=args.chunk_size)
    create_s = time.perf_counter() - t0
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        job.start(progress=args.progress)
        job_s = time.perf_counter() - t0
    d = job.to_dict()
    assert d["status"] == "completed", d

    # classify_batch on the same rows, same process, for comparison.
    texts: list[str] = []
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) >= args.compare_rows:
                break
    call = cl.tag_batch if args.kind == "tag" else cl.classify_batch
    t0 = time.perf_counter()
    for i in range(0, len(texts), 1000):
        call(texts=texts[i : i + 1000], labels=LABELS, priority=args.priority, cache=False)
    batch_s = time.perf_counter() - t0
    print(json.dumps({
        "size_mb": round(src.stat().st_size / 1e6, 1),
        "rows": d["processed"],
        "create_s": round(create_s, 2),
        "job_s": round(job_s, 2),
        "job_rows_s": round(d["processed"] / job_s, 1),
        "batch_rows": len(texts),
        "batch_rows_s": round(len(texts) / batch_s, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_warm_mb": round(rss_warm, 1),
        "job_peak_rss_mb": round(peak.peak, 1),
        "results_mb": round(job.results_path.stat().st_size / 1e6, 1),
    }))


class Rate:
    """Samples ``job.processed`` on a thread: the rate from the first rows written to the end."""

    def __init__(self, job: Any) -> None:
        self.job, self.first = job, None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            n = self.job.processed
            if n and self.first is None:
                self.first = (time.perf_counter(), n)

    def __enter__(self) -> Rate:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.end = (time.perf_counter(), self.job.processed)

    def steady(self) -> float | None:
        if self.first is None or self.end[0] - self.first[0] < 0.05:
            return None
        return (self.end[1] - self.first[1]) / (self.end[0] - self.first[0])


def ray_worker(args: argparse.Namespace) -> None:
    """Local engine, then Ray with 1 and 2 workers, on one input in this (fresh) process."""
    import ray

    import classer_local as cl

    src = Path(args.ray_worker)
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0
    clf = cl.Classifier(LABELS, priority=args.priority)
    clf.classify_items([cl.Item("warm up the model")], cache=False)
    runs: list[dict[str, Any]] = []
    for engine, workers in (("local", None), ("ray", 1), ("ray", 2)):
        extra: dict[str, Any] = {"engine": "ray", "num_workers": workers} if engine == "ray" else {}
        job = cl.jobs.create(src, labels=LABELS, priority=args.priority, kind=args.kind,
                             chunk_size=args.chunk_size, **extra)
        with Rate(job) as rate:
            t0 = time.perf_counter()
            job.start()
            job_s = time.perf_counter() - t0
        d = job.to_dict()
        assert d["status"] == "completed", d
        steady = rate.steady()
        runs.append({"engine": engine, "workers": workers or "-", "rows": d["processed"],
                     "job_s": round(job_s, 2), "rows_s": round(d["processed"] / job_s, 1),
                     "steady_rows_s": None if steady is None else round(steady, 1)})
        if engine == "local":
            expected = [r.get("label") for r in job.results()]
        else:
            assert [r.get("label") for r in job.results()] == expected, "Ray labels differ from local"
        job.delete()
    ray.shutdown()
    print(json.dumps({"size_mb": round(src.stat().st_size / 1e6, 1), "ray_init_s": round(init_s, 2),
                      "runs": runs}))


def ray_section(args: argparse.Namespace, work: Path) -> None:
    src = work / f"input-{args.ray:g}MB.ndjson"
    if not src.exists():
        n = generate(src, args.ray)
        print(f"# generated {src.name}: {n} rows", flush=True)
    home = work / "home-ray"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "CLASSER_HOME": str(home)}
    cmd = [sys.executable, __file__, "--ray-worker", str(src), "--priority", args.priority,
           "--kind", args.kind, "--chunk-size", str(args.chunk_size)]
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"# Ray section: {res['size_mb']} MB, {os.cpu_count()} CPUs, local Ray started in {res['ray_init_s']} s; "
          "same input, one run after the other; Ray labels == local labels")
    print(f"{'engine':>7} {'workers':>8} {'rows':>9} {'job s':>7} {'rows/s':>9} {'steady rows/s':>14}")
    for r in res["runs"]:
        print(f"{r['engine']:>7} {r['workers']:>8} {r['rows']:>9} {r['job_s']:>7} {r['rows_s']:>9} "
              f"{r['steady_rows_s'] if r['steady_rows_s'] is not None else '-':>14}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", help="input sizes in MB (default 100,1000)")
    ap.add_argument("--priority", default="fast", choices=["fast", "standard"])
    ap.add_argument("--kind", default="classify", choices=["classify", "tag"])
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--compare-rows", type=int, default=20_000, help="rows for the classify_batch comparison")
    ap.add_argument("--workdir", default=None, help="inputs and CLASSER_HOME (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--ray", type=float, default=None, metavar="MB",
                    help="also compare the local engine with Ray (1 and 2 workers) on an MB-sized input")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ray-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.ray_worker:
        ray_worker(args)
        return

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="classer-jobs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.platform()} | {os.cpu_count()} CPUs | python {platform.python_version()} | "
          f"priority={args.priority} kind={args.kind} chunk={args.chunk_size} | workdir {work}")
    rows = []
    try:
        for size in [float(s) for s in args.sizes.split(",") if s.strip()]:
            src = work / f"input-{size:g}MB.ndjson"
            if not src.exists():
                t0 = time.perf_counter()
                n = generate(src, size)
                print(f"# generated {src.name}: {n} rows in {time.perf_counter() - t0:.1f}s", flush=True)
            home = work / f"home-{size:g}"
            shutil.rmtree(home, ignore_errors=True)
            env = {**os.environ, "CLASSER_HOME": str(home)}
            cmd = [sys.executable, __file__, "--worker", str(src), "--priority", args.priority,
                   "--kind", args.kind, "--chunk-size", str(args.chunk_size),
                   "--compare-rows", str(args.compare_rows)]
            if args.progress:
                cmd.append("--progress")
            out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(home, ignore_errors=True)  # results files are as large as the input
        if args.ray:
            ray_section(args, work)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if not rows:
        return
    print()
    print(f"{'size MB':>8} {'rows':>9} {'job rows/s':>11} {'batch rows/s':>13} {'job/batch':>9} "
          f"{'peak RSS MB':>12} {'warm RSS MB':>12}")
    for r in rows:
        print(f"{r['size_mb']:>8} {r['rows']:>9} {r['job_rows_s']:>11} {r['batch_rows_s']:>13} "
              f"{r['job_rows_s'] / r['batch_rows_s']:>9.2f} {r['job_peak_rss_mb']:>12} "
              f"{r['rss_warm_mb']:>12}")


if __name__ == "__main__":
    main()
