"""Smoke tests of the benchmark metric helpers on hand-checked cases (no models, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from multilabel import best_threshold, f1_scores, reliability_bins
from peers import setfit_steps, top1

from classer_local.calibration import expected_calibration_error


def test_ece_known_case() -> None:
    # Two bins used: 0.9 confidence, 3 of 4 right (gap 0.15); 0.2 confidence, 1 of 4 right (gap 0.05).
    conf = np.array([0.9] * 4 + [0.2] * 4)
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    assert expected_calibration_error(conf, correct, bins=10) == pytest.approx(0.5 * 0.15 + 0.5 * 0.05)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == pytest.approx(0.0)


def test_reliability_bins_match_ece() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(500)
    correct = (rng.random(500) < conf).astype(float)
    mc, fr, cnt = reliability_bins(conf, correct, bins=15)
    ok = cnt > 0
    ece = float((cnt[ok] / cnt.sum() * np.abs(fr[ok] - mc[ok])).sum())
    assert ece == pytest.approx(expected_calibration_error(conf, correct, bins=15))


def test_multilabel_f1_and_threshold() -> None:
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    P = np.array([[0.9, 0.1], [0.2, 0.6], [0.7, 0.4], [0.1, 0.3]])
    macro, micro = f1_scores(Y, P, 0.5)
    # label 0: tp 2; label 1: tp 1, fn 1 -> F1 2/3; micro: tp 3, fn 1 -> 6/7
    assert macro == pytest.approx((1.0 + 2 / 3) / 2)
    assert micro == pytest.approx(6 / 7)
    thr = best_threshold(Y, P)
    assert 0.3 < thr <= 0.4 and f1_scores(Y, P, thr)[0] == pytest.approx(1.0)


def test_top1_and_setfit_steps() -> None:
    pred, conf, correct = top1(np.array([[0.2, 0.8], [0.6, 0.4]]), ["a", "b"], ["b", "b"])
    assert pred == ["b", "a"] and conf.tolist() == [0.8, 0.6] and correct.tolist() == [1.0, 0.0]
    assert setfit_steps(32) == (80, 80)  # 20 iterations x 2 pairs x 32 rows / batch 16
    assert setfit_steps(616, 200) == (200, 1540)
