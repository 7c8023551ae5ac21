"""Batch jobs on Ray (``engine="ray"``): the local engine's results, bad lines, a worker killed mid-job.

The Ray tests run a local Ray (2 CPUs, no dashboard) and skip when ``ray[data]`` is not
installed (CI installs ``.[all]``, which has no Ray); the option and missing-dependency
checks run everywhere.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import classer_local as cl
from classer_local.errors import InvalidRequestError, ServerError

LABELS = ["billing", "technical", "sales"]
PHRASES = ["I was charged twice", "the app crashes on start", "can I get a quote for 50 seats",
           "refund my invoice", "login page shows error 500", "do you offer an enterprise plan"]
# Bad lines and their error codes, at the 0-based rows they land on.
BAD = {3: (b"{not json", "line_invalid_json"), 10: (b"[1, 2]", "line_invalid"),
       17: (b'{"id": "empty", "text": "  "}', "text_empty"), 25: (b'{"id": "none"}', "input_required"),
       40: (b'{"id": "utf8", "text": "caf\xe9"}', "line_invalid_utf8"),
       41: (b'{"id": "num", "text": 42}', "text_invalid"),
       # Lines that stopped a job before: a lone surrogate, an id of 5,000 digits, NaN.
       50: (b'{"id": "sur", "text": "\\ud800"}', "text_invalid"),
       60: (b'{"id": ' + b"9" * 5000 + b', "text": "refund"}', "id_too_long"),
       70: (b'{"id": "nan", "text": NaN}', "line_invalid_json")}
VOLATILE = ("latency_ms", "request_id")  # differ between any two runs, on any engine


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """A local Ray for this module, shut down at the end; a hung run dumps stacks and exits."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    faulthandler.dump_traceback_later(240, exit=True)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()
        faulthandler.cancel_dump_traceback_later()


def write_rows(path: Path, n: int, start: int = 0, bad: dict[int, tuple[bytes, str]] | None = None,
               no_id_every: int = 0) -> Path:
    """``n`` rows (global rows ``start``..), bad lines at their rows, blank lines between some."""
    with open(path, "wb") as fh:
        for row in range(start, start + n):
            if bad and row in bad:
                line = bad[row][0]
            else:
                obj: dict[str, Any] = {"text": f"{PHRASES[row % len(PHRASES)]} #{row}"}
                if not (no_id_every and row % no_id_every == 0):
                    obj = {"id": f"r{row}", **obj}
                line = json.dumps(obj).encode()
            fh.write(line + b"\n")
            if row % 50 == 7:
                fh.write(b"\n   \n")  # blank lines are not rows, on either engine
    return path


def stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def assert_same(ray_job: cl.jobs.Job, local_job: cl.jobs.Job) -> None:
    """Same ids, labels, scores (4 decimals), errors and counts, in the same order."""
    a, b = list(ray_job.results()), list(local_job.results())
    assert len(a) == len(b) == local_job.total
    assert stable(a) == stable(b)
    for x, y in zip(a, b):
        assert set(x) == set(y)
    da, db = ray_job.to_dict(), local_job.to_dict()
    assert (da["status"], da["processed"], da["failed"], da["total"]) == \
           (db["status"], db["processed"], db["failed"], db["total"])
    assert (da["engine"], db["engine"]) == ("ray", "local")


# ---------------------------------------------------------------------- without Ray
def test_engine_options_are_checked():
    with pytest.raises(InvalidRequestError) as e:
        cl.jobs.create([{"text": "x"}], labels=LABELS, priority="fast", engine="spark")
    assert e.value.code == "job_engine_invalid"
    with pytest.raises(InvalidRequestError) as e:
        cl.jobs.create([{"text": "x"}], labels=LABELS, priority="fast", address="auto")
    assert e.value.code == "job_engine_option_invalid"


def test_missing_ray_is_a_typed_error(monkeypatch: pytest.MonkeyPatch):
    from classer_local.jobs import ray as ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ServerError) as e:
        ray_engine.require_ray()
    assert e.value.code == "dependency_missing"
    assert "pip install 'classer-local[ray]'" in e.value.message
    with pytest.raises(ServerError) as e:
        cl.jobs.create([{"text": "x"}], labels=LABELS, priority="fast", engine="ray")
    assert e.value.code == "dependency_missing"
    assert cl.jobs.list() == []  # nothing half-created


# ---------------------------------------------------------------------- on a local Ray
@pytest.mark.slow
def test_same_results_as_the_local_engine(ray_local, tmp_path):
    src = write_rows(tmp_path / "in.ndjson", 400, bad=BAD, no_id_every=13)
    local = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=64)
    local.start()
    job = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=64, engine="ray", num_workers=2)
    assert job.to_dict()["status"] == "created"
    job.start()
    assert_same(job, local)
    rows = list(job.results())
    assert {i: r["error"]["code"] for i, r in enumerate(rows) if "error" in r} == {
        row: code for row, (_, code) in BAD.items()}
    assert rows[3]["id"] == 3 and rows[3]["error"]["details"]["row"] == 3  # no id: the row number
    assert rows[13]["id"] == 13 and "label" in rows[13]
    assert rows[50]["id"] == "sur" and rows[60]["id"] == 60  # an unusable id: the row number stands in
    assert (job.processed, job.failed, job.total) == (400, len(BAD), 400)
    assert job.start().status == "completed"  # a finished job: no-op, as locally


@pytest.mark.slow
def test_tag_saved_classifier_over_a_glob_of_files(ray_local, tmp_path):
    cl.classifiers.create("tickets", labels=LABELS, model="fast",
                          examples={"billing": ["refund my card", "invoice is wrong"],
                                    "technical": ["it crashes", "error on login"],
                                    "sales": ["price for 100 seats", "book a demo"]})
    parts = tmp_path / "parts"
    parts.mkdir()
    sizes = [70, 0, 130, 55]  # an empty part too
    start = 0
    for i, n in enumerate(sizes):
        write_rows(parts / f"part-{i}.ndjson", n, start=start, bad=BAD, no_id_every=11)
        start += n
    whole = tmp_path / "whole.ndjson"
    whole.write_bytes(b"".join((parts / f"part-{i}.ndjson").read_bytes() for i in range(len(sizes))))
    opts: dict[str, Any] = {"classifier": "tickets", "kind": "tag", "threshold": 0.3, "chunk_size": 32}
    local = cl.jobs.create(whole, **opts)
    local.start()
    job = cl.jobs.create(str(parts / "part-*.ndjson"), engine="ray", num_workers=2, batch_size=32, **opts)
    job.start()
    assert_same(job, local)  # rows numbered across the files: ids without "id" match
    folder = cl.jobs.create(parts, engine="ray", num_workers=1, batch_size=32, **opts)
    folder.start()
    assert stable(list(folder.results())) == stable(list(local.results()))


def _scorer_pids() -> list[int]:
    """Ray Data actor processes started under this test process (never anyone else's)."""
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_and_doubles_nothing(ray_local, tmp_path):
    pytest.importorskip("psutil")
    src = write_rows(tmp_path / "in.ndjson", 3000, bad=BAD)
    local = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=8)
    local.start()
    job = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=8, engine="ray", num_workers=1)
    killed: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.status in ("created", "running"):
            pids = _scorer_pids()
            if pids and job.processed > 0:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(job.processed)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    job.start()
    killer.join(5)
    assert killed and killed[0] < 3000, "the job ended before its worker could be killed"
    assert_same(job, local)


@pytest.mark.slow
def test_cli_jobs_run_on_ray(ray_local, tmp_path, home):
    src = write_rows(tmp_path / "in.ndjson", 120, bad=BAD)
    out = tmp_path / "out"
    env = {**os.environ, "CLASSER_HOME": str(home)}
    address = ray_local.get_runtime_context().gcs_address
    res = subprocess.run(
        [sys.executable, "-m", "classer_local.cli", "jobs", "run", str(src), "-o", f"{out}/", "--engine", "ray",
         "--address", address, "--workers", "1", "--batch-size", "50", "-l", "billing", "-l", "technical",
         "-l", "sales", "--priority", "fast", "--no-progress", "--json"],
        check=False, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1, res.stderr  # 1: some rows are errors
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert (summary["engine"], summary["rows"], summary["errors"]) == ("ray", 120, len(BAD))
    rows = [json.loads(line) for line in (out / "results.ndjson").read_text().splitlines()]
    local = cl.jobs.create(src, labels=LABELS, priority="fast")
    local.start()
    assert stable(rows) == stable(list(local.results()))
    assert cl.jobs.get(summary["job_id"]).to_dict()["engine"] == "ray"  # the job is kept
