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


def test_its_int8_copy_scores_close_to_float_and_tunes_in_float(monkeypatch) -> None:
    from classer_local.backends.sentence_transformers import SentenceTransformerEmbedder, quantize_wanted

    spec = registry.get(NAME + "-int8")  # opt in by name; the default stays float
    assert spec.options.get("quantize") == "int8" and "quantize" not in registry.get(NAME).options
    assert spec.options["base"] == registry.get(NAME).options["base"] and spec.calibration == registry.get(NAME).calibration
    assert quantize_wanted("int8", "cpu") and not quantize_wanted("int8", "cuda") and not quantize_wanted(None, "cpu")
    int8 = load_text(spec, "cpu")
    assert int8.quantized and int8.model[0].auto_model.encoder.layer[0].intermediate.dense._get_name() \
        == "DynamicQuantizedLinear"
    monkeypatch.setenv("CLASSER_QUANTIZE", "0")  # the switch back to float32 for a process
    assert not quantize_wanted("int8", "cpu")
    flt = SentenceTransformerEmbedder(spec, "cpu")
    assert not flt.quantized and flt.float_model is flt.model
    texts = ["refund please", "the app crashes when I open it", "Who won the match last night?",
             "I can't log in to my account"]
    a, b = int8.encode(texts), flt.encode(texts)
    cos = (a * b).sum(1)
    assert cos.min() > 0.95 and not np.allclose(a, b, atol=1e-4), cos
    # tuning trains the float model: the int8 embedder gives it on demand, weights equal to the float load
    again = int8.float_model
    assert again is int8.float_model and again is not int8.model
    np.testing.assert_array_equal(again[0].auto_model.encoder.layer[0].intermediate.dense.weight.detach().numpy(),
                                  flt.model[0].auto_model.encoder.layer[0].intermediate.dense.weight.detach().numpy())
    # a tuned copy of the int8 model trains on the float weights and scores in int8 again
    from classer_local.tuning import TuneSettings, apply, tune

    owners = [[0], [1], [1], [0]]
    delta = tune(int8, texts, owners, [["billing"], ["technical"]], settings=TuneSettings(max_steps=3, seed=0),
                 progress=False)
    tuned = apply(int8, delta)
    assert tuned.quantized and tuned.float_model is not again and tuned.model is not int8.model
    assert tuned.model[0].auto_model.encoder.layer[0].attention.self.query._get_name() == "DynamicQuantizedLinear"
    moved = tuned.encode(texts)
    assert not np.allclose(moved, a, atol=1e-4) and (moved * a).sum(1).min() > 0.9


def test_bfloat16_on_a_cpu_with_native_bf16_scores_like_float32(tmp_path, monkeypatch) -> None:
    import pytest

    from classer_local.backends._precision import bf16_wanted, native_bf16
    from classer_local.backends.sentence_transformers import SentenceTransformerEmbedder
    from classer_local.errors import InvalidRequestError

    spec = registry.get(NAME)
    assert spec.options.get("cpu_dtype") == "bfloat16"  # the shipped default asks for it
    listed = {m["name"]: m["precision"] for m in registry.models()}  # what `classer-local models list` shows
    assert listed[NAME] == "bfloat16" and listed[NAME + "-int8"] == "int8" and listed["wordllama-l2-supercat"] == "float32"
    assert not bf16_wanted("bfloat16", "cuda") and not bf16_wanted("float32", "cpu") and not bf16_wanted(None, "cpu")
    assert not load_text(registry.get(NAME + "-int8"), "cpu").bf16  # int8 layers run integer kernels instead
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))  # an unknown dtype is refused when the entry is read
    (tmp_path / "models.json").write_text(json.dumps({"models": {"half": {"like": NAME, "cpu_dtype": "float16"}}}))
    with pytest.raises(InvalidRequestError) as err:
        registry.get("half")
    assert err.value.code == "model_config_invalid" and "cpu_dtype" in str(err.value)
    if not native_bf16():
        assert not load_text(spec, "cpu").bf16  # emulated bfloat16 is slower than float32: never chosen
        pytest.skip("this CPU has no native bfloat16 matrix units")
    fast = SentenceTransformerEmbedder(spec, "cpu")
    monkeypatch.setenv("CLASSER_BF16", "0")  # the switch back to float32 for a process
    exact = SentenceTransformerEmbedder(spec, "cpu")
    assert fast.bf16 and not exact.bf16
    texts = ["refund please", "the app crashes when I open it", "Who won the match last night?",
             "I can't log in to my account", "word " * 600]  # the last one in several windows
    a, b = fast.encode(texts), exact.encode(texts)
    cos = (a * b).sum(1)
    assert a.dtype == np.float32 and cos.min() > 0.9995 and not np.array_equal(a, b), cos
