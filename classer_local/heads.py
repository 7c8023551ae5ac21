"""Example heads: what examples add on top of the label prior, and their calibration.

With examples, a classify head over the example vectors is blended with the prior in log
space: ``log_softmax(((1 - w) · prior + w · head) / T)``. By default ``w = n / (n + k)`` (n
examples per label against the prior's pseudo-count k), the head is a multinomial logistic
regression and ``T`` the model's fitted few-shot temperature. From ``MIN_CV_PER_LABEL``
examples per label, ``select_blend`` stacks instead: out-of-fold log-probabilities of the prior,
the logistic-regression head and the nearest-centroid head are combined as
``log_softmax(α · prior + β · lr + γ · centroid)``, the three non-negative weights fitted by the
out-of-fold likelihood (the default blend is one point of that family, so stacking can only fit
the folds better; how much the prior still pulls is what the examples say, not a schedule).
One-vs-rest heads (or one softmax head, when it tags the examples better out of fold) serve
``tag``; ``cross_validated_tag`` calibrates tag confidences for a classifier's own labels and fits
per-label thresholds from out-of-fold logits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import scoring, threads
from .calibration import BinaryHeads, SoftmaxHead, fit_platt, fit_temperature

MAX_FOLDS = 4
# Stack from this many examples per label: below it the out-of-fold heads are too weak to
# weigh. Chosen on held-out rows of ten train/ sets and the dev sets' training pools
# (benchmarks/learning_curve.py --eval-on pool), not on test rows.
MIN_CV_PER_LABEL = 16
STACK_MAX_WEIGHT = 100.0
# From this many (example, label) cells the out-of-fold heads fit in parallel when a second core is
# free (each fold's L-BFGS runs on one BLAS thread): Banking77 at 64 a label is 375,000 cells.
PARALLEL_FOLDS_FROM = 50_000


def run_folds(held_out: Callable[[int], None], folds: int, cells: int, workers: int | None = None) -> int:
    """``held_out(f)`` for every fold, in a thread pool when ``workers`` (default: the free cores,
    from ``PARALLEL_FOLDS_FROM`` cells on) is above one, each fold's L-BFGS on one BLAS thread;
    returns how many ran at once."""
    if workers is None:
        workers = threads.choose(threads.SMALL_WORK) if cells >= PARALLEL_FOLDS_FROM else 1
    workers = max(1, min(folds, workers))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with threads.single_blas(), ThreadPoolExecutor(workers, thread_name_prefix="classer-folds") as pool:
            list(pool.map(held_out, range(folds)))  # list(): a fold's exception is raised here
    else:
        for f in range(folds):
            held_out(f)
    return workers


def blend_logp(prior_logp: np.ndarray, head_logp: np.ndarray, cols: np.ndarray, weight: float,
               temperature: float) -> np.ndarray:
    """The prior blended with a head over labels ``cols``; other labels keep their prior mass."""
    full = with_prior_mass(prior_logp, head_logp, cols)
    # A blend of two distributions is flatter than either; the temperature restores it.
    return scoring.log_softmax(((1 - weight) * prior_logp + weight * full) / temperature)


def with_prior_mass(prior_logp: np.ndarray, head_logp: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A head over labels ``cols`` spread over every label: the others keep their prior log-probability,
    ``cols`` share the prior's mass over them as the head says."""
    mass = np.log(np.exp(prior_logp[:, cols]).sum(axis=1, keepdims=True) + 1e-300)
    full = prior_logp.copy()
    full[:, cols] = head_logp + mass
    return full


def stacked(weights: Sequence[float], parts: Sequence[np.ndarray]) -> np.ndarray:
    """``log_softmax(Σ w_j · parts_j)``: log-probabilities from weighted log-probability parts."""
    return scoring.log_softmax(sum(w * p for w, p in zip(weights, parts)))


def fit_stack(parts: Sequence[np.ndarray], truth: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Non-negative weights of ``log_softmax(Σ w_j · parts_j)`` minimising the mean negative
    log-likelihood of ``truth``, from ``start``.

    Example:
        >>> good = np.log(np.array([[0.9, 0.1], [0.2, 0.8]])); noise = np.log(np.full((2, 2), 0.5))
        >>> w = fit_stack([noise, good], np.array([0, 1]), np.array([0.5, 0.5]))
        >>> bool(w[1] > 1.0)
        True
    """
    from scipy.optimize import minimize

    rows = np.arange(len(truth))

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        logp = stacked(w, parts)
        G = np.exp(logp)
        G[rows, truth] -= 1.0
        return float(-logp[rows, truth].mean()), np.array([(G * p).sum() / len(rows) for p in parts])

    res = minimize(nll, np.asarray(start, dtype=np.float64), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, STACK_MAX_WEIGHT)] * len(parts))
    return res.x


def centroids_of(X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Each class's L2-normalised mean example vector, (k, d)."""
    C = np.zeros((k, X.shape[1]), dtype=np.float32)
    np.add.at(C, y, np.asarray(X, dtype=np.float32))
    return C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)


def stratified_folds(y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per row: each class's rows dealt round-robin in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), dtype=int)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % folds
    return fold


class ExampleHeads:
    """Heads fitted on example vectors ``X`` whose rows belong to labels ``owners[i]``."""

    def __init__(self, n_labels: int, weight: float, C: float, kind: str = "lr",
                 temperature: float | None = None) -> None:
        self.n_labels = n_labels
        self.weight = weight  # the examples' share against the prior
        self.C = C
        self.kind = kind  # "lr" (logistic regression) or "centroid" (nearest centroid)
        self.temperature = temperature  # of the blend; None: the model's fitted few-shot temperature
        self.centroid_temperature = 0.05
        self.stack: tuple[float, ...] = ()  # kind "stack": weights of (prior, lr head, centroid head)
        self.selection: dict[str, Any] = {}  # what cross-validation chose, and its figures
        self.head: SoftmaxHead | None = None
        self.centroids: np.ndarray | None = None
        self.head_labels: np.ndarray | None = None
        self.tag_head: BinaryHeads | SoftmaxHead | None = None
        self.tag_labels: np.ndarray | None = None
        # "ovr": one-vs-rest logistic regressions; "softmax": one softmax over the labels (a row
        # counted once per label), chosen by cross_validated_tag when it tags the examples better
        self.tag_kind = "ovr"
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
            classify_head: bool = True, prior_logp: np.ndarray | None = None,
            prior_temperature: float = 0.05, min_cv: int | None = None) -> ExampleHeads:
        """Fit the heads; with ``prior_logp`` (the prior's log-probabilities of each example)
        the prior and the heads are stacked by cross-validation when there are enough examples.

        Rows with several owners (one text given for several labels) teach ``tag`` only: they
        cannot tell those labels apart, so the classify head leaves them out.
        """
        t0 = time.perf_counter()
        X = np.asarray(X, dtype=np.float32)
        labels_with = sorted({i for o in owners for i in o})
        n_per_label = len(owners) / max(len(labels_with), 1)
        heads = cls(n_labels, n_per_label / (n_per_label + prior_k), C)
        heads.centroid_temperature = prior_temperature
        single = [r for r, o in enumerate(owners) if len(set(o)) == 1]
        classes = sorted({owners[r][0] for r in single})
        if classify_head and len(classes) >= 2:
            local = {g: j for j, g in enumerate(classes)}
            Xc = X[single]
            y = np.array([local[owners[r][0]] for r in single])
            heads.head_labels = np.array(classes)
            if prior_logp is not None:
                heads.select_blend(Xc, y, np.asarray(prior_logp, dtype=np.float64)[single],
                                   MIN_CV_PER_LABEL if min_cv is None else min_cv)
            if heads.kind in ("lr", "stack"):
                heads.head = SoftmaxHead(len(classes), C=C).fit(Xc, y)
            if heads.kind in ("centroid", "stack"):
                heads.centroids = centroids_of(Xc, y, len(classes))
        heads.fit_seconds = time.perf_counter() - t0
        heads._pending = (X, [list(o) for o in owners])
        return heads

    def select_blend(self, X: np.ndarray, y: np.ndarray, prior_logp: np.ndarray, min_cv: int = MIN_CV_PER_LABEL,
                     seed: int = 0, workers: int | None = None) -> None:
        """Stack the prior and both heads by their out-of-fold likelihood (see the module doc).

        Labels without examples compete through their prior, as they will at prediction time.
        ``workers``: folds fitted at once (default: the free cores, from ``PARALLEL_FOLDS_FROM``
        cells on); the result is the same for any number.
        """
        k = int(y.max()) + 1
        counts = np.bincount(y, minlength=k)
        folds = int(min(MAX_FOLDS, counts.min()))
        if folds < 2 or counts.min() < min_cv:
            return
        fold = stratified_folds(y, folds, seed)
        cols = self.head_labels
        truth = cols[y]
        oof_lr = np.zeros((len(y), k))
        oof_sims = np.zeros((len(y), k))

        def held_out(f: int) -> None:  # each fold writes its own rows: the same result in any order
            tr, te = fold != f, fold == f
            oof_lr[te] = SoftmaxHead(k, C=self.C, max_iter=100).fit(X[tr], y[tr]).predict_log_proba(X[te])
            oof_sims[te] = X[te] @ centroids_of(X[tr], y[tr], k).T

        workers = run_folds(held_out, folds, len(y) * k, workers)
        self.centroid_temperature = fit_temperature(oof_sims, y)
        parts = (prior_logp, with_prior_mass(prior_logp, oof_lr, cols),
                 with_prior_mass(prior_logp, scoring.log_softmax(oof_sims / self.centroid_temperature), cols))
        start = np.array([1 - self.weight, self.weight, 0.0])
        weights = fit_stack(parts, truth, start)
        rows = np.arange(len(y))

        def scored(w: np.ndarray) -> tuple[float, float]:
            z = stacked(w, parts)
            return float((z.argmax(axis=1) == truth).mean()), float(-z[rows, truth].mean())

        (acc, nll), (default_acc, _) = scored(weights), scored(start)
        self.kind, self.stack = "stack", tuple(float(w) for w in weights)
        self.selection = {"folds": folds, "fold_workers": workers, "kind": "stack",
                          "weights": [round(w, 4) for w in self.stack],
                          "oof_accuracy_prior": float((prior_logp.argmax(axis=1) == truth).mean()),
                          "oof_accuracy_default": default_acc, "oof_accuracy_best": acc, "oof_nll": nll}

    def centroid_logp(self, X: np.ndarray) -> np.ndarray:
        return scoring.log_softmax((np.asarray(X, np.float32) @ self.centroids.T).astype(np.float64)
                                   / self.centroid_temperature)

    def head_logp(self, X: np.ndarray) -> np.ndarray:
        return self.centroid_logp(X) if self.kind == "centroid" else self.head.predict_log_proba(X)

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
                if self.tag_kind == "softmax":
                    rows = [r for r, o in enumerate(owners) for _ in o]
                    local = {g: j for j, g in enumerate(cols)}
                    y = np.array([local[g] for o in owners for g in o])
                    self.tag_head = SoftmaxHead(len(cols), C=self.C).fit(X[rows], y)
                else:
                    self.tag_head = BinaryHeads(C=self.C).fit(X, Y[:, cols])
                self.tag_labels = cols
            self._pending = None

    def refit_tag(self, kind: str, X: np.ndarray, owners: Sequence[Sequence[int]]) -> None:
        """Refit the tag head as ``kind`` ("ovr" or "softmax") on examples ``X`` / ``owners``."""
        with self._lock:
            self.tag_kind, self.tag_head, self.tag_labels = kind, None, None
            self._pending = (np.asarray(X, dtype=np.float32), [list(o) for o in owners])
        self.fit_tag()

    def _tag_scores(self, X: np.ndarray) -> np.ndarray:
        if self.tag_kind == "softmax":
            return self.tag_head.predict_log_proba(X)
        return self.tag_head.decision_function(X)

    def classify_logp(self, prior_logp: np.ndarray, X: np.ndarray, few_shot_temperature: float) -> np.ndarray:
        """The prior blended with the head; labels without examples keep their prior mass."""
        if self.head is None and self.centroids is None:
            return prior_logp
        if self.kind == "stack":
            cols = self.head_labels
            return stacked(self.stack, (prior_logp, with_prior_mass(prior_logp, self.head.predict_log_proba(X), cols),
                                        with_prior_mass(prior_logp, self.centroid_logp(X), cols)))
        return blend_logp(prior_logp, self.head_logp(X), self.head_labels, self.weight,
                          self.temperature or few_shot_temperature)

    def tag_logits(self, prior_z: np.ndarray, X: np.ndarray) -> np.ndarray:
        self.fit_tag()
        if self.tag_head is None:
            return prior_z
        z = prior_z.copy()
        cols = self.tag_labels
        z[:, cols] = (1 - self.weight) * z[:, cols] + self.weight * self._tag_scores(X)
        return z

    # -------------------------------------------------------------- state (store)
    def arrays(self) -> dict[str, np.ndarray]:
        self.fit_tag()
        out: dict[str, np.ndarray] = {}
        if self.head is not None:
            out.update(head_coef=self.head.coef_, head_intercept=self.head.intercept_, head_labels=self.head_labels)
        if self.centroids is not None:
            out.update(head_centroids=self.centroids, head_labels=self.head_labels)
        if self.tag_head is not None:
            out.update(tag_coef=self.tag_head.coef_, tag_intercept=self.tag_head.intercept_, tag_labels=self.tag_labels)
        return out

    def config(self) -> dict[str, Any]:
        """The scalars ``from_arrays`` needs besides the arrays (saved in the version's config)."""
        return {"head_weight": self.weight, "head_kind": self.kind, "head_temperature": self.temperature,
                "head_centroid_temperature": self.centroid_temperature, "head_stack": list(self.stack),
                "tag_kind": self.tag_kind}

    @classmethod
    def from_arrays(cls, n_labels: int, config: Mapping[str, Any], arrays: Any) -> ExampleHeads | None:
        if not {"head_coef", "head_centroids", "tag_coef"} & set(arrays):
            return None
        heads = cls(n_labels, float(config.get("head_weight", 0.0)), 0.0, str(config.get("head_kind") or "lr"),
                    config.get("head_temperature"))
        heads.centroid_temperature = float(config.get("head_centroid_temperature") or 0.05)
        heads.stack = tuple(float(w) for w in config.get("head_stack") or ())
        if "head_centroids" in arrays:
            heads.centroids = np.asarray(arrays["head_centroids"], dtype=np.float32)
            heads.head_labels = np.asarray(arrays["head_labels"])
        if "head_coef" in arrays:
            heads.head = SoftmaxHead(len(arrays["head_labels"]))
            heads.head.coef_, heads.head.intercept_ = arrays["head_coef"], arrays["head_intercept"]
            heads.head_labels = np.asarray(arrays["head_labels"])
        heads.tag_kind = str(config.get("tag_kind") or "ovr")
        if "tag_coef" in arrays:
            heads.tag_head = SoftmaxHead(len(arrays["tag_labels"])) if heads.tag_kind == "softmax" else BinaryHeads()
            heads.tag_head.coef_, heads.tag_head.intercept_ = arrays["tag_coef"], arrays["tag_intercept"]
            heads.tag_labels = np.asarray(arrays["tag_labels"])
        return heads


MIN_POSITIVES_FOR_THRESHOLD = 5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


TAG_KINDS = ("ovr", "softmax")


def cross_validated_tag(X: np.ndarray, owners: Sequence[Sequence[int]], n_labels: int, prior_z: np.ndarray,
                        fit_heads: Callable[[np.ndarray, list[list[int]]], ExampleHeads], folds: int = 4,
                        min_positives: int = MIN_POSITIVES_FOR_THRESHOLD, workers: int | None = None,
                        kinds: Sequence[str] = TAG_KINDS) -> tuple[tuple[float, float], np.ndarray, str]:
    """Tag calibration from out-of-fold logits of every example against every label.

    For each tag head kind in ``kinds`` (one-vs-rest logistic regressions, or one softmax over
    the labels: the better ranker when most texts carry one label), the out-of-fold logits are
    Platt-scaled and each label gets the threshold that maximises its out-of-fold F1 (NaN for
    labels with fewer than ``min_positives`` examples: they keep the classifier's threshold).
    Returns the Platt scaling ``(a, b)``, the thresholds and the kind whose out-of-fold macro-F1
    at those thresholds was best (ties: the first). ``prior_z`` is each example's prior tag
    logits; ``fit_heads`` fits heads on a fold's rows. ``workers``: folds fitted at once, as in
    ``ExampleHeads.select_blend`` (the same result for any number).
    """
    Y = np.zeros((len(owners), n_labels))
    for r, o in enumerate(owners):
        Y[r, o] = 1.0
    fold = np.random.default_rng(0).permutation(len(owners)) % folds
    logits = {kind: np.zeros_like(Y) for kind in kinds}

    def held_out(f: int) -> None:  # each fold writes its own rows
        train = np.flatnonzero(fold != f)
        test = fold == f
        for kind in kinds:
            heads = fit_heads(X[train], [list(owners[r]) for r in train])
            heads.tag_kind = kind
            logits[kind][test] = heads.tag_logits(prior_z[test], X[test])

    run_folds(held_out, folds, len(owners) * n_labels * len(kinds), workers)
    # Platt's smoothed targets: with a few dozen examples the logits are often separable, and
    # 0/1 targets would send the slope (and the confidences) to the extremes.
    pos = Y.sum()
    targets = np.where(Y > 0, (pos + 1) / (pos + 2), 1 / (Y.size - pos + 2))
    best: tuple[float, tuple[float, float], np.ndarray, str] | None = None
    for kind in kinds:
        a, b = fit_platt(logits[kind].ravel(), targets.ravel())
        P = scoring.sigmoid(a * logits[kind] + b)
        thresholds = f1_thresholds(P, Y, min_positives)
        f1 = macro_f1(P, Y, np.where(np.isfinite(thresholds), thresholds, 0.5))
        if best is None or f1 > best[0]:
            best = (f1, (float(a), float(b)), thresholds, kind)
    return best[1], best[2], best[3]


def macro_f1(P: np.ndarray, Y: np.ndarray, thresholds: np.ndarray) -> float:
    """Mean over labels with a positive of the F1 of ``P >= thresholds`` (one per column)."""
    pred = P >= thresholds[None, :]
    pos = Y > 0
    tp = (pred & pos).sum(axis=0)
    f1 = 2 * tp / np.maximum(pred.sum(axis=0) + pos.sum(axis=0), 1)
    return float(f1[pos.any(axis=0)].mean()) if pos.any() else 0.0


def f1_thresholds(P: np.ndarray, Y: np.ndarray, min_positives: int = MIN_POSITIVES_FOR_THRESHOLD) -> np.ndarray:
    """Per label (column), the grid threshold with the best F1 of ``P >= t`` against ``Y``;
    ties go to the threshold nearest 0.5, and labels with too few positives get NaN.

    Example:
        >>> P = np.array([[0.9], [0.35], [0.3], [0.1], [0.32], [0.31]]); Y = np.array([[1], [1], [1], [0], [1], [1]])
        >>> float(f1_thresholds(P, Y)[0])
        0.3
    """
    out = np.full(P.shape[1], np.nan)
    grid = THRESHOLD_GRID
    for j in range(P.shape[1]):
        pos = Y[:, j] > 0
        if pos.sum() < min_positives:
            continue
        pred = P[:, j][:, None] >= grid[None, :]
        tp = (pred & pos[:, None]).sum(axis=0)
        f1 = 2 * tp / np.maximum(pred.sum(axis=0) + pos.sum(), 1)
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        out[j] = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
    return out
