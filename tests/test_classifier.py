"""Core properties of classify/tag on the real packaged models."""

from __future__ import annotations

import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import classer_local as cl
from classer_local.errors import ModelNotInstalledError

SUPPORT = ["billing", "technical", "sales"]
TEXTS = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "Can I get a quote for 300 seats for my team?",
    "My invoice shows the wrong VAT number",
    "Error 500 when uploading a file",
]


@pytest.mark.parametrize("priority", ["standard", "fast"])
def test_classify_scores_sum_to_one_and_label_is_argmax(priority):
    r = cl.classify(text=TEXTS[0], labels=SUPPORT, priority=priority, cache=False)
    assert set(r.scores) == set(SUPPORT)
    assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-9)
    assert r.label == max(r.scores, key=r.scores.get)
    assert r.confidence == r.scores[r.label]
    assert r.confidence == round(r.confidence, 4)
    assert r.tokens > 5 and r.latency_ms > 0 and r.cached is False
    assert r.request_id.startswith("req_")


def test_two_hundred_labels_still_sum_to_one_exactly():
    labels = [f"topic number {i}" for i in range(200)]
    r = cl.classify(text="a question about topic number 17", labels=labels, priority="fast", cache=False)
    assert round(sum(r.scores.values()), 4) == 1.0


DESCRIBED = {"billing": "Payments, invoices, refunds and charges", "technical": "Bugs, errors, crashes, login problems",
             "sales": "Pricing, quotes, demos and buying"}


def test_sensible_zero_shot_answers():
    got = [cl.classify(text=t, labels=SUPPORT, descriptions=DESCRIBED, cache=False).label for t in TEXTS]
    assert got == ["billing", "technical", "sales", "billing", "technical"]
    named = ["billing", "technical issue", "sales inquiry"]
    assert [cl.classify(text=t, labels=named, cache=False).label for t in TEXTS[1:4]] == named[1:] + ["billing"]


def test_label_order_does_not_change_results():
    a = cl.classify(text=TEXTS[1], labels=SUPPORT, cache=False)
    shuffled = SUPPORT[::-1]
    b = cl.classify(text=TEXTS[1], labels=shuffled, cache=False)
    assert a.label == b.label
    assert a.scores == pytest.approx(b.scores, abs=2e-4)
    assert list(b.scores) == shuffled  # scores come back in the caller's order


def test_label_order_with_examples_and_descriptions():
    desc = {"billing": "Payments, invoices, refunds and charges", "sales": "Buying, pricing, quotes and demos"}
    ex = {"billing": ["refund my payment", "invoice is wrong"], "technical": ["bug in the app", "page won't load"],
          "sales": ["how much for 10 seats", "book a demo"]}
    labels = list(SUPPORT)
    a = cl.classify(text=TEXTS[3], labels=labels, descriptions=desc, examples=ex, cache=False)
    random.Random(3).shuffle(labels)
    b = cl.classify(text=TEXTS[3], labels=labels, descriptions=desc, examples=ex, cache=False)
    assert a.label == b.label
    assert a.scores == pytest.approx(b.scores, abs=2e-4)


def test_cache_hit_equals_miss():
    text = "cache me: my card was declined at checkout"
    miss = cl.classify(text=text, labels=SUPPORT)
    hit = cl.classify(text=text, labels=SUPPORT)
    assert (miss.cached, hit.cached) == (False, True)
    assert (hit.label, hit.confidence, hit.scores, hit.tokens) == (miss.label, miss.confidence, miss.scores, miss.tokens)
    permuted = cl.classify(text=text, labels=SUPPORT[::-1])
    assert permuted.cached and permuted.scores == {k: miss.scores[k] for k in SUPPORT[::-1]}
    bypass = cl.classify(text=text, labels=SUPPORT, cache=False)
    assert bypass.cached is False and bypass.scores == miss.scores


def test_cache_is_keyed_on_model_and_threshold():
    text = "cache key check: upgrade my plan"
    std = cl.tag(text=text, labels=SUPPORT, threshold=0.3)
    assert cl.tag(text=text, labels=SUPPORT, threshold=0.3, priority="fast").cached is False
    assert cl.tag(text=text, labels=SUPPORT, threshold=0.6).cached is False
    assert cl.tag(text=text, labels=SUPPORT, threshold=0.3).cached is True
    assert std.model == "labelmatch-ensemble"  # the standard tier's model names itself


def test_cache_survives_across_processes(tmp_path):
    code = (
        "import classer_local as cl;"
        "r = cl.classify(text='cross process cache', labels=['a', 'b'], priority='fast');"
        "print(r.cached, r.scores)"
    )
    env = {**__import__("os").environ, "CLASSER_HOME": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.startswith("False") and second.stdout.startswith("True")
    assert first.stdout.split(" ", 1)[1] == second.stdout.split(" ", 1)[1]


@pytest.mark.parametrize("priority", ["standard", "fast"])
def test_batch_equals_one_by_one(priority):
    batch = cl.classify_batch(texts=TEXTS, labels=SUPPORT, priority=priority, cache=False)
    for text, r in zip(TEXTS, batch):
        one = cl.classify(text=text, labels=SUPPORT, priority=priority, cache=False)
        assert one.label == r.label
        assert one.scores == pytest.approx(r.scores, abs=2e-4)
        assert one.tokens == r.tokens
    tags = cl.tag_batch(texts=TEXTS, labels=SUPPORT, threshold=0.4, priority=priority, cache=False)
    for text, t in zip(TEXTS, tags):
        one = cl.tag(text=text, labels=SUPPORT, threshold=0.4, priority=priority, cache=False)
        assert one.scores == pytest.approx(t.scores, abs=2e-4)


def test_tag_threshold_and_order():
    t = cl.tag(text="Breaking: Tech stocks surge amid AI boom",
               labels=["politics", "technology", "finance", "sports"], threshold=0.0, cache=False)
    confs = [x.confidence for x in t.labels]
    assert confs == sorted(confs, reverse=True) and len(confs) == 4
    assert t.labels[-1].label in ("sports", "politics")
    strict = cl.tag(text="Breaking: Tech stocks surge amid AI boom",
                    labels=["politics", "technology", "finance", "sports"], threshold=0.5, cache=False)
    assert all(x.confidence >= 0.5 for x in strict.labels)
    assert {x.label for x in strict.labels} == {k for k, v in strict.scores.items() if v >= 0.5}


def test_descriptions_and_examples_steer_the_answer():
    kw = dict(labels=["hot", "cold"],
              descriptions={"hot": "Ready to buy, asking for pricing or a demo", "cold": "Not interested, asks to stop emails"},
              examples={"hot": ["Can we get a quote for 500 seats?", "Let's book a demo"],
                        "cold": ["Please remove me from this list", "Not interested, thanks"]},
              text_type="sales email", cache=False)
    assert cl.classify(text="Could you send over your enterprise price list?", **kw).label == "hot"
    assert cl.classify(text="Stop emailing me, we chose another vendor.", **kw).label == "cold"
    fast = cl.classify(text="Stop emailing me, we chose another vendor.", priority="fast", **kw)
    assert fast.label == "cold" and fast.model == "wordllama-l2-supercat"


def test_long_text_is_windowed_not_cut():
    filler = "The weather was mild and nothing happened. " * 60  # ~600 tokens
    text = filler + "In the end my credit card was charged twice and I need a refund."
    r = cl.classify(text=text, labels=SUPPORT, cache=False)
    assert r.tokens > 256
    cut = cl.classify(text=text, labels=SUPPORT, truncate="END", cache=False)
    assert cut.scores != r.scores  # END drops the refund sentence; pooling keeps it
    start = cl.classify(text=text, labels=SUPPORT, truncate="START", cache=False)
    assert start.scores["billing"] > cut.scores["billing"]


def test_classifier_object_and_sklearn_verbs():
    clf = cl.Classifier(labels=SUPPORT, descriptions=DESCRIBED)
    assert clf.classify(TEXTS[1]).label == "technical"
    rs = clf.tag(TEXTS[:2], threshold=0.2)
    assert isinstance(rs, list) and len(rs) == 2
    X = ["refund my money", "the invoice is wrong", "I was charged twice", "the app is down", "login fails",
         "the page shows an error", "price for 50 seats", "book a demo", "do you offer a discount"]
    y = ["billing"] * 3 + ["technical"] * 3 + ["sales"] * 3
    fitted = cl.Classifier().fit(X, y)
    assert fitted is not None and list(fitted.classes_) == ["billing", "sales", "technical"]
    proba = fitted.predict_proba(["I need a refund", "the app crashes on start"])
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(fitted.predict(["I need a refund", "the app crashes on start"])) == ["billing", "technical"]
    assert fitted.fit_seconds_ < 1.0


def test_sklearn_pipeline_compatibility():
    from sklearn.metrics import accuracy_score

    X = ["refund my money", "invoice is wrong", "app is down", "login fails"]
    y = ["billing", "billing", "technical", "technical"]
    clf = cl.Classifier(priority="fast").fit(X, y)
    assert accuracy_score(y, clf.predict(X)) == 1.0


def test_threads_share_one_classifier_safely(standard_clf):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: standard_clf.classify(t, cache=False), TEXTS * 3))
    solo = [standard_clf.classify(t, cache=False) for t in TEXTS]
    for i, r in enumerate(results):
        assert r.label == solo[i % len(TEXTS)].label


def test_cohere_shape():
    res = cl.cohere.classify(
        inputs=["Confirm your email address", "hey i need u to send some $"],
        examples=[{"text": "Dermatologists don't like her!", "label": "Spam"},
                  {"text": "Hello, open to this?", "label": "Spam"},
                  {"text": "Your parcel will be delivered today", "label": "Not spam"},
                  {"text": "Review changes to our Terms and Conditions", "label": "Not spam"}],
        truncate="END").to_dict()
    assert set(res) == {"id", "classifications", "meta"}
    assert res["meta"]["billed_units"]["classifications"] == 2
    c = res["classifications"][0]
    assert {"id", "input", "prediction", "confidence", "predictions", "confidences", "labels"} <= set(c)
    assert c["input"] == "Confirm your email address"
    assert sum(v["confidence"] for v in c["labels"].values()) == pytest.approx(1.0, abs=1e-9)


def test_models_listing_and_missing_weights(monkeypatch, tmp_path):
    rows = {m["name"]: m for m in cl.models()}
    assert rows["labelmatch-ensemble"]["installed"] and "standard" in rows["labelmatch-ensemble"]["default_for"]
    assert rows["minilm-l6-labelmatch"]["installed"] and rows["all-minilm-l6-v2"]["installed"]  # members, by name too
    assert rows["wordllama-l2-supercat"]["installed"] and "fast" in rows["wordllama-l2-supercat"]["default_for"]
    monkeypatch.setenv("CLASSER_MODELS_DIR", str(tmp_path))
    assert not {m["name"]: m for m in cl.models()}["all-mpnet-base-v2"]["installed"]
    with pytest.raises(ModelNotInstalledError) as info:
        cl.classify(text="hi", labels=["a", "b"], model="all-mpnet-base-v2", cache=False)
    assert info.value.code == "model_not_installed" and "pip install" in info.value.message


def test_import_is_light_and_offline():
    code = (
        "import sys, time; t = time.perf_counter(); import classer_local;"
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"


def test_no_network_is_touched(tmp_path):
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n    raise RuntimeError('network touched')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\nsocket.getaddrinfo = refuse\n"
        "import classer_local as cl\n"
        "print(cl.classify(text='my invoice is wrong', labels=['billing', 'technical'], cache=False).label)\n"
        "print(cl.classify(text='my invoice is wrong', labels=['billing', 'technical'], priority='fast').label)\n"
    )
    env = {**__import__("os").environ, "CLASSER_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["billing", "billing"]


def test_device_auto_resolves():
    from classer_local.config import resolve_device

    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_usage_records_calls():
    before = cl.usage(group_by=None)["totals"]["requests"]
    cl.classify(text="usage check", labels=SUPPORT, priority="fast", cache=False)
    after = cl.usage(group_by=None)["totals"]
    assert after["requests"] == before + 1
    last = cl.logs(limit=1)[0]
    assert last["endpoint"] == "classify" and last["model"] == "wordllama-l2-supercat" and last["status"] == "ok"
