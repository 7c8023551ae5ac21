"""The shipped label-matching encoder: an fp16 overlay on the packaged MiniLM, loaded offline."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files

import numpy as np

import classer_local as cl
from classer_local import registry
from classer_local.backends import load_text

NAME = "minilm-l6-labelmatch"


def test_artefact_matches_its_manifest() -> None:
    folder = files("classer_local") / "models" / NAME
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / "encoder.safetensors").read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["weights_sha256"]
    assert manifest["program"] == "training/train_encoder.py" and manifest["held_out_sets"]
    broad_eval = {"airline_complaint_reason", "amazon_alexa_review_rating", "bbc_news", "email_spam", "snips_intents",
                  "twenty_newsgroups", "financial_phrasebank_sentiment", "ohsumed_23", "reuters21578_topics"}
    assert not broad_eval & set(manifest["data"])  # trained on train/ only, never on eval/
    assert (folder / "MODEL_CARD.md").read_text().startswith("# minilm-l6-labelmatch")


def test_overlay_loads_and_changes_the_encoder() -> None:
    spec = registry.get(NAME)
    assert spec.installed() and spec.base_path() is not None
    new = load_text(spec, "cpu").encode(["refund please", "the app crashes"])
    old = load_text(registry.get("all-minilm-l6-v2"), "cpu").encode(["refund please", "the app crashes"])
    assert new.shape == old.shape == (2, 384)
    assert np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(new, old, atol=1e-3)


def test_it_matches_everyday_labels_and_names_itself() -> None:
    rs = cl.classify_batch(texts=["refund please", "the app crashes when I open it"],
                           labels=["billing", "technical"], model=NAME, cache=False)
    assert [r.label for r in rs] == ["billing", "technical"]
    assert all(r.model == NAME for r in rs)
