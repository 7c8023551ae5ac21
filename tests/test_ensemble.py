"""Ensembles of text encoders (backends/ensemble.py): the shipped one and one a user writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import classer_local as cl
from classer_local import registry, user_models
from classer_local.backends import cpu_runtime, load_text
from classer_local.errors import InvalidRequestError

NAME = "labelmatch-ensemble"
TEXTS = ["I can't log in to my account", "please refund my last invoice", "do you sell a family plan?"]


def test_vectors_are_the_weighted_members_and_cosines_their_weighted_mean() -> None:
    spec = registry.get(NAME)
    members, weights = registry.ensemble_members(spec)
    assert [m.name for m in members] == spec.options["members"] and abs(sum(weights) - 1) < 1e-9
    ens = load_text(spec, "cpu")
    X, tokens = ens.encode_with_tokens(TEXTS)
    assert X.shape == (3, spec.dim) and np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-4)
    parts = [load_text(m, "cpu").encode(TEXTS) for m in members]
    assert tokens == load_text(members[0], "cpu").count_tokens(TEXTS)  # the primary's counts
    want = sum(w * (p @ p.T) for w, p in zip(weights, parts))
    np.testing.assert_allclose(X @ X.T, want, atol=1e-4)
    assert " + " in cpu_runtime(spec) and spec.installed()


def test_it_answers_the_seeds_example_and_names_itself() -> None:
    r = cl.classify(TEXTS[0], labels=["billing", "technical", "sales"], model=NAME, cache=False)
    assert r.label == "technical" and r.model == NAME and r.tokens == 11


def test_windows_follow_the_primary_member() -> None:
    long = "word " * 400
    with pytest.raises(InvalidRequestError):
        load_text(registry.get(NAME), "cpu").encode([long], truncate="NONE")
    assert load_text(registry.get(NAME), "cpu").encode([long], truncate="END").shape == (1, 1280)


def _user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models: dict) -> None:
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    (tmp_path / "models.json").write_text(json.dumps({"models": models}))


def test_a_user_ensemble_of_two_fast_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"kind": "text", "backend": "ensemble", "weights": "members", "dim": 512 + 256,
             "members": ["use-multilingual", "wordllama-l2-supercat"], "member_weights": [3, 1]}
    _user(tmp_path, monkeypatch, {"mix": entry})
    spec = registry.get("mix")
    assert registry.ensemble_members(spec)[1] == [0.75, 0.25]
    rs = cl.classify_batch(texts=["refund please", "the app crashes when I open it"], labels=["billing", "technical"],
                           model="mix", cache=False)
    assert [r.label for r in rs] == ["billing", "technical"] and rs[0].model == "mix"
    rows = [{"text": f"{t} (case {i})", "label": lb} for i in range(6) for t, lb in (
        ("I was charged twice for my subscription", "billing"), ("please refund the last invoice", "billing"),
        ("the app crashes on start", "technical"), ("I get an error when I upload a file", "technical"))]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    fit = user_models.calibrate("mix", tmp_path / "rows.jsonl")  # calibrated like any model, into models.json
    assert fit["rows"] == 24 and registry.get("mix").calibration["temperature"] == fit["calibration"]["temperature"]
    first = spec.weights_hash()
    (tmp_path / "models.json").write_text(json.dumps({"models": {"mix": {**entry, "member_weights": [1, 1]}}}))
    assert registry.get("mix").weights_hash() != first  # saved classifiers notice a reweighted ensemble


@pytest.mark.parametrize(("change", "words"), [
    ({"members": ["no-such-model"]}, "not a model"),
    ({"members": ["efficientnet-lite0"]}, "text model"),
    ({"members": ["mix"]}, "not an ensemble"),
    ({"members": "use-multilingual"}, "non-empty list"),
    ({"member_weights": [1, -1]}, "positive"),
    ({"member_weights": [1]}, "one positive number per member"),
    ({"dim": 100}, "dims sum to 768"),
])
def test_bad_ensembles_are_refused_with_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       change: dict, words: str) -> None:
    entry = {"kind": "text", "backend": "ensemble", "weights": "members", "dim": 768,
             "members": ["use-multilingual", "wordllama-l2-supercat"], **change}
    name = "bad-" + "".join(c for c in words if c.isalnum())  # a loaded model is cached by name: one per case
    _user(tmp_path, monkeypatch, {name: {**entry, "members": [name if m == "mix" else m for m in entry["members"]]}
                                  if isinstance(entry["members"], list) else entry})
    with pytest.raises(InvalidRequestError) as err:
        cl.classify("refund please", labels=["billing", "technical"], model=name, cache=False)
    assert err.value.code == "model_config_invalid" and words in str(err.value)


def test_tuning_an_ensemble_tunes_its_primary_member_only() -> None:
    from classer_local.tuning import TuneSettings

    X = ["How many legs does a spider have?", "What is the population of Brazil?", "Where is the Great Barrier Reef?",
         "What city hosted the 1992 Olympics?", "Who painted the Mona Lisa?", "Who invented the telephone?"]
    y = ["number", "number", "place", "place", "person", "person"]
    frozen = cl.Classifier(model=NAME).fit(X, y)
    tuned = cl.Classifier(model=NAME).fit(X, y, tune=True, tune_settings=TuneSettings(max_steps=4, seed=0))
    assert tuned.tuned_.base_model_id == registry.get(NAME).options["members"][0] + "@1"
    assert tuned.vector_id.startswith(NAME + "@1+tune:")
    a, b = frozen.embedder.encode(TEXTS), tuned.embedder.encode(TEXTS)
    d = registry.get("minilm-l6-labelmatch").dim
    assert not np.allclose(a[:, :d], b[:, :d], atol=1e-4)  # the primary's part moved
    np.testing.assert_allclose(a[:, d:], b[:, d:], atol=1e-5)  # the other members' did not
    assert tuned.embedder.members[1] is frozen.embedder.members[1]
