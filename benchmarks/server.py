"""Server throughput and latency on loopback against in-process ``classify_batch``, same run.

Starts ``classer-local serve --no-auth`` in a subprocess (fresh CLASSER_HOME). Each client has
its own label set (a seeded subset of Banking77's intents), so the server cannot batch by
classifier: it has to share the encode across label sets. For 1, 16 and 64 concurrent
clients it sends single-text ``POST /v1/classify`` requests (Banking77 test queries, request
cache off), bounded by ``--requests`` and ``--seconds`` per level, and reports texts/s,
p50/p95 latency and what each model call served. Every label set is used once before the
clock starts (prototypes built, as a long-running server would have them). Then the server
stops and this process scores each level's (text, label set) pairs itself, one batch per
label set, and every text against one label set with ``classify_batch`` (the plain encode
ceiling), so both ceilings come from the same run and machine.

Also measured in the same run: seconds from spawning ``serve`` to ``/health`` ready (the
models preloaded before the port opens) and the first request's latency after that; and a
batch job (``POST /v1/batch``, ``--job-rows`` Banking77 training queries) run alone, then
beside the 16-client level (or the largest level below it): the requests' texts/s and
p50/p95 and the job's rows/s. Writes
``benchmarks/SERVER.md`` and ``benchmarks/results/server.json`` (``--md``, ``--out``).

    python benchmarks/server.py                          # standard tier, 1,16,64 clients
    python benchmarks/server.py --priority fast --requests 600

The clients share the machine with the server: on a 2-core box their CPU use is part of what
the numbers measure (reported per request beside the server's). Each client is its own
``httpx.AsyncClient`` with one keep-alive connection, as separate callers are; one client pool
shared by all 64 workers cost the load generator more CPU than the server and held the 64-client
level at 60 texts/s. Load averages are printed with each level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BANKING = REPO.parent / "shared" / "evaldata" / "banking77"


def queries(split: str = "test") -> list[str]:
    """Banking77 queries of ``split``, shuffled (seeded); distinct so nothing is a cache hit."""
    with open(BANKING / f"{split}.jsonl", encoding="utf-8") as fh:
        rows = list(dict.fromkeys(json.loads(line)["text"] for line in fh if line.strip()))
    random.Random(0).shuffle(rows)
    return rows


def label_sets(n: int, seed: int = 0) -> list[list[str]]:
    """``n`` distinct label sets of 6 to 20 Banking77 intent names each."""
    names = json.loads((BANKING / "labels.json").read_text())
    names = list(names.values()) if isinstance(names, dict) else list(names)
    names = [str(x).replace("_", " ") for x in names]
    rng = random.Random(seed)
    out: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    while len(out) < n:
        s = rng.sample(names, rng.randint(6, 20))
        if tuple(sorted(s)) not in seen:
            seen.add(tuple(sorted(s)))
            out.append(s)
    return out


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def level(url: str, work: list[list[dict[str, Any]]], seconds: float, pid: int | None = None) -> dict[str, Any]:
    """One client per list in ``work``, each sending its own requests one after another; ``pid``:
    the server's process, whose CPU time per request is reported (and this process's, the clients')."""
    import httpx

    lat: list[float] = []
    sent: list[tuple[str, list[str]]] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    clients = len(work)
    # One client (one keep-alive connection) per worker, as separate callers have: one pool shared
    # by 64 workers cost the load generator ~4x the server's CPU per request on this 2-core box.
    own = [httpx.AsyncClient(base_url=url, timeout=300) for _ in work]
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def worker(mine: list[dict[str, Any]], mine_client: Any) -> None:
            nonlocal errors
            for body in mine:
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                r = await mine_client.post("/v1/classify", json=body)
                lat.append((time.perf_counter() - t0) * 1000)
                sent.append((body["text"], body["labels"]))
                if r.status_code != 200:
                    errors += 1

        before = (await client.get("/health")).json()["batching"]
        cpu0 = cpu_seconds(pid) if pid else None
        own_cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w, c) for w, c in zip(work, own)))
        wall = time.perf_counter() - t0
        own_cpu = time.process_time() - own_cpu0
        cpu1 = cpu_seconds(pid) if pid else None
        after = (await client.get("/health")).json()["batching"]
        for c in own:
            await c.aclose()
    calls = after["calls"] - before["calls"]
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "seconds": round(wall, 2),
        "texts_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(_pct(lat, 0.5), 1),
        "p95_ms": round(_pct(lat, 0.95), 1),
        "requests_per_model_call": round((after["requests"] - before["requests"]) / calls, 2) if calls else 0,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "server_cpu_ms_per_request": round(1000 * (cpu1 - cpu0) / max(len(lat), 1), 2)
        if cpu0 is not None and cpu1 is not None else None,
        "client_cpu_ms_per_request": round(1000 * own_cpu / max(len(lat), 1), 2),
        "sent": sent,  # popped by the caller, as is "lat"
        "lat": lat,
    }


def start_server(home: Path, port: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], float]:
    """The server process, and the seconds from spawning it to ``/health`` answering ready."""
    import httpx

    t0 = time.perf_counter()
    env = {**os.environ, "CLASSER_HOME": str(home), "CLASSER_USAGE": os.environ.get("CLASSER_USAGE", "1")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "classer_local.cli", "serve", "--no-auth", "--port", str(port), "--log-level",
         "warning", *extra],
        env=env,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.2)


def run_job(url: str, texts: list[str], labels: list[str], priority: str,
            beside: Any = None) -> tuple[dict[str, Any], Any]:
    """A batch job of ``texts`` through ``POST /v1/batch``, started, then ``beside()`` (a level of
    clients, or None) run while it goes; returns the job's rows/s and what ``beside`` returned."""
    import httpx

    ndjson = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)).encode()
    with httpx.Client(base_url=url, timeout=300) as client:
        r = client.post("/v1/batch", params={"labels": ",".join(labels), "priority": priority}, content=ndjson,
                        headers={"content-type": "application/x-ndjson"})
        r.raise_for_status()
        job = r.json()["id"]
        t0 = time.perf_counter()
        client.post(f"/v1/batch/{job}/start").raise_for_status()
        out = beside() if beside is not None else None
        while (status := client.get(f"/v1/batch/{job}").json())["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    return {"rows": len(texts), "status": status["status"], "seconds": round(wall, 2),
            "rows_per_s": round(len(texts) / wall, 1), "load_avg_1min": round(os.getloadavg()[0], 2)}, out


def in_process(pairs: list[tuple[str, list[str]]], priority: str, one_set: bool = False) -> dict[str, Any]:
    """The same (text, label set) pairs in process, one ``classify`` batch per label set (<= 1,000 texts),
    each label set's ``Classifier`` held here (so no LRU eviction rebuilds one); ``one_set``: every
    text against the first label set through ``classify_batch`` (the plain encode ceiling)."""
    import classer_local as cl

    groups: dict[tuple[str, ...], list[str]] = {}
    for text, labels in pairs:
        groups.setdefault(tuple(pairs[0][1] if one_set else labels), []).append(text)
    held = {labels: cl.Classifier(list(labels), priority=priority, allow_paths=False) for labels in groups}
    for labels, texts in groups.items():  # load the model and build prototypes, as the server had them
        held[labels].classify(texts[:2], cache=False)
        if one_set:
            cl.classify_batch(texts=texts[:2], labels=list(labels), priority=priority, cache=False)
    t0 = time.perf_counter()
    p0 = time.process_time()
    n = 0
    for labels, texts in groups.items():
        for start in range(0, len(texts), 1000):
            chunk = texts[start : start + 1000]
            if one_set:
                cl.classify_batch(texts=chunk, labels=list(labels), priority=priority, cache=False)
            else:
                held[labels].classify(chunk, cache=False)
            n += len(chunk)
    wall = time.perf_counter() - t0
    return {"texts": n, "label_sets": len(groups), "seconds": round(wall, 2), "texts_per_s": round(n / wall, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2), "cpu_ms_per_text": round(1000 * (time.process_time() - p0) / max(n, 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--priority", default="standard", choices=["standard", "fast"])
    ap.add_argument("--levels", default="1,16,64", help="concurrent clients per level (one label set each)")
    ap.add_argument("--requests", type=int, default=400, help="most requests per level")
    ap.add_argument("--seconds", type=float, default=20.0, help="most seconds per level")
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--model-threads", type=int, default=0, help="serve --model-threads (0: its default)")
    ap.add_argument("--job-rows", type=int, default=1000, help="rows of the batch job (0: no job levels)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--md", type=Path, default=HERE / "SERVER.md")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "server.json")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    levels = [int(x) for x in args.levels.split(",")]
    pool = queries()
    sets = label_sets(max(levels))
    home = Path(tempfile.mkdtemp(prefix="classer-bench-server-"))
    os.environ["CLASSER_HOME"] = str(home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    def body(text: str, labels: list[str]) -> dict[str, Any]:
        return {"text": text, "labels": labels, "priority": args.priority, "cache": False}

    def clients(texts: list[str], n: int) -> list[list[dict[str, Any]]]:
        """``n`` clients' requests: client ``c`` sends every n-th text with label set ``c``."""
        return [[body(t, sets[c]) for t in texts[c::n]] for c in range(n)]

    extra = ["--model-threads", str(args.model_threads)] if args.model_threads else []
    serve_args = ["--preload", args.priority, "--batch-wait-ms", str(args.batch_wait_ms), *extra]
    proc, startup_s = start_server(home, port, serve_args)
    results: list[dict[str, Any]] = []
    sent: list[list[tuple[str, list[str]]]] = []
    jobs: dict[str, Any] = {}
    try:
        # The first request a user sends after start (its label set's prototypes are built in it), then a warm one.
        first = asyncio.run(level(url, [[body(pool[-1], sets[0]), body(pool[-2], sets[0])]], 300))
        warm = [[body(pool[-2 - k], labels)] for k, labels in enumerate(sets)]
        asyncio.run(level(url, warm, 300))  # every label set's prototypes, once, off the clock
        used = 0
        for n in levels:
            mine = pool[used : used + args.requests]
            used += args.requests
            r = asyncio.run(level(url, clients(mine, n), args.seconds, proc.pid))
            sent.append(r.pop("sent"))  # only what went out: a level may stop at its time limit
            r.pop("lat")
            results.append(r)
        if args.job_rows:
            job_texts = queries("train")[: args.job_rows]
            jobs["alone"], _ = run_job(url, job_texts, sets[0], args.priority)
            n = max([x for x in levels if x <= 16] or levels[:1])
            work = clients(pool[used : used + args.requests], n)
            jobs["beside"], r = run_job(url, job_texts[::-1], sets[0], args.priority,
                                        beside=lambda: asyncio.run(level(url, work, args.seconds, proc.pid)))
            r.pop("sent"), r.pop("lat")
            jobs["requests_beside_job"] = r
    finally:
        proc.terminate()
        proc.wait(15)
    # A restart on the same CLASSER_HOME: what a server that ran before pays (the standard model's
    # ONNX graph was exported by the first start, which the figure above includes).
    proc, restart_s = start_server(home, port, serve_args)
    proc.terminate()
    proc.wait(15)
    ceilings = [in_process(pairs, args.priority) for pairs in sent]  # each level's own pairs
    one_set = in_process([p for pairs in sent for p in pairs], args.priority, one_set=True)
    shutil.rmtree(home, ignore_errors=True)

    import classer_local as cl

    print(
        f"classer_local {cl.__version__} server benchmark: priority={args.priority}, one label set per client "
        f"(Banking77 intents), {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}"
    )
    print(f"{'clients':>7} {'requests':>8} {'texts/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'req/call':>8} "
          f"{'errors':>6} {'x pairs':>7} {'x 1 set':>7} {'load':>5} {'srv cpu ms/req':>14} {'clients cpu ms/req':>18}")
    for r, ceiling in zip(results, ceilings):
        r["classify_same_pairs"] = ceiling
        r["vs_classify_batch"] = round(r["texts_per_s"] / ceiling["texts_per_s"], 3)
        r["vs_classify_batch_one_set"] = round(r["texts_per_s"] / one_set["texts_per_s"], 3)
        print(f"{r['clients']:>7} {r['requests']:>8} {r['texts_per_s']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8} "
              f"{r['requests_per_model_call']:>8} {r['errors']:>6} {r['vs_classify_batch']:>7} "
              f"{r['vs_classify_batch_one_set']:>7} {r['load_avg_1min']:>5} {r['server_cpu_ms_per_request']!s:>14} "
              f"{r['client_cpu_ms_per_request']!s:>18}")
    for r in results:
        c = r["classify_same_pairs"]
        print(f"in process, the {r['clients']}-client level's {c['texts']} (text, label set) pairs, one batch per label "
              f"set ({c['label_sets']} sets): {c['texts_per_s']} texts/s ({c['seconds']} s, load {c['load_avg_1min']}; "
              f"{c['cpu_ms_per_text']} CPU ms a text) [x pairs]")
    print(f"in-process classify_batch, the same texts against one label set: {one_set['texts_per_s']} texts/s "
          f"({one_set['seconds']} s, load {one_set['load_avg_1min']}; {one_set['cpu_ms_per_text']} CPU ms a text) [x 1 set]")
    print(f"serve to ready (models preloaded): {startup_s:.1f} s, restarted on the same home {restart_s:.1f} s; "
          f"first request {first['lat'][0]:.0f} ms "
          f"(its label set's prototypes built in it), the next {first['lat'][1]:.0f} ms")
    if jobs:
        a, b, r = jobs["alone"], jobs["beside"], jobs["requests_beside_job"]
        print(f"batch job of {a['rows']} rows alone: {a['rows_per_s']} rows/s ({a['seconds']} s); beside {r['clients']} clients: {b['rows_per_s']} rows/s, while the clients got "
              f"{r['texts_per_s']} texts/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms (load {r['load_avg_1min']})")
    res = {"levels": results, "classify_batch_one_set": one_set, "priority": args.priority,
           "startup_s": round(startup_s, 2), "restart_s": round(restart_s, 2), "first_request_ms": round(first["lat"][0], 1),
           "second_request_ms": round(first["lat"][1], 1), "jobs": jobs, "started": started,
           "command": " ".join(["python benchmarks/server.py", *sys.argv[1:]]), "version": cl.__version__,
           "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"}
    if args.json:
        print(json.dumps(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1), encoding="utf-8")
    args.md.write_text(markdown(res), encoding="utf-8")
    print(f"wrote {args.md} and {args.out}")


def markdown(res: dict[str, Any]) -> str:
    """SERVER.md: the levels against in-process scoring, start-up, and a job beside requests."""
    L = ["# Server: many clients, each with its own label set", "",
         "<!-- Generated by benchmarks/server.py. Do not edit by hand: rerun the command below. -->", "",
         f"- **Command**: `{res['command']}`",
         f"- **Date**: {res['started']}; classer-local {res['version']}; {res['machine']}; priority "
         f"`{res['priority']}`. The clients run on the same machine as the server (their CPU counts too).", "",
         "Each client sends single-text `POST /v1/classify` requests (Banking77 test queries, cache off) one after "
         "another, with its own label set (6-20 Banking77 intents). *x pairs*: against scoring the same (text, label "
         "set) pairs in process, one batch per label set; *x 1 set*: against `classify_batch` of every text against "
         "one label set (the plain encode ceiling), both in the same run.", "",
         "| clients | requests | texts/s | p50 ms | p95 ms | requests per model call | x pairs | x 1 set | server / "
         "clients CPU ms a request | load |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["levels"]:
        L.append(f"| {r['clients']} | {r['requests']} | {r['texts_per_s']} | {r['p50_ms']} | {r['p95_ms']} | "
                 f"{r['requests_per_model_call']} | {r['vs_classify_batch']} | {r['vs_classify_batch_one_set']} | "
                 f"{r.get('server_cpu_ms_per_request')} / {r.get('client_cpu_ms_per_request', '–')} | {r['load_avg_1min']} |")
    o = res["classify_batch_one_set"]
    L += ["", f"In process, every text against one label set: {o['texts_per_s']} texts/s ({o['cpu_ms_per_text']} CPU ms "
          f"a text, load {o['load_avg_1min']}).", "",
          f"**Start-up**: `serve` to `/health` ready {res['startup_s']} s on an empty `CLASSER_HOME` (the standard "
          f"model's ONNX graph exported in it), {res.get('restart_s', '–')} s when restarted on the same home, with "
          f"the models loaded and warmed before the port opens; the first request then took {res['first_request_ms']} ms (its label set's prototypes are built "
          f"in it), the next {res['second_request_ms']} ms."]
    if res["jobs"]:
        a, b, r = res["jobs"]["alone"], res["jobs"]["beside"], res["jobs"]["requests_beside_job"]
        base = next((x for x in res["levels"] if x["clients"] == r["clients"]), None)
        L += ["", f"**A batch job beside requests**: {a['rows']} Banking77 training queries through `POST /v1/batch` "
              "(a job scores in its own thread, beside the model threads that serve requests).", "",
              "| | job rows/s | requests texts/s | p50 ms | p95 ms | load |", "|---|---|---|---|---|---|",
              f"| job alone | {a['rows_per_s']} | – | – | – | {a['load_avg_1min']} |"]
        if base:
            L.append(f"| {r['clients']} clients alone | – | {base['texts_per_s']} | {base['p50_ms']} | {base['p95_ms']} | "
                     f"{base['load_avg_1min']} |")
        L.append(f"| job + {r['clients']} clients | {b['rows_per_s']} | {r['texts_per_s']} | {r['p50_ms']} | "
                 f"{r['p95_ms']} | {r['load_avg_1min']} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
