"""Batch jobs: lifecycle, bad lines, order, kill -9 and resume, the running-jobs limit, usage."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import classer_local as cl
from classer_local.errors import ConflictError, InvalidRequestError, NotFoundError

LABELS = ["billing", "technical", "sales"]
PHRASES = ["I was charged twice", "the app crashes on start", "can I get a quote for 50 seats",
           "refund my invoice", "login page shows error 500", "do you offer an enterprise plan"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"


def write_input(path: Path, n: int, bad: dict[int, str] | None = None) -> Path:
    bad = bad or {}
    with open(path, "w") as fh:
        for i in range(n):
            good = json.dumps({"id": f"r{i}", "text": f"{PHRASES[i % len(PHRASES)]} #{i}"})
            fh.write(bad.get(i, good) + "\n")
    return path


def test_lifecycle_and_results_match_classify_batch(tmp_path):
    src = write_input(tmp_path / "in.ndjson", 300)
    job = cl.jobs.create(str(src), labels=LABELS, priority="fast", chunk_size=64)
    d = job.to_dict()
    assert (d["status"], d["total"], d["processed"], d["failed"]) == ("created", 300, 0, 0)
    assert json.dumps(d)
    assert job.start() is job
    d = cl.jobs.get(job.id).to_dict()
    assert (d["status"], d["processed"], d["failed"], d["orphaned"]) == ("completed", 300, 0, False)
    assert d["created_at"] <= d["started_at"] <= d["finished_at"]
    rows = list(job.results())
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(300)]
    texts = [json.loads(line)["text"] for line in src.read_text().splitlines()]
    batch = cl.classify_batch(texts=texts, labels=LABELS, priority="fast", cache=False)
    for r, b in zip(rows, batch):
        assert set(r) == {"id", *b.to_dict()}
        assert (r["label"], r["scores"]) == (b.label, b.scores)
    assert job.start().status == "completed"  # starting a finished job is a no-op
    assert [j.id for j in cl.jobs.list()] == [job.id]
    assert [j.id for j in cl.jobs.list(status="running")] == []
    job.delete()
    with pytest.raises(NotFoundError) as e:
        cl.jobs.get(job.id)
    assert e.value.code == "job_not_found"
    assert not src.exists() or src.stat().st_size > 0  # a referenced input is left alone


def test_bad_lines_get_error_rows_and_the_job_goes_on(tmp_path):
    bad = {2: "{not json", 5: json.dumps({"id": "empty", "text": "  "}), 7: json.dumps({"id": "none"}),
           9: json.dumps([1, 2]), 11: json.dumps({"id": "num", "text": 42})}
    src = write_input(tmp_path / "in.ndjson", 20, bad)
    with open(src, "a") as fh:
        fh.write("\n   \n")  # blank lines are skipped, not rows
    job = cl.jobs.create(src, labels=LABELS, kind="tag", threshold=0.3, priority="fast", chunk_size=4)
    job.start()
    assert (job.status, job.processed, job.failed, job.total) == ("completed", 20, 5, 20)
    rows = list(job.results())
    assert len(rows) == 20
    codes = {i: r["error"]["code"] for i, r in enumerate(rows) if "error" in r}
    assert codes == {2: "line_invalid_json", 5: "text_empty", 7: "input_required", 9: "line_invalid",
                     11: "text_invalid"}
    assert rows[2]["id"] == 2 and rows[5]["id"] == "empty"  # no id: the row number stands in
    assert rows[2]["error"]["details"]["row"] == 2
    assert all(r["threshold"] == 0.3 and "labels" in r for r in rows if "error" not in r)


def test_inputs_from_rows_and_saved_classifier(tmp_path):
    cl.classifiers.create("t", labels=["billing", "technical"], model="fast")
    job = cl.jobs.create([{"id": i, "text": t} for i, t in enumerate(PHRASES)], classifier="t")
    assert job.to_dict()["classifier"] == "t@v1"  # pinned at creation
    cl.classifiers.create("t", labels=["x", "y"], model="fast")
    job.start(wait=False)
    job.wait(60)
    assert job.status == "completed"
    assert [r["id"] for r in job.results()] == list(range(len(PHRASES)))
    assert {r["label"] for r in job.results()} <= {"billing", "technical"}
    assert (job.path / "input.ndjson").exists()


def test_create_validates(tmp_path):
    src = write_input(tmp_path / "in.ndjson", 3)
    for kwargs, code in [({"labels": LABELS, "kind": "rank"}, "job_kind_invalid"),
                         ({}, "labels_required"),
                         ({"labels": LABELS, "threshold": 2}, "threshold_out_of_range"),
                         ({"labels": ["a", "a"]}, "labels_duplicate")]:
        with pytest.raises(InvalidRequestError) as e:
            cl.jobs.create(src, priority="fast", **kwargs)
        assert e.value.code == code
    with pytest.raises(InvalidRequestError, match="'classify', 'tag'"):
        cl.jobs.create(src, labels=LABELS, kind="rank")
    with pytest.raises(NotFoundError):
        cl.jobs.create(tmp_path / "missing.ndjson", labels=LABELS)
    with pytest.raises(InvalidRequestError):
        cl.jobs.get("../etc")
    assert cl.jobs.list() == []


def test_changed_input_is_refused(tmp_path):
    src = write_input(tmp_path / "in.ndjson", 5)
    job = cl.jobs.create(src, labels=LABELS, priority="fast")
    with open(src, "a") as fh:
        fh.write(json.dumps({"id": "late", "text": "added later"}) + "\n")
    with pytest.raises(ConflictError) as e:
        job.start()
    assert e.value.code == "job_input_changed"
    assert job.status == "created" and cl.jobs.list(status="running") == []


def test_too_many_running_jobs_and_cancel(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSER_MAX_RUNNING_JOBS", "1")
    src = write_input(tmp_path / "in.ndjson", 20_000)
    a = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=8)
    b = cl.jobs.create(src, labels=LABELS, priority="fast")
    a.start(wait=False)
    try:
        with pytest.raises(ConflictError) as e:
            b.start()
        assert e.value.code == "too_many_running_jobs" and e.value.status == 409
        with pytest.raises(ConflictError) as e:
            a.start(wait=False)
        assert e.value.code == "job_running"
    finally:
        a.cancel()
    a.wait(30)
    d = a.to_dict()
    assert d["status"] == "cancelled" and d["processed"] < 20_000
    assert [r["id"] for r in a.results()] == [f"r{i}" for i in range(d["processed"])]
    with pytest.raises(ConflictError) as e:
        a.start()
    assert e.value.code == "job_cancelled"
    b.cancel()
    assert b.status == "cancelled"


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_doubles_nothing(tmp_path, home):
    """A real SIGKILL of the process running the job, mid-run; then resume here."""
    n = 30_000
    src = write_input(tmp_path / "in.ndjson", n)
    job = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=16)
    code = f"import classer_local as cl; cl.jobs.get({job.id!r}).start()"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "CLASSER_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if job.processed >= 1_000:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    d = job.to_dict()
    assert d["status"] == "running" and d["orphaned"]  # the pid is gone: detectable
    assert 1_000 <= d["processed"] < n
    # Simulate the torn tail a crash can leave past the checkpoint.
    with open(job.results_path, "ab") as fh:
        fh.write(b'{"id": "r-torn", "label": "bil')
    job.start()
    assert (job.status, job.processed, job.failed) == ("completed", n, 0)
    ids = [r["id"] for r in job.results()]
    assert ids == [f"r{i}" for i in range(n)]
    with open(job.results_path, "rb") as fh:
        assert sum(1 for _ in fh) == n


@pytest.mark.slow
def test_usage_totals_for_a_known_sequence(tmp_path):
    """In a fresh process: usagelog's writer thread stays bound to the first CLASSER_HOME it saw."""
    script = textwrap.dedent(f"""
        import json, classer_local as cl
        rows = [{{"id": i, "text": "refund my invoice number %d" % i}} for i in range(600)]
        lines = [json.dumps(r) for r in rows]
        lines[3], lines[300] = "oops", json.dumps({{"id": 300, "text": ""}})
        open({str(tmp_path / 'a.ndjson')!r}, "w").write("\\n".join(lines) + "\\n")
        a = cl.jobs.create({str(tmp_path / 'a.ndjson')!r}, labels=["billing", "technical"], priority="fast")
        a.start()
        # A chunk that fails as a whole (one text over the window with truncate NONE) is rescored row by row.
        rows = [{{"id": i, "text": "my invoice is wrong"}} for i in range(10)]
        rows[4]["text"] = "word " * 600
        b = cl.jobs.create(rows, labels=["billing", "technical"], truncate="NONE")
        b.start()
        cl.classify(text="hello there", labels=["a", "b"], priority="fast")
        cl.classify(text="hello there", labels=["a", "b"], priority="fast")
        print(json.dumps({{"a": a.to_dict(), "b": b.to_dict(), "b_rows": list(b.results()),
                          "usage": cl.usage(group_by="endpoint")}}))
    """)
    env = {**os.environ, "CLASSER_HOME": str(tmp_path / "fresh")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=180,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert (out["a"]["processed"], out["a"]["failed"]) == (600, 2)
    assert (out["b"]["status"], out["b"]["processed"], out["b"]["failed"]) == ("completed", 10, 1)
    b_rows = out["b_rows"]
    assert [r["id"] for r in b_rows] == list(range(10))
    assert b_rows[4]["error"]["code"] == "input_too_long" or "error" in b_rows[4]
    assert all("label" in r for i, r in enumerate(b_rows) if i != 4)
    totals = out["usage"]["totals"]
    # a: 3 chunks (255 + 255 + 88 scored rows); b: 1 failed chunk + 10 single rows (1 failing);
    # then one fresh classify and one cache hit.
    assert totals["requests"] == 3 + 11 + 2
    assert totals["items"] == 598 + 20 + 2
    assert totals["errors"] == 2
    assert totals["cache_hits"] == 1
    groups = {g["key"]: g["requests"] for g in out["usage"]["groups"]}
    assert groups == {"classify_batch": 14, "classify": 2}


# ---------------------------------------------------------------------- no line stops a job
def strict_rows(path: Path) -> list[dict]:
    """The results file read by a parser that refuses NaN/Infinity and anything but UTF-8."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the results")
    with open(path, "rb") as fh:
        return [json.loads(line.decode("utf-8"), parse_constant=refuse) for line in fh]


# Bad lines as they sit in a file, the 0-based row they are written at, the id and code their row gets.
NASTY = {
    3: (b'{"id": "sur", "text": "refund \\ud800 me"}', "sur", "text_invalid"),
    6: (b'{"id": ' + b"7" * 5000 + b', "text": "refund my invoice"}', 6, "id_too_long"),
    8: (b'{"id": "' + b"x" * 300 + b'", "text": "refund"}', 8, "id_too_long"),
    11: (b'{"id": {"a": 1}, "text": "refund"}', 11, "id_invalid"),
    12: (b'{"id": "nan", "text": "x", "score": NaN}', 12, "line_invalid_json"),
    14: (b'{"id": 1e999, "text": "x"}', 14, "line_invalid_json"),
    15: (b'{"id": "img", "image": 12}', "img", "image_invalid"),
    17: (b'{"id": "u8", "text": "caf\xe9"}', 17, "line_invalid_utf8"),
    19: (b"[" * 5_000 + b"]" * 5_000, 19, "line_invalid_json"),
    20: (b'{"id": "sid\\ud800", "text": "refund"}', 20, "id_invalid"),
}


def write_nasty(path: Path, n: int) -> Path:
    with open(path, "wb") as fh:
        for i in range(n):
            bad = NASTY.get(i % 40)
            fh.write((bad[0] if bad else json.dumps({"id": f"r{i}", "text": f"{PHRASES[i % 6]} #{i}"}).encode())
                     + b"\n")
    return path


def test_no_line_stops_a_job(tmp_path):
    """Lone surrogates, a 5,000-digit id, NaN, nesting, wrong types: error rows; the job completes."""
    src = write_nasty(tmp_path / "in.ndjson", 40)
    job = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=8)
    job.start()
    d = job.to_dict()
    assert (d["status"], d["processed"], d["failed"], d["error"]) == ("completed", 40, len(NASTY), None)
    rows = strict_rows(job.results_path)
    assert len(rows) == 40
    for i, r in enumerate(rows):
        if i in NASTY:
            _, rid, code = NASTY[i]
            assert (r["id"], r["error"]["code"], r["error"]["details"]["row"]) == (rid, code, i)
        else:
            assert r["id"] == f"r{i}" and r["label"] in LABELS
    assert job.start().status == "completed"  # and resuming it is a no-op, not a second failure


def test_the_same_nasty_rows_from_an_iterable_of_strings(tmp_path):
    """Rows handed over in-process as strings, lone surrogates included, reach the job as error rows."""
    rows = ['{"id": "a", "text": "refund"}', '{"id": "b", "text": "\ud800"}', {"id": "c", "text": "x\udfff"},
            {"id": "\ud800", "text": "refund"}]
    job = cl.jobs.create(rows, labels=LABELS, priority="fast")
    job.start()
    out = strict_rows(job.results_path)
    assert [(r["id"], r.get("error", {}).get("code")) for r in out] == [
        ("a", None), ("b", "text_invalid"), ("c", "text_invalid"), (3, "id_invalid")]
    assert (job.status, job.failed) == ("completed", 3)


@pytest.mark.slow
def test_kill_9_in_a_job_full_of_bad_lines_then_resume(tmp_path, home):
    """A SIGKILL mid-run over an input with every kind of bad line; the resumed results equal a clean run."""
    n = 8_000
    src = write_nasty(tmp_path / "in.ndjson", n)
    clean = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=16)
    clean.start()
    job = cl.jobs.create(src, labels=LABELS, priority="fast", chunk_size=16)
    code = f"import classer_local as cl; cl.jobs.get({job.id!r}).start()"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "CLASSER_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None and job.processed < 800:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 800 <= job.processed < n and job.orphaned
    job.start()
    volatile = ("latency_ms", "request_id")
    got = [{k: v for k, v in r.items() if k not in volatile} for r in strict_rows(job.results_path)]
    want = [{k: v for k, v in r.items() if k not in volatile} for r in strict_rows(clean.results_path)]
    assert got == want and len(got) == n
    assert (job.status, job.processed, job.failed) == ("completed", n, n // 40 * len(NASTY))


# ---------------------------------------------------------------------- owner and untrusted jobs
def test_owner_is_recorded_and_reported(tmp_path):
    src = write_input(tmp_path / "in.ndjson", 3)
    mine = cl.jobs.create(src, labels=LABELS, priority="fast", owner="key_0123abcd")
    assert mine.owner == "key_0123abcd" and mine.to_dict()["owner"] == "key_0123abcd"
    spec = json.loads((mine.path / "job.json").read_text())
    assert (spec["owner"], spec["allow_paths"]) == ("key_0123abcd", True)
    anon = cl.jobs.create(src, labels=LABELS, priority="fast")
    assert anon.owner is None and anon.to_dict()["owner"] is None
    anon.start()
    assert anon.owner is None and mine.owner == "key_0123abcd"  # running does not touch it
    for bad in ("", 5, "k" * 201):
        with pytest.raises(InvalidRequestError) as e:
            cl.jobs.create(src, labels=LABELS, priority="fast", owner=bad)
        assert e.value.code == "job_owner_invalid"


def test_a_job_folder_from_before_owner_meant_the_key(tmp_path):
    """Older job.json files kept the runner's pid under "owner": still orphan-detected, no owner."""
    src = write_input(tmp_path / "in.ndjson", 5)
    job = cl.jobs.create(src, labels=LABELS, priority="fast")
    spec = json.loads((job.path / "job.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    spec.update(status="running", owner={"pid": int(dead.stdout), "host": socket.gethostname()})
    spec.pop("runner")
    (job.path / "job.json").write_text(json.dumps(spec))
    (job.path / "heartbeat").touch()
    assert job.orphaned and job.owner is None
    assert job.start().status == "completed" and job.processed == 5
    spec = json.loads((job.path / "job.json").read_text())
    assert (spec["owner"], spec["runner"], job.orphaned) == (None, None, False)


def test_an_untrusted_job_reads_no_path_on_this_machine(tmp_path):
    """The server's jobs (allow_paths=False): every spelling of a path is refused per row; base64 is scored."""
    cat = Path(__file__).parent / "fixtures" / "cifar_cat.jpg"
    memo = (Path(__file__).parent / "fixtures" / "memo.pdf").read_bytes()
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    link = tmp_path / "cat.jpg"
    link.write_bytes(cat.read_bytes())
    b64 = base64.b64encode(cat.read_bytes()).decode()
    lines = [
        b'{"id": "esc", "\\u0069mage": "' + str(link).encode() + b'"}',
        json.dumps({"id": "trail", "file": f"{secret} "}).encode(),
        json.dumps({"id": "home", "image": "~/" + link.name}).encode(),
        json.dumps({"id": "fileurl", "file": f"file://{secret}"}).encode(),
        json.dumps({"id": "mixed", "image": [b64, str(link)]}).encode(),
        json.dumps({"id": "b64", "image": b64}).encode(),
        json.dumps({"id": "pdf", "file": "data:application/pdf;base64," + base64.b64encode(memo).decode()}).encode(),
        json.dumps({"id": "pdf64", "file": base64.b64encode(memo).decode()}).encode(),
        json.dumps({"id": "text", "text": "refund my invoice"}).encode(),
    ]
    src = tmp_path / "rows.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    job = cl.jobs.create(src, labels=["cat", "truck"], priority="fast", owner="key_remote", allow_paths=False)
    assert json.loads((job.path / "job.json").read_text())["allow_paths"] is False
    job.start()
    rows = {r["id"]: r for r in strict_rows(job.results_path)}
    for rid in ("esc", "trail", "home", "fileurl", "mixed"):
        assert rows[rid]["error"]["code"] == "path_not_allowed", rows[rid]
    assert rows["b64"]["visual_tokens"] > 0 and rows["b64"]["label"] == "cat"
    assert rows["text"]["label"] in ("cat", "truck")
    same = ("label", "scores", "tokens", "visual_tokens")  # a data: URL and bare base64: the same document
    assert rows["pdf"]["tokens"] > 0 and [rows["pdf"][k] for k in same] == [rows["pdf64"][k] for k in same]
    assert (job.status, job.failed, job.owner) == ("completed", 5, "key_remote")
    # The same rows in-process (trusted) read the image path: the refusal above is the policy, not a bad file.
    trusted = cl.jobs.create(src, labels=["cat", "truck"], priority="fast")
    trusted.start()
    rows = {r["id"]: r for r in strict_rows(trusted.results_path)}
    assert rows["esc"]["visual_tokens"] == rows["b64"]["visual_tokens"] > 0


def test_an_untrusted_spec_builds_a_classifier_that_reads_no_paths():
    from classer_local.jobs.engine import build_classifier

    assert build_classifier({"labels": LABELS, "priority": "fast", "allow_paths": False}).allow_paths is False
    assert build_classifier({"labels": LABELS, "priority": "fast", "allow_paths": True}).allow_paths is True
    assert build_classifier({"labels": LABELS, "priority": "fast"}).allow_paths is True  # job.json before the field


def test_labels_and_a_saved_classifier_together_are_refused(tmp_path):
    """The library's rule, as over HTTP: one or the other (labels were silently ignored before)."""
    cl.classifiers.create("both", labels=["billing", "technical"], model="fast")
    with pytest.raises(InvalidRequestError) as e:
        cl.jobs.create([{"text": "x"}], labels=LABELS, classifier="both")
    assert e.value.code == "classifier_and_labels"
    assert cl.jobs.list() == []
