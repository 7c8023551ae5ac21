"""The CUDA path: the same answers as the CPU, large batches, images, tuning and the server's
model thread on a GPU. Skipped where torch sees no GPU (CI, these 2-core boxes); run it in a
session that is lent one:

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -m pytest -q tests/test_cuda.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

import classer_local as cl  # noqa: E402
from classer_local import registry  # noqa: E402
from classer_local.backends import load_image, load_text  # noqa: E402
from classer_local.inputs import load_images  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = ["billing", "technical issue", "sales inquiry", "shipping"]
TEXTS = [
    "I was charged twice for my subscription this month",
    "The app crashes every time I open the settings page",
    "Could you send over your enterprise price list?",
    "My package never arrived and tracking has not moved in a week",
    "I can't log in to my account",
    "Refund the duplicate payment please",
]


def test_standard_answers_on_the_gpu_equal_the_cpus():
    cpu = cl.classify_batch(texts=TEXTS, labels=LABELS, device="cpu", cache=False)
    gpu = cl.classify_batch(texts=TEXTS, labels=LABELS, device="cuda", cache=False)
    assert [r.label for r in gpu] == [r.label for r in cpu]
    for a, b in zip(cpu, gpu):
        assert b.scores == pytest.approx(a.scores, abs=0.02)  # {label: confidence}


def test_a_large_batch_of_long_and_short_texts_matches_the_cpu_vectors():
    texts = [f"{t} (ticket {i})" + " and more detail" * (i % 40) for i, t in enumerate(TEXTS * 200)]
    spec = registry.get("standard")
    gpu = load_text(spec, "cuda").encode(texts)
    cpu = load_text(spec, "cpu").encode(texts[:300])
    assert gpu.shape == (len(texts), spec.dim) and gpu.dtype == np.float32
    assert (gpu[:300] * cpu).sum(1).min() > 0.99


def test_images_on_the_gpu_equal_the_cpus():
    imgs = [load_images(FIXTURES / f"cifar_{lab}.jpg")[0] for lab in ("cat", "truck")]
    spec = registry.get("image")
    f_gpu, p_gpu = load_image(spec, "cuda").encode_with_probs(imgs)
    f_cpu, p_cpu = load_image(spec, "cpu").encode_with_probs(imgs)
    assert (f_gpu * f_cpu).sum(1).min() > 0.99
    assert (p_gpu.argmax(1) == p_cpu.argmax(1)).all()


def test_tuning_runs_on_the_gpu_and_its_delta_loads_on_the_cpu():
    from classer_local.tuning import TuneSettings, apply, tune

    owners = [[0], [1], [2], [3], [1], [0]]
    gpu = load_text(registry.get("standard"), "cuda")
    gpu = getattr(gpu, "primary", gpu)  # an ensemble tunes its primary member
    delta = tune(gpu, TEXTS, owners, [[lb] for lb in LABELS], settings=TuneSettings(max_steps=5, seed=0),
                 progress=False)
    on_gpu = apply(gpu, delta).encode(TEXTS)
    cpu = load_text(registry.get("standard"), "cpu")
    on_cpu = apply(getattr(cpu, "primary", cpu), delta).encode(TEXTS)
    assert (on_gpu * on_cpu).sum(1).min() > 0.99


def test_a_fitted_classifier_on_the_gpu_answers_like_the_cpu():
    X = TEXTS * 4
    y = ["billing", "technical issue", "sales inquiry", "shipping", "technical issue", "billing"] * 4
    gpu = cl.Classifier(LABELS, device="cuda", cache=False).fit(X, y)
    cpu = cl.Classifier(LABELS, device="cpu", cache=False).fit(X, y)
    assert list(gpu.predict(TEXTS)) == list(cpu.predict(TEXTS))
    np.testing.assert_allclose(gpu.predict_proba(TEXTS), cpu.predict_proba(TEXTS), atol=0.02)
