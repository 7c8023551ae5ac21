"""Batch adaptation: the floor, the degeneracy guard, the gain on a clustered batch, and the API switch."""

from __future__ import annotations

import numpy as np

import classer_local as cl
from classer_local import adapt


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two label vectors and texts that sit near a point between them, each on its own side."""
    rng = np.random.default_rng(seed)
    P = _normalize(rng.normal(size=(2, 16)))
    centres = _normalize(P + 0.8 * _normalize(rng.normal(size=(2, 16))))  # the batch's own way to write them
    y = rng.integers(0, 2, n)
    X = _normalize(centres[y] + 0.35 * rng.normal(size=(n, 16)))
    return X.astype(np.float32), P.astype(np.float32), y


def test_small_batches_are_left_alone() -> None:
    X, P, _ = _clustered(adapt.MIN_BATCH - 1)
    sims, info = adapt.adapt_sims(X, P)
    assert info.reason == "batch_too_small" and not info.adapted
    assert np.allclose(sims, X @ P.T)


def test_adaptation_moves_prototypes_toward_the_batch_and_helps() -> None:
    X, P, y = _clustered(600)
    plain = (X @ P.T).argmax(1)
    sims, info = adapt.adapt_sims(X, P)
    assert info.adapted
    assert (sims.argmax(1) == y).mean() >= (plain == y).mean()
    Q = adapt.em_prototypes(X, P)
    assert np.allclose(np.linalg.norm(Q, axis=1), 1.0, atol=1e-5)


def test_guard_falls_back_when_ordinal_labels_collapse() -> None:
    """Five star-rating-like labels a step apart on one axis, texts spread along it: EM pulls the
    prototypes together and one label swallows the batch, so the plain prototypes are kept."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        base = _normalize(rng.normal(size=(1, 32)))[0]
        d = rng.normal(size=32)
        d = d - (d @ base) * base
        d /= np.linalg.norm(d)
        P = _normalize(np.stack([base + 0.03 * (k - 2) * d for k in range(5)])).astype(np.float32)
        t = rng.uniform(-0.08, 0.08, size=500)
        X = _normalize(base + t[:, None] * d + 0.3 * _normalize(rng.normal(size=(500, 32)))).astype(np.float32)
        sims, info = adapt.adapt_sims(X, P)
        assert info.reason == "degenerate" and info.max_share_after > info.max_share_before + adapt.MAX_SHARE_GAIN
        assert np.allclose(sims, X @ P.T)


def test_classify_batch_adapt_switch(standard_clf) -> None:
    texts = ["refund my money", "the app crashes", "a quote for 50 seats"]
    plain = cl.classify_batch(texts=texts, labels=standard_clf.labels, cache=False)
    adapted = cl.classify_batch(texts=texts, labels=standard_clf.labels, adapt=True)
    # Below the floor adaptation does nothing (and never uses the cache).
    assert [r.scores for r in adapted] == [r.scores for r in plain]
    assert not any(r.cached for r in adapted)
