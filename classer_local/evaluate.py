"""How good a classifier is on labelled data: accuracy, macro-F1, confusion matrix, calibration.

One definition of each, shared by ``classer-local eval`` and ``benchmarks/``: F1 and the
confusion matrix come from ``sklearn.metrics``; the expected calibration error is
``calibration.expected_calibration_error``, and the reliability table uses the same
equal-width bins, so its weighted gaps add up to that ECE.

Example:
    >>> y, pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    >>> accuracy(y, pred)
    0.75
    >>> round(macro_f1(y, pred), 4)
    0.7333
    >>> confusion_matrix(y, pred, ["a", "b"]).tolist()
    [[1, 1], [0, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import expected_calibration_error

__all__ = [
    "DEFAULT_BINS",
    "accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "macro_f1",
    "per_label",
    "reliability_bins",
    "reliability_diagram",
    "reliability_table",
    "report",
]

DEFAULT_BINS = 15  # calibration.expected_calibration_error's default: the figures in RESULTS.md


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Fraction of predictions equal to the truth."""
    return float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None) -> float:
    """Unweighted mean F1 over the labels that occur in the truth or the predictions.

    ``labels`` restricts the average to those labels; a label that is neither true nor
    predicted anywhere has no F1 and is left out (scikit-learn's own label set).

    Example:
        >>> macro_f1(["a", "b"], ["a", "a"], labels=["a", "b", "c"])  # "c" never occurs
        0.3333333333333333
    """
    from sklearn.metrics import f1_score

    present = set(y_true) | set(y_pred)
    used = [lb for lb in (labels if labels is not None else sorted(present)) if lb in present]
    if not used:
        return 0.0
    return float(f1_score(list(y_true), list(y_pred), labels=used, average="macro", zero_division=0))


def confusion_matrix(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Counts, rows the true label and columns the predicted one, in ``labels`` order."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(list(y_true), list(y_pred), labels=list(labels))


def per_label(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]
) -> dict[Any, dict[str, Any]]:
    """Precision, recall, F1 (0 where undefined) and support for each label, rounded to 4 places."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        list(y_true), list(y_pred), labels=list(labels), zero_division=0
    )
    return {
        lb: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, lb in enumerate(labels)
    }


def reliability_bins(
    confidences: Any, correct: Any, bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: mean confidence, observed accuracy (NaN when empty) and count.

    The bins of ``expected_calibration_error``: ``sum(count / n * |accuracy - confidence|)``
    over the non-empty bins is that ECE.
    """
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    corr = np.asarray(correct, dtype=np.float64).ravel()
    idx = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, bins) / counts
        freq = np.bincount(idx, corr, bins) / counts
    return mean_conf, freq, counts


def reliability_table(confidences: Any, correct: Any, bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """``reliability_bins`` as rows ``{lo, hi, count, accuracy, confidence}`` (None when empty)."""
    mean_conf, freq, counts = reliability_bins(confidences, correct, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return [
        {
            "lo": round(float(edges[b]), 4),
            "hi": round(float(edges[b + 1]), 4),
            "count": int(counts[b]),
            "accuracy": round(float(freq[b]), 4) if counts[b] else None,
            "confidence": round(float(mean_conf[b]), 4) if counts[b] else None,
        }
        for b in range(bins)
    ]


def report(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    confidences: Sequence[float],
    labels: Sequence[Any],
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Everything ``classer-local eval`` prints: accuracy, macro-F1, ECE, confusion matrix,
    per-label precision/recall/F1 and the reliability table (figures rounded to 4 places).

    Example:
        >>> r = report(["a", "b"], ["a", "a"], [0.9, 0.6], ["a", "b"], bins=5)
        >>> r["accuracy"], r["ece"], r["confusion_matrix"]
        (0.5, 0.35, [[1, 0], [1, 0]])
    """
    correct = np.array([t == p for t, p in zip(y_true, y_pred, strict=True)], dtype=np.float64)
    return {
        "rows": len(y_true),
        "labels": list(labels),
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(macro_f1(y_true, y_pred, labels), 4),
        "ece": round(expected_calibration_error(np.asarray(confidences), correct, bins), 4),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels).tolist(),
        "per_label": per_label(y_true, y_pred, labels),
        "reliability": reliability_table(confidences, correct, bins),
    }


def reliability_diagram(table: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """A PNG: accuracy per confidence bin against the diagonal, with the bin counts below."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    centers = [(b["lo"] + b["hi"]) / 2 for b in table]
    width = table[0]["hi"] - table[0]["lo"]
    acc = [b["accuracy"] or 0.0 for b in table]
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    hist.bar(centers, [b["count"] for b in table], width=width * 0.95, color="#dd8452", edgecolor="black")
    hist.set_xlabel("confidence")
    hist.set_ylabel("count")
    hist.set_xlim(0, 1)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
