"""Pure numpy scoring: cosine, softmax with temperature, calibrated sigmoid, rounding.

Example:
    >>> import numpy as np
    >>> p = softmax(np.array([[0.2, 0.4]]), temperature=0.1)
    >>> round(float(p.sum()), 6)
    1.0
"""

from __future__ import annotations

import numpy as np

DECIMALS = 4


def cosine(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(n, d) x (L, d) -> (n, L); both sides are already L2-normalised."""
    return x @ prototypes.T


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(sims: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(sims, dtype=np.float64) / temperature))


def sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


def calibrated_sigmoid(sims: np.ndarray, a: float, b: float) -> np.ndarray:
    """Platt scaling of cosine similarities: ``sigmoid(a * s + b)``."""
    return sigmoid(a * np.asarray(sims, dtype=np.float64) + b)


def round_distribution(p: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    """Round probability vectors (the last axis) so the rounded values still sum to exactly 1
    (largest-remainder rounding): 200 labels rounded naively can drift by 0.01."""
    scale = 10**decimals
    raw = np.asarray(p, dtype=np.float64) * scale
    floor = np.floor(raw)
    short = np.rint(scale - floor.sum(axis=-1, keepdims=True))
    ranks = np.argsort(np.argsort(-(raw - floor), axis=-1, kind="stable"), axis=-1, kind="stable")
    return (floor + (ranks < short)) / scale


def round_scores(p: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    return np.round(np.asarray(p, dtype=np.float64), decimals)
