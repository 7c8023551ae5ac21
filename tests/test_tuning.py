"""LoRA fine-tuning of the text encoder (classer_local.tuning) on the real all-MiniLM-L6-v2."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest

from classer_local import registry
from classer_local.errors import ClasserError, InvalidRequestError
from classer_local.tuning import TunedDelta, TuneSettings, TuningCancelled, apply, tune

LABELS = [["number", "a quantity, count or amount"], ["place", "a location, city or country"],
          ["person", "a person, who someone is"]]
EXAMPLES = [
    ("How many legs does a spider have?", 0), ("What is the population of Brazil?", 0),
    ("How much does a gallon of milk cost?", 0), ("How tall is the Eiffel Tower in meters?", 0),
    ("Where is the Great Barrier Reef?", 1), ("What city hosted the 1992 Olympics?", 1),
    ("Which country borders both France and Spain?", 1), ("Where do penguins live in the wild?", 1),
    ("Who painted the Mona Lisa?", 2), ("Who was the first woman to fly solo across the Atlantic?", 2),
    ("Who invented the telephone?", 2), ("Which actor played James Bond in Goldfinger?", 2),
]
TEXTS = [t for t, _ in EXAMPLES]
OWNERS = [[j] for _, j in EXAMPLES]
PROBE = ["How far is the Moon?", "Who wrote Hamlet?", "Where is Timbuktu?"]
SETTINGS = TuneSettings(max_steps=20, seed=0)


@pytest.fixture(scope="module")
def emb():
    from classer_local.backends import load_text

    return load_text(registry.get("all-minilm-l6-v2"), "cpu")


@pytest.fixture(scope="module")
def tuned(emb):
    """(delta, the base model's probe vectors before tuning)."""
    before = emb.encode(PROBE + TEXTS)
    delta = tune(emb, TEXTS, OWNERS, LABELS, settings=SETTINGS, progress=False)
    return delta, before


def _small(emb, seed: int, steps: int = 3) -> TunedDelta:
    return tune(emb, TEXTS, OWNERS, LABELS, settings=TuneSettings(max_steps=steps, seed=seed), progress=False)


def _margin(encoder) -> float:
    """Mean over the examples of cos(own label's centroid) minus mean cos(other centroids)."""
    x = encoder.encode(TEXTS)
    y = np.array([j for _, j in EXAMPLES])
    c = np.stack([x[y == j].mean(0) for j in range(len(LABELS))])
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    sims = x @ c.T
    own = sims[np.arange(len(y)), y]
    other = (sims.sum(1) - own) / (len(LABELS) - 1)
    return float((own - other).mean())


def test_tuning_lowers_the_loss(tuned):
    delta, _ = tuned
    assert delta.steps == 20 and delta.examples == len(TEXTS)
    assert np.isfinite(delta.first_loss) and np.isfinite(delta.final_loss)
    assert delta.final_loss < 0.8 * delta.first_loss
    assert delta.seconds > 0


def test_tuned_encoder_separates_the_examples_better(emb, tuned):
    delta, _ = tuned
    base, after = _margin(emb), _margin(apply(emb, delta))
    assert after > base + 0.05, (base, after)


def test_base_embedder_is_untouched(emb, tuned):
    delta, before = tuned
    np.testing.assert_array_equal(emb.encode(PROBE + TEXTS), before)
    model = apply(emb, delta)
    assert model is not emb and model.model is not emb.model and model.tune_digest == delta.digest
    assert model.spec is emb.spec and model.max_tokens == emb.max_tokens
    # an int8 base scores its tuned copy in int8 too; the merged float weights stay for tuning again
    assert model.quantized == emb.quantized and (model.model is not model.float_model) == emb.quantized
    np.testing.assert_array_equal(emb.encode(PROBE + TEXTS), before)
    assert all(p.grad is None for p in emb.float_model.parameters())
    assert not any(m._forward_hooks for m in emb.float_model.modules())
    # the copy shares every unchanged float weight with the base: only the 12 adapted matrices are new
    base = dict(emb.float_model.named_parameters())
    new = sorted(n for n, p in model.float_model.named_parameters() if p.data_ptr() != base[n].data_ptr())
    assert len(new) == 12 and all(n.endswith(("query.weight", "value.weight")) for n in new), new
    vecs = model.encode(PROBE)
    assert vecs.shape == (len(PROBE), 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vecs, before[: len(PROBE)], atol=1e-3)  # the tuned model does differ


def test_arrays_round_trip_to_identical_encodings(emb, tuned, tmp_path):
    delta, _ = tuned
    arrays = delta.to_arrays()
    assert arrays and all(k.startswith("tune/") for k in arrays)
    np.savez(tmp_path / "v.npz", other=np.zeros(3), **arrays)
    meta = json.loads(json.dumps(delta.metadata()))
    with np.load(tmp_path / "v.npz") as npz:
        back = TunedDelta.from_arrays(meta, npz)
    assert back.digest == delta.digest and back.targets == delta.targets and back.steps == delta.steps
    assert sorted(back.tensors) == sorted(delta.tensors)
    np.testing.assert_array_equal(apply(emb, back).encode(PROBE), apply(emb, delta).encode(PROBE))

    tampered = dict(arrays)
    key = next(iter(tampered))
    tampered[key] = tampered[key] + np.float16(1)
    with pytest.raises(InvalidRequestError) as err:
        TunedDelta.from_arrays(meta, tampered)
    assert err.value.code == "tuned_delta_invalid"


def test_same_seed_same_tensors_other_seed_other_digest(emb, tuned):
    delta, _ = tuned
    assert delta.digest == dataclasses.replace(delta, tensors=dict(delta.tensors)).digest
    assert len(delta.digest) == 64
    a, b, c = _small(emb, 0), _small(emb, 0), _small(emb, 1)
    assert a.tensors.keys() == b.tensors.keys()
    for k in a.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k])
    assert a.digest == b.digest
    assert a.digest != c.digest and a.digest != delta.digest
    assert dataclasses.replace(a, alpha=8.0).digest != a.digest  # the merge scale is part of the key


def test_cancel_raises_the_typed_error(emb):
    stop = threading.Event()
    stop.set()
    with pytest.raises(TuningCancelled) as err:
        tune(emb, TEXTS, OWNERS, LABELS, settings=SETTINGS, progress=False, cancel=stop)
    assert isinstance(err.value, ClasserError) and err.value.code == "tuning_cancelled"


def test_mismatched_base_model_is_refused(emb, tuned):
    delta, _ = tuned
    other = dataclasses.replace(delta, base_model_id="minilm-l6-labelmatch@1")
    with pytest.raises(InvalidRequestError) as err:
        apply(emb, other)
    assert err.value.code == "tuned_model_mismatch"


def test_delta_is_small_float16_lora(tuned):
    delta, _ = tuned
    assert delta.nbytes < 2_000_000
    # 6 layers x (query, value) x (A: 8x384, B: 384x8) x 2 bytes
    assert delta.nbytes == 6 * 2 * 2 * 8 * 384 * 2
    assert "encoder.layer.0.attention.self.query.lora_A" in delta.tensors
    assert delta.tensors["encoder.layer.5.attention.self.value.lora_B"].shape == (384, 8)
    assert all(a.dtype == np.float16 for a in delta.tensors.values())
    assert any(np.abs(a).max() > 0 for k, a in delta.tensors.items() if k.endswith("lora_B"))


def test_max_seconds_stops_early(emb):
    settings = TuneSettings(max_steps=50, max_seconds=0.0)
    delta = tune(emb, TEXTS, OWNERS, LABELS, settings=settings, progress=False)
    assert delta.steps == 1


def test_only_sentence_transformers_models_tune():
    import types

    spec = types.SimpleNamespace(name="wordllama-l2-supercat", backend="wordllama", model_id="w@1")
    with pytest.raises(InvalidRequestError) as err:
        tune(types.SimpleNamespace(spec=spec, device="cpu"), TEXTS, OWNERS, LABELS, progress=False)
    assert err.value.code == "tuning_unsupported"


def test_tuning_works_under_inference_mode(emb):
    import torch

    with torch.inference_mode():
        delta = tune(emb, TEXTS, OWNERS, LABELS, settings=TuneSettings(max_steps=2), progress=False)
    assert delta.steps == 2 and delta.final_loss < delta.first_loss


def test_multi_label_rows_train(emb):
    owners = [*OWNERS[:-1], [2, 0]]
    delta = tune(emb, TEXTS, owners, LABELS, settings=TuneSettings(max_steps=2), progress=False)
    assert delta.steps == 2 and np.isfinite(delta.first_loss) and np.isfinite(delta.final_loss)


@pytest.mark.parametrize(("owners", "settings", "code"), [
    ([[0]] * 11 + [[3]], None, "tuning_owners_invalid"),
    ([[0]] * 11 + [[]], None, "tuning_owners_invalid"),
    (OWNERS[:-1], None, "tuning_owners_invalid"),
    (OWNERS, TuneSettings(targets=("nonexistent",)), "tuning_settings_invalid"),
    (OWNERS, TuneSettings(rank=0), "tuning_settings_invalid"),
])
def test_bad_arguments_are_refused(emb, owners, settings, code):
    with pytest.raises(InvalidRequestError) as err:
        tune(emb, TEXTS, owners, LABELS, settings=settings, progress=False)
    assert err.value.code == code


def test_many_labels_are_sampled_per_step_and_stay_reproducible(emb):
    from classer_local import tuning

    n = tuning.MAX_LABELS_PER_STEP + 6
    labels = [[f"topic number {i}"] for i in range(n)]
    texts = [f"a short text about topic {i} and nothing else" for i in range(n)]
    owners = [[i] for i in range(n)]
    quick = TuneSettings(max_steps=3, batch_size=8)
    a = tune(emb, texts, owners, labels, settings=quick, progress=False)
    b = tune(emb, texts, owners, labels, settings=quick, progress=False)
    assert a.steps == 3 and np.isfinite([a.first_loss, a.final_loss]).all()
    assert a.digest == b.digest  # the label samples are seeded too
