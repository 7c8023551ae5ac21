"""Batch adaptation: move each label's prototype toward the batch's own texts (transductive EM).

Opt-in (``adapt=True`` on batch calls and jobs), never on single calls. Each round
soft-assigns the batch's texts to the prototypes (softmax of cosine / ``SHARPNESS``) and moves
every prototype to the normalised sum of its texts, with the label's own vector kept as a
pseudo-count (``ANCHOR``), so a label is pulled toward how this batch writes about it but
cannot drift away from what its name means.

It needs a batch that shows every label a few times (``MIN_BATCH``) and it can degenerate:
one label swallowing the batch, ordinal labels (star ratings) collapsing onto one or two, or
the prototypes drifting so far that most answers change (``MAX_CHANGED``, chosen on ``train/``).
``adapt_sims`` checks the assignment after adapting and keeps the plain prototypes when it
degenerated; what it did is returned in ``AdaptInfo``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> P = np.eye(2, 8, dtype=np.float32)
    >>> X = np.abs(rng.normal(size=(300, 8))).astype(np.float32)
    >>> sims, info = adapt_sims(X, P)
    >>> sims.shape, info.reason in {"adapted", "degenerate"}
    ((300, 2), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_BATCH = 256  # below this EM gained little or lost on the dev sets (EXPERIMENTS.md §3)
ANCHOR = 8.0  # pseudo-count of the label's own vector
SHARPNESS = 0.05  # temperature of the soft assignment
ROUNDS = 2
MAX_SHARE_GAIN = 0.15  # a label may not gain more than this share of the batch's answers
MIN_ENTROPY_RATIO = 0.75  # the answers' spread over labels may not shrink below this
MAX_CHANGED = 0.35  # on 12 train/ sets EM that helped changed 17-28% of the answers, EM that hurt 38-40%


@dataclass(frozen=True)
class AdaptInfo:
    """What adaptation did: ``adapted`` or why not (``batch_too_small``, ``degenerate``)."""

    reason: str
    n: int
    max_share_before: float = 0.0
    max_share_after: float = 0.0

    @property
    def adapted(self) -> bool:
        return self.reason == "adapted"


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def em_prototypes(X: np.ndarray, P: np.ndarray, rounds: int = ROUNDS, anchor: float = ANCHOR,
                  sharpness: float = SHARPNESS) -> np.ndarray:
    """Prototypes moved toward their soft-assigned texts, anchored to the originals."""
    X = np.asarray(X, dtype=np.float32)
    P0 = _normalize(np.asarray(P, dtype=np.float32))
    Q = P0
    for _ in range(rounds):
        R = _softmax((X @ Q.T) / sharpness)  # (n, L)
        Q = _normalize(anchor * P0 + R.T @ X)
    return Q


def _shares(sims: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.argmax(sims, axis=1), minlength=sims.shape[1]).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def adapt_sims(X: np.ndarray, P: np.ndarray, min_batch: int = MIN_BATCH) -> tuple[np.ndarray, AdaptInfo]:
    """Cosine similarities of ``X`` to the batch-adapted prototypes, or to ``P`` when the batch
    is too small or the adapted assignment degenerated."""
    X = np.asarray(X, dtype=np.float32)
    plain = X @ _normalize(np.asarray(P, dtype=np.float32)).T
    n = len(X)
    if n < min_batch or P.shape[0] < 2:
        return plain, AdaptInfo("batch_too_small", n)
    adapted = X @ em_prototypes(X, P).T
    before, after = _shares(plain), _shares(adapted)
    info = AdaptInfo("adapted", n, float(before.max()), float(after.max()))
    h0 = _entropy(before)
    changed = float((plain.argmax(1) != adapted.argmax(1)).mean())
    if (after.max() > before.max() + MAX_SHARE_GAIN or (h0 > 0 and _entropy(after) < MIN_ENTROPY_RATIO * h0)
            or changed > MAX_CHANGED):
        return plain, AdaptInfo("degenerate", n, info.max_share_before, info.max_share_after)
    return adapted.astype(np.float32), info
