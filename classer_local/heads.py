"""Example heads: what examples add on top of the label prior, and their calibration.

With examples, a multinomial logistic-regression head (classify) and one-vs-rest heads (tag)
are fitted on the example vectors and blended with the prior in log space with weight
w = n / (n + k): n examples per label against the prior's pseudo-count k. ``cross_validated_platt``
calibrates tag confidences for a classifier's own labels from out-of-fold logits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import scoring
from .calibration import BinaryHeads, SoftmaxHead, fit_platt


class ExampleHeads:
    """Heads fitted on example vectors ``X`` whose rows belong to labels ``owners[i]``."""

    def __init__(self, n_labels: int, weight: float, C: float) -> None:
        self.n_labels = n_labels
        self.weight = weight  # the examples' share against the prior, n / (n + k)
        self.C = C
        self.head: SoftmaxHead | None = None
        self.head_labels: np.ndarray | None = None
        self.tag_head: BinaryHeads | None = None
        self.tag_labels: np.ndarray | None = None
        self.fit_seconds = 0.0
        self._pending: tuple[np.ndarray, list[list[int]]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def fit(cls, X: np.ndarray, owners: Sequence[Sequence[int]], n_labels: int, *, prior_k: float, C: float,
            classify_head: bool = True) -> ExampleHeads:
        t0 = time.perf_counter()
        labels_with = sorted({i for o in owners for i in o})
        n_per_label = len(owners) / max(len(labels_with), 1)
        heads = cls(n_labels, n_per_label / (n_per_label + prior_k), C)
        if classify_head and len(labels_with) >= 2:
            # Multinomial head over the labels that have examples (first owner for multi-label rows).
            local = {g: j for j, g in enumerate(labels_with)}
            y = np.array([local[o[0]] for o in owners])
            heads.head = SoftmaxHead(len(labels_with), C=C).fit(X, y)
            heads.head_labels = np.array(labels_with)
        heads.fit_seconds = time.perf_counter() - t0
        heads._pending = (np.asarray(X), [list(o) for o in owners])
        return heads

    def fit_tag(self) -> None:
        """One-vs-rest heads, fitted on first use (classify never needs them)."""
        with self._lock:
            if self._pending is None:
                return
            X, owners = self._pending
            Y = np.zeros((len(owners), self.n_labels), dtype=np.float32)
            for r, o in enumerate(owners):
                Y[r, o] = 1.0
            cols = np.array(sorted({i for o in owners for i in o}))
            if len(owners) >= 2 and len(cols) and Y[:, cols].min(axis=0).max() == 0:  # every label has a negative
                self.tag_head = BinaryHeads(C=self.C).fit(X, Y[:, cols])
                self.tag_labels = cols
            self._pending = None

    def classify_logp(self, prior_logp: np.ndarray, X: np.ndarray, few_shot_temperature: float) -> np.ndarray:
        """The prior blended with the head; labels without examples keep their prior mass."""
        if self.head is None:
            return prior_logp
        cols = self.head_labels
        head_logp = self.head.predict_log_proba(X)
        mass = np.log(np.exp(prior_logp[:, cols]).sum(axis=1, keepdims=True) + 1e-300)
        full = prior_logp.copy()
        full[:, cols] = head_logp + mass
        # A blend of two distributions is flatter than either; one fitted temperature restores it.
        w = self.weight
        return scoring.log_softmax(((1 - w) * prior_logp + w * full) / few_shot_temperature)

    def tag_logits(self, prior_z: np.ndarray, X: np.ndarray) -> np.ndarray:
        self.fit_tag()
        if self.tag_head is None:
            return prior_z
        z = prior_z.copy()
        cols = self.tag_labels
        z[:, cols] = (1 - self.weight) * z[:, cols] + self.weight * self.tag_head.decision_function(X)
        return z

    # -------------------------------------------------------------- state (store)
    def arrays(self) -> dict[str, np.ndarray]:
        self.fit_tag()
        out: dict[str, np.ndarray] = {}
        if self.head is not None:
            out.update(head_coef=self.head.coef_, head_intercept=self.head.intercept_, head_labels=self.head_labels)
        if self.tag_head is not None:
            out.update(tag_coef=self.tag_head.coef_, tag_intercept=self.tag_head.intercept_, tag_labels=self.tag_labels)
        return out

    @classmethod
    def from_arrays(cls, n_labels: int, weight: float, arrays: Any) -> ExampleHeads | None:
        if "head_coef" not in arrays and "tag_coef" not in arrays:
            return None
        heads = cls(n_labels, weight, 0.0)
        if "head_coef" in arrays:
            heads.head = SoftmaxHead(len(arrays["head_labels"]))
            heads.head.coef_, heads.head.intercept_ = arrays["head_coef"], arrays["head_intercept"]
            heads.head_labels = np.asarray(arrays["head_labels"])
        if "tag_coef" in arrays:
            heads.tag_head = BinaryHeads()
            heads.tag_head.coef_, heads.tag_head.intercept_ = arrays["tag_coef"], arrays["tag_intercept"]
            heads.tag_labels = np.asarray(arrays["tag_labels"])
        return heads


def cross_validated_platt(X: np.ndarray, owners: Sequence[Sequence[int]], n_labels: int,
                          prior_z: np.ndarray, fit_heads: Callable[[np.ndarray, list[list[int]]], ExampleHeads],
                          folds: int = 4) -> tuple[float, float]:
    """Platt-scale out-of-fold tag logits of every example against every label.

    ``prior_z`` is each example's prior tag logits; ``fit_heads`` fits heads on a fold's rows.
    """
    Y = np.zeros((len(owners), n_labels))
    for r, o in enumerate(owners):
        Y[r, o] = 1.0
    fold = np.random.default_rng(0).permutation(len(owners)) % folds
    logits = np.zeros_like(Y)
    for f in range(folds):
        train = np.flatnonzero(fold != f)
        test = fold == f
        heads = fit_heads(X[train], [list(owners[r]) for r in train])
        logits[test] = heads.tag_logits(prior_z[test], X[test])
    a, b = fit_platt(logits.ravel(), Y.ravel())
    return float(a), float(b)
