"""Saved, versioned classifiers: create / load / list / get / delete, durability and model checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import classer_local as cl
from classer_local import store
from classer_local.errors import ConflictError, InvalidRequestError, ModelNotInstalledError, NotFoundError

LABELS = ["billing", "technical", "sales"]
EXAMPLES = {
    "billing": ["I was charged twice this month", "Please refund my last invoice",
                "Update the credit card on file", "Why is my bill higher than usual?"],
    "technical": ["The app crashes when I open settings", "I can't log in, password reset fails",
                  "Error 500 when uploading a file", "Sync stopped working after the update"],
    "sales": ["Can we get a quote for 500 seats?", "Do you offer an enterprise plan?",
              "I'd like a demo for my team", "What discounts do you give nonprofits?"],
}
TEXTS = ["My card got billed two times", "The page shows an error and freezes",
         "How much for a site licence?", "Refund please", "Login broken again"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    yield tmp_path
    store.clear_loaded()


def test_create_versions_pinned_and_latest():
    v1 = cl.classifiers.create("support-tickets", labels=LABELS, examples=EXAMPLES, model="fast")
    assert (v1["ref"], v1["version"], v1["n_examples"]) == ("support-tickets@v1", 1, 12)
    assert v1["calibrated"] is True
    v2 = cl.classifiers.create("support-tickets", labels=["billing", "other"], model="fast")
    assert v2["ref"] == "support-tickets@v2" and v2["calibrated"] is False
    json.dumps(v1), json.dumps(v2)  # the server returns these as they are

    latest = cl.classify(text="I was charged twice", classifier="support-tickets")
    pinned = cl.classify(text="I was charged twice", classifier="support-tickets@v1")
    assert set(latest.scores) == {"billing", "other"}
    assert set(pinned.scores) == set(LABELS) and pinned.label == "billing"
    assert cl.classifiers.get("support-tickets@v1")["labels"] == LABELS  # v1 untouched
    assert cl.classifiers.get("support-tickets")["version"] == 2
    assert store.load("support-tickets@v1") is store.load("support-tickets@v1")  # cached in-process


def test_list_get_delete():
    cl.classifiers.create("a", labels=["x", "y"], model="fast")
    cl.classifiers.create("a", labels=["x", "z"], model="fast")
    cl.classifiers.create("b.c_d-e", labels=["x", "y"], priority="fast")
    assert [c["ref"] for c in cl.classifiers.list()] == ["a@v2", "b.c_d-e@v1"]
    assert [c["ref"] for c in cl.classifiers.list("a")] == ["a@v1", "a@v2"]
    info = cl.classifiers.get("a@v1")
    assert {"name", "version", "ref", "labels", "model", "created_at", "n_examples",
            "calibrated"} <= set(info)
    assert info["versions"] == [1, 2] and info["model"] == "wordllama-l2-supercat"

    clf = store.load("a@v2")
    assert cl.classifiers.delete("a@v2") == {"deleted": ["a@v2"]}
    with pytest.raises(NotFoundError) as e:
        store.load("a@v2")
    assert e.value.code == "classifier_not_found"
    assert store.load("a").labels_ == ["x", "y"]  # latest is v1 again
    assert clf is not store.load("a@v1")
    # A number is never given out twice: the request cache keys saved classifiers by ref.
    assert cl.classifiers.create("a", labels=["p", "q"], model="fast")["ref"] == "a@v3"
    cl.classifiers.delete("a")
    with pytest.raises(NotFoundError):
        cl.classifiers.get("a")
    assert [c["ref"] for c in cl.classifiers.list()] == ["b.c_d-e@v1"]
    assert cl.classifiers.create("a", labels=["p", "q"], model="fast")["ref"] == "a@v4"


@pytest.mark.parametrize("ref", ["", "a@b", "bad name", "x" * 101, "..", ".hidden", "a/b", "a@v0", "a@v",
                                 "a@@v1"])
def test_bad_refs(ref):
    with pytest.raises(InvalidRequestError) as e:
        store.load(ref)
    assert e.value.code == "classifier_name_invalid"
    if "@" not in ref:
        with pytest.raises(InvalidRequestError):
            cl.classifiers.create(ref, labels=["x", "y"], model="fast")


@pytest.mark.parametrize(("kwargs", "code"), [({"labels": ["x", "x"]}, "labels_duplicate"),
                                              ({"labels": ["x", "y"], "truncate": "MIDDLE"}, "invalid_truncate")])
def test_bad_parameters_save_nothing(kwargs, code):
    with pytest.raises(InvalidRequestError) as e:
        cl.classifiers.create("bad", model="fast", **kwargs)
    assert e.value.code == code and cl.classifiers.list() == []


def test_unknown_refs():
    for ref in ("nope", "nope@v1"):
        with pytest.raises(NotFoundError) as e:
            cl.classify(text="hi", classifier=ref)
        assert e.value.code == "classifier_not_found" and isinstance(e.value, LookupError)
    cl.classifiers.create("one", labels=["x", "y"], model="fast")
    with pytest.raises(NotFoundError) as e:
        cl.classifiers.get("one@v7")
    assert e.value.details["versions"] == [1]


@pytest.mark.parametrize("tier", ["fast", "standard"])
def test_save_load_same_predictions(tier):
    """Property: a loaded classifier scores exactly as the one that was saved."""
    clf = cl.Classifier(LABELS, examples=EXAMPLES, priority=tier,
                        descriptions={"sales": "Buying, pricing, quotes and demos"})
    clf.calibrate()
    info = cl.classifiers.create("p", labels=LABELS, examples=EXAMPLES, model=tier,
                                 descriptions={"sales": "Buying, pricing, quotes and demos"})
    assert info["model"] == clf.spec_.name
    loaded = store.load("p")
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    a = [r.scores for r in clf.tag(TEXTS, cache=False)]
    b = [r.scores for r in loaded.tag(TEXTS, cache=False)]
    assert a == b
    assert not hasattr(loaded, "example_vectors_")  # nothing was re-encoded


def test_threads_get_distinct_versions():
    refs: list[str] = []
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            refs.append(cl.classifiers.create("race", labels=[f"l{i}", "other"], model="fast")["ref"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(refs) == [f"race@v{i}" for i in range(1, 5)]
    assert {store.load(r).labels_[0] for r in refs} == {"l0", "l1", "l2", "l3"}


def test_crash_mid_save_leaves_nothing(monkeypatch, home):
    cl.classifiers.create("c", labels=["x", "y"], model="fast")
    real_rename = os.rename

    def boom(src, dst, *a, **k):
        if Path(dst).name.startswith("v"):
            raise OSError("disk on fire")
        return real_rename(src, dst, *a, **k)

    monkeypatch.setattr(store.os, "rename", boom)
    with pytest.raises(OSError):
        cl.classifiers.create("c", labels=["x", "z"], model="fast")
    monkeypatch.setattr(store.os, "rename", real_rename)
    assert cl.classifiers.get("c")["version"] == 1
    assert [p.name for p in (home / "classifiers" / "c").iterdir() if not p.name.startswith(".")] == ["v1"]
    # The crash burnt v2; it is not reused.
    assert cl.classifiers.create("c", labels=["x", "z"], model="fast")["ref"] == "c@v3"


def test_sigkill_mid_save_leaves_nothing(home):
    """A real kill -9 between writing the files and the rename: no partial version shows."""
    code = (
        "import os, signal, classer_local as cl\n"
        "from classer_local import store\n"
        "real = os.rename\n"
        "def rename(src, dst):\n"
        "    if os.path.basename(str(dst)).startswith('v'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(src, dst)\n"
        "store.os.rename = rename\n"
        "cl.classifiers.create('k', labels=['x', 'y'], model='fast')\n"
    )
    env = {**os.environ, "CLASSER_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    leftovers = list((home / "classifiers" / "k").iterdir())
    assert any(p.name.startswith(".tmp-") for p in leftovers)  # the half-written folder is hidden
    with pytest.raises(NotFoundError):
        cl.classifiers.get("k")
    assert cl.classifiers.list() == []
    assert cl.classifiers.create("k", labels=["x", "y"], model="fast")["version"] >= 1
    assert not any(p.name.startswith(".tmp-") for p in (home / "classifiers" / "k").iterdir())


def test_model_changed_is_a_typed_error(home):
    cl.classifiers.create("m", labels=["x", "y"], model="fast")
    path = home / "classifiers" / "m" / "v1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["weights_hash"] = "0000000000000000"
    path.write_text(json.dumps(manifest))
    store.clear_loaded()
    with pytest.raises(ConflictError) as e:
        cl.classify(text="hi", classifier="m@v1")
    assert e.value.code == "model_changed"
    assert e.value.details["old_hash"] == "0000000000000000" and e.value.details["new_hash"]
    assert e.value.to_dict()["error"] == "conflict_error"


def test_missing_model_is_a_typed_error(home):
    cl.classifiers.create("m", labels=["x", "y"], model="fast")
    path = home / "classifiers" / "m" / "v1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["model"] = "gone-model"
    path.write_text(json.dumps(manifest))
    store.clear_loaded()
    with pytest.raises(ModelNotInstalledError) as e:
        store.load("m")
    assert e.value.details["classifier"] == "m@v1"


def test_newer_format_is_refused(home):
    cl.classifiers.create("f", labels=["x", "y"], model="fast")
    path = home / "classifiers" / "f" / "v1" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))
    store.clear_loaded()
    with pytest.raises(ConflictError) as e:
        store.load("f")
    assert e.value.code == "classifier_format_unsupported"
