"""Opt-in tuning wired through the classifier, the store and the CLI (real model, real files)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import classer_local as cl
from classer_local import store
from classer_local.errors import InvalidRequestError
from classer_local.tuning import TuneSettings

X = ["How many people live in Tokyo?", "What is the population of Canada?", "How far is the moon?",
     "Where is the Eiffel Tower?", "In which country is Lima?", "Where do penguins live?",
     "Who wrote Hamlet?", "Who painted the Mona Lisa?", "Who was the first US president?"]
Y = ["number"] * 3 + ["place"] * 3 + ["person"] * 3
PROBE = ["How tall is Everest?", "Where is Timbuktu?", "Who discovered penicillin?"]
QUICK = TuneSettings(max_steps=8)


@pytest.fixture(scope="module")
def tuned() -> cl.Classifier:
    return cl.Classifier().fit(X, Y, tune=True, tune_settings=QUICK)


def test_fit_tune_changes_the_encoder_and_keeps_the_contract(tuned):
    frozen = cl.Classifier().fit(X, Y)
    assert tuned.tuned_ is not None and tuned.tuned_.steps == 8 and tuned.tuned_.nbytes < 2 * 2**20
    assert tuned.vector_id != frozen.vector_id and tuned.vector_id.startswith(frozen.spec_.model_id + "+tune:")
    assert not np.allclose(tuned.embedder.encode(PROBE), frozen.embedder.encode(PROBE))
    np.testing.assert_allclose(frozen.embedder.encode(PROBE), cl.Classifier(["x", "y"]).embedder.encode(PROBE))
    assert list(tuned.predict(PROBE)) == ["number", "place", "person"]
    again = pickle.loads(pickle.dumps(tuned))
    np.testing.assert_allclose(again.predict_proba(PROBE), tuned.predict_proba(PROBE), atol=1e-6)


def test_tuned_answers_are_cached_apart_from_untuned_ones(tuned):
    frozen = cl.Classifier(labels=tuned.labels_, examples=tuned.examples_)
    text = "Where was Mozart born?"
    first = frozen.classify(text)
    other = tuned.classify(text)
    assert not other.cached and first.scores != other.scores
    assert tuned.classify(text).cached


def test_store_saves_the_delta_and_loads_it_offline(tuned):
    labels = ["number", "place", "person"]
    examples = {lb: [x for x, y in zip(X, Y) if y == lb] for lb in labels}
    info = store.create("tuned-questions", labels=labels, examples=examples, tune=True, tune_settings=QUICK)
    assert info["tuned"]["steps"] == 8 and info["tuned"]["delta_bytes"] < 2 * 2**20
    loaded = store.load(info["ref"])
    in_process = cl.Classifier(labels, examples=examples).tune(QUICK, progress=False)
    in_process.calibrate()
    assert loaded.tuned_ is not None and loaded.tuned_.digest == in_process.tuned_.digest  # seeded: reproducible
    np.testing.assert_allclose(loaded.predict_proba(PROBE), in_process.predict_proba(PROBE), atol=1e-4)
    assert loaded.tag(PROBE[0]).scores == in_process.tag(PROBE[0]).scores


def test_store_tune_makes_the_next_version_from_saved_examples():
    first = store.create("to-tune", labels=["number", "place", "person"],
                         examples={lb: [x for x, y in zip(X, Y) if y == lb] for lb in ["number", "place", "person"]})
    assert first["tuned"] is None
    second = store.tune(first["ref"], tune_settings=QUICK)
    assert second["ref"] == "to-tune@v2" and second["tuned"]["steps"] == 8
    assert store.load("to-tune@v2").tuned_ is not None and store.load("to-tune@v1").tuned_ is None
    bare = store.create("no-examples", labels=["a", "b"])
    with pytest.raises(InvalidRequestError) as e:
        store.tune(bare["ref"])
    assert e.value.code == "tuning_examples_empty"


def test_cli_classifiers_tune(tmp_path):
    env = {**os.environ, "CLASSER_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "classer_local.cli", "classifiers"]
    ex = [a for x, y in zip(X, Y) for a in ("--example", f"{y}={x}")]
    subprocess.run([*cli, "create", "q", "-l", "number", "-l", "place", "-l", "person", *ex],
                   check=True, env=env, capture_output=True, timeout=300)
    res = subprocess.run([*cli, "tune", "q", "--max-steps", "4"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "created q@v2: tuned 4 steps" in res.stdout
