"""Server throughput and latency on loopback against in-process ``classify_batch``.

Starts ``classer-local serve --no-auth`` in a subprocess (fresh CLASSER_HOME), then for
1, 8 and 32 concurrent clients sends single-text ``POST /v1/classify`` requests with the
request cache off, bounded by ``--requests`` per level and ``--seconds`` per level, and
reports requests/s and p50/p95 latency, plus how many requests each model call served
(micro-batching). The server is then stopped and this process times ``classify_batch``
over the same texts (1,000 a call), so the ceiling comes from the same run and machine.
Texts are AG News sentences when ``../shared/evaldata`` is there, else synthetic.

    python benchmarks/server.py                          # standard tier
    python benchmarks/server.py --priority fast --requests 400 --seconds 20

The client shares the machine with the server: on a 2-core box its own CPU use is part
of what the numbers measure.
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
AG_NEWS = REPO.parent / "shared" / "evaldata" / "ag_news" / "test.jsonl"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def texts(n: int, seed: int = 0) -> list[str]:
    if AG_NEWS.exists():
        with open(AG_NEWS, encoding="utf-8") as fh:
            rows = [json.loads(line)["text"] for line in fh if line.strip()]
    else:
        words = [
            "market",
            "team",
            "election",
            "chip",
            "vaccine",
            "league",
            "bank",
            "rocket",
            "court",
            "storm",
            "merger",
            "striker",
        ]
        rng0 = random.Random(seed)
        rows = [" ".join(rng0.choices(words, k=20)) for _ in range(2000)]
    rng = random.Random(seed)
    rng.shuffle(rows)
    # Distinct texts, so nothing is a cache hit even across levels.
    return [f"{rows[i % len(rows)]} [{i}]" for i in range(n)]


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


async def level(url: str, clients: int, payloads: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    import httpx

    queue = list(reversed(payloads))
    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while queue and time.perf_counter() < deadline:
                body = queue.pop()
                t0 = time.perf_counter()
                r = await client.post("/v1/classify", json=body)
                lat.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    errors += 1

        before = (await client.get("/health")).json()["batching"]
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        after = (await client.get("/health")).json()["batching"]
    calls = after["calls"] - before["calls"]
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "seconds": round(wall, 2),
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(_pct(lat, 0.5), 1),
        "p95_ms": round(_pct(lat, 0.95), 1),
        "requests_per_model_call": round((after["requests"] - before["requests"]) / calls, 2) if calls else 0,
    }


def start_server(home: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "CLASSER_HOME": str(home), "CLASSER_USAGE": os.environ.get("CLASSER_USAGE", "1")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "classer_local.cli",
            "serve",
            "--no-auth",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ],
        env=env,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.2)


def in_process(payload_texts: list[str], priority: str) -> dict[str, Any]:
    from classer_local.api import get_classifier

    clf = get_classifier(LABELS, priority=priority)
    clf.classify(payload_texts[:8], cache=False)  # load the model and build prototypes
    t0 = time.perf_counter()
    n = 0
    for start in range(0, len(payload_texts), 1000):
        chunk = payload_texts[start : start + 1000]
        clf.classify(chunk, cache=False)
        n += len(chunk)
    wall = time.perf_counter() - t0
    return {"items": n, "seconds": round(wall, 2), "items_per_s": round(n / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--priority", default="standard", choices=["standard", "fast"])
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    ap.add_argument("--requests", type=int, default=300, help="most requests per level")
    ap.add_argument("--seconds", type=float, default=15.0, help="most seconds per level")
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    levels = [int(x) for x in args.levels.split(",")]
    pool = texts(args.requests * len(levels) + 1000)
    home = Path(tempfile.mkdtemp(prefix="classer-bench-server-"))
    os.environ["CLASSER_HOME"] = str(home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(home, port, ["--preload", args.priority, "--batch-wait-ms", str(args.batch_wait_ms)])
    results = []
    try:
        warm = [{"text": t, "labels": LABELS, "priority": args.priority, "cache": False} for t in pool[-20:]]
        asyncio.run(level(url, 4, warm, 30))  # build prototypes, warm the code paths
        used = 0
        for n in levels:
            payloads = [
                {"text": t, "labels": LABELS, "priority": args.priority, "cache": False}
                for t in pool[used : used + args.requests]
            ]
            used += args.requests
            results.append(asyncio.run(level(url, n, payloads, args.seconds)))
    finally:
        proc.terminate()
        proc.wait(15)
    ceiling = in_process(pool[: max(1000, args.requests)], args.priority)
    shutil.rmtree(home, ignore_errors=True)

    import classer_local as cl

    print(
        f"classer_local {cl.__version__} server benchmark: priority={args.priority}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(
        f"{'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'req/call':>8} {'errors':>6}"
    )
    for r in results:
        print(
            f"{r['clients']:>7} {r['requests']:>8} {r['rps']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['requests_per_model_call']:>8} {r['errors']:>6}"
        )
    print(
        f"in-process classify_batch: {ceiling['items_per_s']} texts/s ({ceiling['items']} texts, "
        f"{ceiling['seconds']} s)"
    )
    best = max(r["rps"] for r in results)
    print(f"best server rate / classify_batch: {best / ceiling['items_per_s']:.2f}")
    if args.json:
        print(json.dumps({"levels": results, "classify_batch": ceiling, "priority": args.priority}))


if __name__ == "__main__":
    main()
