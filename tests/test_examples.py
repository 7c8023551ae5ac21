"""Example hygiene (classer_local/examples.py, docs/examples.md): duplicates, one text under
several labels, labels without examples, long examples, examples in another language.
Real standard model; no mocks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import classer_local as cl
from classer_local.examples import ExampleWarning

SPORT = ["The striker scored twice in the final", "A late goal won the derby", "The team signed a new goalkeeper",
         "She won the marathon in record time"]
POLITICS = ["Parliament passed the budget bill", "The senator announced her campaign",
            "Voters head to the polls on Sunday", "The minister resigned after the scandal"]
PROBE = ["Who won the match last night?", "The election results are in", "Bake the cake for thirty minutes"]


def _quiet(**kw) -> cl.Classifier:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExampleWarning)  # these classifiers must raise none
        return cl.Classifier(**kw).build()


def test_duplicates_count_once():
    dup = _quiet(labels=["sports", "politics"], examples={"sports": SPORT + SPORT[:2], "politics": POLITICS})
    clean = _quiet(labels=["sports", "politics"], examples={"sports": SPORT, "politics": POLITICS})
    assert dup.example_report_.duplicates == 2
    assert dup.example_report_.per_label == {"sports": 4, "politics": 4}
    np.testing.assert_allclose(dup.predict_proba(PROBE), clean.predict_proba(PROBE), atol=1e-6)


def test_text_under_two_labels_teaches_tag_only_and_warns():
    both = "The president threw the first pitch at the baseball game"
    with pytest.warns(ExampleWarning, match="several labels"):
        clf = cl.Classifier(labels=["sports", "politics"],
                            examples={"sports": SPORT + [both], "politics": POLITICS + [both]}).build()
    assert clf.example_report_.conflicts == {both: ["sports", "politics"]}
    without = _quiet(labels=["sports", "politics"], examples={"sports": SPORT, "politics": POLITICS})
    # classify: the head never saw the ambiguous text
    np.testing.assert_allclose(clf.heads_.head.coef_, without.heads_.head.coef_, atol=1e-5)
    # tag: it is a positive of both labels, so both one-vs-rest heads rise on it
    x = clf.embedder.encode([both])
    clf.heads_.fit_tag()
    without.heads_.fit_tag()
    assert (clf.heads_.tag_head.decision_function(x) > without.heads_.tag_head.decision_function(x)).all()


def test_label_without_examples_keeps_its_prior():
    clf = _quiet(labels=["sports", "politics", "cooking"], examples={"sports": SPORT, "politics": POLITICS})
    assert clf.example_report_.without_examples == ["cooking"]
    assert clf.predict(PROBE).tolist() == ["sports", "politics", "cooking"]
    r = clf.classify("Whisk the eggs and sugar, then fold in the flour and bake")
    assert r.label == "cooking"


def test_long_examples_are_windowed_and_counted():
    long = " ".join(["The goalkeeper saved a penalty in the second half of the cup final."] * 60)
    clf = _quiet(labels=["sports", "politics"], examples={"sports": SPORT + [long], "politics": POLITICS})
    assert clf.example_report_.windowed == 1
    assert clf.classify("A hat-trick for the young forward").label == "sports"


def test_foreign_examples_warn_on_an_english_model():
    german = ["Der Stürmer hat im Finale zweimal getroffen und die Mannschaft gewann den Pokal",
              "Die Mannschaft hat sich für die nächste Saison einen neuen Torwart aus dem Ausland geholt, und er ist gut"]
    with pytest.warns(ExampleWarning, match="use-multilingual"):
        clf = cl.Classifier(labels=["sports", "politics"], examples={"sports": german, "politics": POLITICS}).build()
    assert clf.example_report_.foreign == {"de": 2}
    assert clf.example_report_.as_dict()["foreign"] == {"de": 2}


def _clusters(seed: int, k: int, per: int, d: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """``per`` noisy unit vectors around each of ``k`` random centres: (the generator, X, y)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), per)
    X = (centres[y] + 1.5 * rng.normal(size=(len(y), d))).astype(np.float32)
    return rng, X / np.linalg.norm(X, axis=1, keepdims=True), y


def test_out_of_fold_heads_fit_in_parallel_with_the_same_choice():
    from classer_local.heads import ExampleHeads
    from classer_local.scoring import log_softmax

    k = 6
    rng, X, y = _clusters(0, k, per=20, d=32)
    prior = log_softmax(rng.normal(size=(len(y), k)))  # a weak, noisy name prior
    runs = []
    for workers in (1, 2):
        heads = ExampleHeads(k, weight=0.5, C=10.0)
        heads.head_labels = np.arange(k)
        heads.select_blend(X, y, prior, min_cv=4, workers=workers)
        runs.append(heads)
    one, two = runs
    assert one.selection["fold_workers"] == 1 and two.selection["fold_workers"] == 2
    assert {**one.selection, "fold_workers": 0} == {**two.selection, "fold_workers": 0}
    assert (one.kind, one.weight, one.temperature, one.centroid_temperature, one.stack) == \
        (two.kind, two.weight, two.temperature, two.centroid_temperature, two.stack)


def test_tag_calibration_folds_in_parallel_give_the_same_thresholds():
    from classer_local.heads import ExampleHeads, cross_validated_tag

    rng = np.random.default_rng(1)
    k, n, d = 5, 150, 24
    centres = rng.normal(size=(k, d))
    owners = [sorted(set(rng.choice(k, size=rng.integers(1, 3), replace=False).tolist())) for _ in range(n)]
    X = np.stack([centres[o].sum(0) + rng.normal(size=d) for o in owners]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    prior_z = rng.normal(size=(n, k))

    def fit(Xf, of):
        return ExampleHeads.fit(Xf, of, k, prior_k=4.0, C=10.0, classify_head=False)

    (a1, b1), t1, kind1 = cross_validated_tag(X, owners, k, prior_z, fit, workers=1)
    (a2, b2), t2, kind2 = cross_validated_tag(X, owners, k, prior_z, fit, workers=2)
    assert kind1 == kind2 and kind1 in ("ovr", "softmax")
    assert (a1, b1) == (a2, b2) and np.array_equal(t1, t2, equal_nan=True) and np.isfinite(t1).any()


def test_stacking_weighs_a_noise_prior_down_and_an_informative_one_up():
    from classer_local.heads import ExampleHeads
    from classer_local.scoring import log_softmax

    k = 4
    rng, X, y = _clusters(3, k, per=20, d=32)
    onehot = np.eye(k)[y]
    stacks = {}
    for name, prior in (("noise", log_softmax(rng.normal(size=(len(y), k)))),
                        ("informative", log_softmax(4.0 * onehot + rng.normal(size=(len(y), k))))):
        heads = ExampleHeads(k, weight=0.8, C=4.0)
        heads.head_labels = np.arange(k)
        heads.select_blend(X, y, prior)
        assert heads.kind == "stack" and heads.selection["kind"] == "stack" and min(heads.stack) >= 0
        assert heads.selection["oof_accuracy_best"] >= heads.selection["oof_accuracy_default"] - 0.05
        stacks[name] = heads.stack
    assert stacks["noise"][0] < 0.25 * (stacks["noise"][1] + stacks["noise"][2])
    assert stacks["informative"][0] > stacks["noise"][0] + 0.5


def test_a_stacked_classifier_answers_the_same_after_saving(tmp_path, monkeypatch):
    from classer_local import store

    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    subjects = ["The striker", "Our goalkeeper", "The home side", "A young forward", "The captain", "The coach",
                "The midfielder", "Their defence"]
    plays = ["scored in the final", "won the derby"]
    voters = ["Parliament", "The senator", "The ministry", "The opposition", "The president", "The council",
              "The coalition", "The mayor"]
    acts = ["passed the budget bill", "called an early election"]
    examples = {"sports": [f"{s} {p}" for s in subjects for p in plays],
                "politics": [f"{s} {a}" for s in voters for a in acts]}
    try:
        store.create("stacked", labels=["sports", "politics"], examples=examples, model="fast")
        fresh = cl.Classifier(labels=["sports", "politics"], examples=examples, model="fast").build()
        loaded = store.load("stacked@v1")
        assert fresh.heads_.kind == loaded.heads_.kind == "stack"  # 16 examples a label: stacked
        assert loaded.heads_.stack == pytest.approx(fresh.heads_.stack)
        for text in PROBE:
            assert loaded.classify(text, cache=False).scores == fresh.classify(text, cache=False).scores
    finally:
        store.clear_loaded()


def test_a_softmax_tag_head_refits_and_survives_saving():
    from classer_local.heads import ExampleHeads

    rng = np.random.default_rng(5)
    k, n, d = 4, 80, 16
    centres = rng.normal(size=(k, d))
    owners = [[int(rng.integers(k))] for _ in range(n)]
    X = np.stack([centres[o[0]] + 0.8 * rng.normal(size=d) for o in owners]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    prior_z = rng.normal(size=(n, k))
    heads = ExampleHeads.fit(X, owners, k, prior_k=4.0, C=4.0, classify_head=False)
    ovr = heads.tag_logits(prior_z, X)
    heads.refit_tag("softmax", X, owners)
    soft = heads.tag_logits(prior_z, X)
    assert heads.tag_kind == "softmax" and not np.allclose(ovr, soft)
    assert (soft.argmax(axis=1) == np.array([o[0] for o in owners])).mean() > 0.8
    back = ExampleHeads.from_arrays(k, heads.config(), heads.arrays())
    assert back.tag_kind == "softmax"
    np.testing.assert_allclose(back.tag_logits(prior_z, X), soft, rtol=1e-5, atol=1e-5)
