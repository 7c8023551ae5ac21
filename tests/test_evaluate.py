"""``classer_local.evaluate``: the metrics behind ``classer-local eval`` and the benchmarks, on hand-checked cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classer_local import evaluate
from classer_local.calibration import expected_calibration_error

Y = ["a", "a", "a", "b", "b", "c"]
P = ["a", "a", "b", "b", "c", "c"]


def test_accuracy_and_macro_f1_by_hand() -> None:
    assert evaluate.accuracy(Y, P) == pytest.approx(4 / 6)
    # a: tp 2, fn 1 -> 0.8; b: tp 1, fp 1, fn 1 -> 0.5; c: tp 1, fp 1 -> 2/3
    assert evaluate.macro_f1(Y, P) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert evaluate.macro_f1(Y, P, ["a", "b", "c"]) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_macro_f1_label_set() -> None:
    # A label never true nor predicted has no F1 and is left out; one predicted but never true counts as 0.
    assert evaluate.macro_f1(["a", "a"], ["a", "a"], ["a", "z"]) == pytest.approx(1.0)
    assert evaluate.macro_f1(["a", "a"], ["a", "z"], ["a", "z"]) == pytest.approx((2 / 3 + 0.0) / 2)
    # ``labels`` restricts the average (the benchmarks' display-name mapping relies on it).
    assert evaluate.macro_f1(Y, P, ["a"]) == pytest.approx(0.8)
    assert evaluate.macro_f1([], [], ["a"]) == 0.0


def test_confusion_matrix_and_per_label() -> None:
    cm = evaluate.confusion_matrix(Y, P, ["a", "b", "c"])
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    per = evaluate.per_label(Y, P, ["a", "b", "c", "d"])
    assert per["a"] == {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}
    assert per["c"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert per["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize("bins", [5, 10, 15])
def test_reliability_bins_add_up_to_the_one_ece(bins: int) -> None:
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.random(400), [0.0, 0.2, 0.5, 1.0]])  # edges included: same bin as the ECE's
    correct = (rng.random(conf.size) < conf).astype(float)
    mc, fr, cnt = evaluate.reliability_bins(conf, correct, bins)
    ok = cnt > 0
    assert cnt.sum() == conf.size and np.isnan(mc[~ok]).all()
    gaps = float((cnt[ok] / cnt.sum() * np.abs(fr[ok] - mc[ok])).sum())
    assert gaps == pytest.approx(expected_calibration_error(conf, correct, bins))
    table = evaluate.reliability_table(conf, correct, bins)
    assert len(table) == bins and table[0]["lo"] == 0.0 and table[-1]["hi"] == 1.0
    assert [r["count"] for r in table] == cnt.tolist()


def test_report_uses_calibrations_ece() -> None:
    conf = [0.9, 0.85, 0.5, 0.75, 0.95, 0.65]
    r = evaluate.report(Y, P, conf, ["a", "b", "c"], bins=10)
    correct = np.array([t == p for t, p in zip(Y, P)], dtype=float)
    assert r["ece"] == round(expected_calibration_error(np.array(conf), correct, 10), 4)
    assert r["accuracy"] == round(4 / 6, 4) and r["macro_f1"] == round((0.8 + 0.5 + 2 / 3) / 3, 4)
    assert r["rows"] == 6 and r["labels"] == ["a", "b", "c"]
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert sum(b["count"] for b in r["reliability"]) == 6 and len(r["reliability"]) == 10
    # 0.5 sits on a bin edge: it belongs to [0.5, 0.6), as in expected_calibration_error.
    assert [b["count"] for b in r["reliability"] if b["lo"] in (0.4, 0.5)] == [0, 1]
    assert len(evaluate.report(Y, P, conf, ["a", "b", "c"])["reliability"]) == evaluate.DEFAULT_BINS


def test_reliability_diagram_writes_a_png(tmp_path: Path) -> None:
    table = evaluate.reliability_table([0.9, 0.2, 0.6], [1, 0, 1], 5)
    out = tmp_path / "nested" / "rel.png"
    evaluate.reliability_diagram(table, out, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
