"""Learned heads on frozen embeddings, and the calibration fits behind models.toml.

scikit-learn conventions: ``fit`` returns ``self``; learned state ends in ``_``.
Everything here is numpy + scipy's L-BFGS, so a few hundred examples fit in well
under a second.

Example:
    >>> import numpy as np
    >>> X = np.eye(4, dtype=np.float32); y = np.array([0, 1, 0, 1])
    >>> head = SoftmaxHead(n_classes=2).fit(X, y)
    >>> head.predict_log_proba(X).shape
    (4, 2)
"""

from __future__ import annotations

import numpy as np

from .scoring import log_softmax


def _lbfgs(fun, x0: np.ndarray, maxiter: int = 200) -> np.ndarray:
    from scipy.optimize import minimize

    def fun64(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = fun(theta.astype(np.float32))
        return float(loss), grad.astype(np.float64)

    from threadpoolctl import threadpool_limits

    # float32 inside the objective: the matrix products dominate and halve in cost. One BLAS
    # thread: L-BFGS-B's small vector updates cost 10-40x more with OpenBLAS threads spinning.
    with threadpool_limits(limits=1, user_api="blas"):
        res = minimize(fun64, x0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter, "gtol": 1e-4})
    return res.x


class SoftmaxHead:
    """Multinomial logistic regression with an L2 penalty (``C`` as in scikit-learn)."""

    def __init__(self, n_classes: int, C: float = 10.0, max_iter: int = 200) -> None:
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> SoftmaxHead:
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        k = self.n_classes
        Y = np.zeros((n, k), dtype=np.float32)
        Y[np.arange(n), y] = 1.0
        lam = 1.0 / self.C

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: k * d].reshape(k, d)
            b = theta[k * d :]
            logp = log_softmax(X @ W.T + b)
            loss = -(Y * logp).sum() + 0.5 * lam * (W * W).sum()
            G = np.exp(logp) - Y
            gW = G.T @ X + lam * W
            gb = G.sum(axis=0)
            return loss, np.concatenate([gW.ravel(), gb])

        theta = _lbfgs(fun, np.zeros(k * d + k), self.max_iter)
        self.coef_ = theta[: k * d].reshape(k, d).astype(np.float32)
        self.intercept_ = theta[k * d :].astype(np.float32)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32) @ self.coef_.T + self.intercept_

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return log_softmax(self.decision_function(X).astype(np.float64))


class BinaryHeads:
    """One-vs-rest logistic regressions for every label at once (multi-label ``tag``)."""

    def __init__(self, C: float = 10.0, max_iter: int = 200) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, Y: np.ndarray) -> BinaryHeads:
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float32)
        n, d = X.shape
        k = Y.shape[1]
        lam = 1.0 / self.C
        # Balance positives and negatives per label so rare labels are not drowned out.
        pos = np.maximum(Y.sum(axis=0), 1.0)
        neg = np.maximum(n - Y.sum(axis=0), 1.0)
        Wt = np.where(Y > 0, n / (2 * pos), n / (2 * neg)).astype(np.float32)

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: k * d].reshape(k, d)
            b = theta[k * d :]
            Z = X @ W.T + b
            # log(1 + e^z) - y z, stably
            loss = (Wt * (np.logaddexp(0.0, Z) - Y * Z)).sum() + 0.5 * lam * (W * W).sum()
            G = Wt * (1.0 / (1.0 + np.exp(-Z)) - Y)
            return loss, np.concatenate([(G.T @ X + lam * W).ravel(), G.sum(axis=0)])

        theta = _lbfgs(fun, np.zeros(k * d + k), self.max_iter)
        self.coef_ = theta[: k * d].reshape(k, d).astype(np.float32)
        # Balanced weights fit the boundary; shifting each intercept by log(pos/neg) turns the
        # balanced odds back into odds at the labels' real frequencies (prior-shift correction).
        self.intercept_ = (theta[k * d :] + np.log(pos / neg)).astype(np.float32)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32) @ self.coef_.T + self.intercept_


def fit_temperature(sims: np.ndarray, y: np.ndarray) -> float:
    """Softmax temperature minimising the negative log-likelihood of the true labels."""
    sims = np.asarray(sims, dtype=np.float64)

    def nll(log_t: float) -> float:
        logp = log_softmax(sims / np.exp(log_t))
        return float(-logp[np.arange(len(y)), y].mean())

    from scipy.optimize import minimize_scalar

    res = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(10.0)), method="bounded")
    return float(np.exp(res.x))


def fit_platt(features: np.ndarray, targets: np.ndarray) -> tuple[float, ...]:
    """Weights (w_1..w_k, b) of ``sigmoid(w · f + b)`` by maximum likelihood (Platt scaling).

    ``features`` is (n,) for the classic one-feature fit, or (n, k).
    """
    F = np.asarray(features, dtype=np.float64)
    F = F.reshape(-1, 1) if F.ndim == 1 else F.reshape(-1, F.shape[-1])
    t = np.asarray(targets, dtype=np.float64).ravel()
    k = F.shape[1]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = theta.astype(np.float64)
        z = F @ theta[:k] + theta[k]
        loss = (np.logaddexp(0.0, z) - t * z).sum()
        g = 1.0 / (1.0 + np.exp(-z)) - t
        return loss, np.concatenate([F.T @ g, [g.sum()]])

    from scipy.optimize import minimize

    res = minimize(fun, np.r_[np.ones(k), 0.0], jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return tuple(float(v) for v in res.x)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width bins: sum over bins of |accuracy - confidence| weighted by bin size."""
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    corr = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(corr[m].mean() - conf[m].mean())
    return float(ece)
