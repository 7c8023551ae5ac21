"""Multi-label ``tag`` on GoEmotions (28 labels), and calibration: ECE and reliability diagrams.

    python benchmarks/multilabel.py --data ../shared/evaldata [--eval-max 1000] [--setfit-per-label 8]
    python benchmarks/multilabel.py --data ../shared/evaldata --tune-steps 600   # the tuned variant alone (~30 min)

* Test rows: ``test.jsonl``; thresholds chosen on ``validation.jsonl``; examples from
  ``train_sample5000_seed42.jsonl`` (a row with several labels is an example of each).
* Methods: classer_local zero-shot (names + descriptions from benchmarks/descriptions.json),
  classer_local with the train rows as examples (``Classifier.tag_proba_from_embeddings``; its
  default calibrates on first use and fits per-label thresholds, scored at those as
  ``macro_f1@default``), the same heads before calibration (``examples, before``), one-vs-rest logistic regression on the frozen
  MiniLM embeddings, and uncalibrated cosine to the described prototypes mapped to [0, 1]
  as (s + 1) / 2 and by min-max. SetFit (one-vs-rest head) on K rows per label when
  ``--setfit-per-label K`` is given (its contrastive training over 5,000 rows takes hours on CPU).
* Macro- and micro-F1 at the default threshold 0.5 and at the single threshold that
  maximises macro-F1 on validation; expected calibration error over every (text, label) pair.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, Timer, descriptions, read_jsonl

import classer_local as cl
from classer_local.evaluate import DEFAULT_BINS as BINS
from classer_local.evaluate import expected_calibration_error, reliability_bins

THRESHOLDS = np.round(np.arange(0.02, 0.99, 0.01), 2)


def f1_scores(Y: np.ndarray, P: np.ndarray, threshold: float) -> tuple[float, float]:
    """(macro-F1, micro-F1) of ``P >= threshold`` against the 0/1 matrix ``Y``."""
    pred = P >= threshold
    tp = (pred & (Y > 0)).sum(axis=0).astype(float)
    fp = (pred & (Y == 0)).sum(axis=0).astype(float)
    fn = (~pred & (Y > 0)).sum(axis=0).astype(float)
    denom = 2 * tp + fp + fn
    per = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1.0)
    return float(per.mean()), float(micro)


def best_threshold(Y: np.ndarray, P: np.ndarray) -> float:
    """The one threshold (grid of 0.01) with the best macro-F1 on (Y, P): chosen on validation."""
    return float(max(THRESHOLDS, key=lambda t: f1_scores(Y, P, t)[0]))


def plot_reliability(path: Path, panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], ylabel: str) -> None:
    """One reliability diagram per panel, one curve per method; ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.4 * rows), squeeze=False)
    for ax, (title, curves) in zip(axes.ravel(), panels.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for label, (conf, correct) in curves.items():
            mc, fr, cnt = reliability_bins(conf, correct)
            ok = cnt > 0
            ece = expected_calibration_error(conf, correct, BINS)
            ax.plot(mc[ok], fr[ok], marker="o", ms=3, lw=1.3, label=f"{label} (ECE {ece:.3f})")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metrics(Yv: np.ndarray, Pv: np.ndarray, Yt: np.ndarray, Pt: np.ndarray,
             own: np.ndarray | None = None) -> dict[str, float]:
    thr = best_threshold(Yv, Pv)
    m05, u05 = f1_scores(Yt, Pt, 0.5)
    mb, ub = f1_scores(Yt, Pt, thr)
    extra = {}
    if own is not None:  # the classifier's own default: per-label thresholds fitted from its examples
        extra["macro_f1@default"], extra["micro_f1@default"] = f1_scores(Yt, Pt, own)
    return {**extra, "macro_f1@0.5": m05, "micro_f1@0.5": u05, "threshold": thr, "macro_f1@best": mb, "micro_f1@best": ub,
            "ece": expected_calibration_error(Pt, Yt, BINS), "mean_labels_per_row@0.5": float((Pt >= 0.5).sum(1).mean()),
            # Pairwise ECE is dominated by the many easy negatives; the predicted tags themselves:
            "conf_of_tags@0.5": float(Pt[Pt >= 0.5].mean()) if (Pt >= 0.5).any() else float("nan"),
            "precision_of_tags@0.5": float(Yt[Pt >= 0.5].mean()) if (Pt >= 0.5).any() else float("nan")}


def run(data: Path, *, device: str = "auto", eval_max: int | None = None, train_max: int | None = None,
        calibrate: bool = True, setfit_per_label: int = 0, setfit_max_steps: int = -1,
        log: Any = print) -> dict[str, Any]:
    folder = Path(data) / "goemotions"
    labels = json.loads((folder / "labels.json").read_text())
    test = read_jsonl(folder / "test.jsonl")
    val = read_jsonl(folder / "validation.jsonl")
    train = read_jsonl(folder / "train_sample5000_seed42.jsonl")
    if eval_max:
        test = random.Random(0).sample(test, min(eval_max, len(test)))
        val = random.Random(1).sample(val, min(eval_max, len(val)))
    if train_max:
        train = random.Random(2).sample(train, min(train_max, len(train)))

    def matrix(rows: list[dict[str, Any]]) -> np.ndarray:
        return np.array([[lb in r["labels"] for lb in labels] for r in rows], dtype=float)

    Yt, Yv = matrix(test), matrix(val)
    desc = descriptions().get("goemotions", {})
    kw = {"descriptions": desc.get("descriptions"), "text_type": desc.get("text_type"), "device": device}
    zero = cl.Classifier(labels, **kw)
    zero.embedder.encode(["warm up"])
    with Timer() as t:
        Xt = zero.embedder.encode([r["text"] for r in test])
        Xv = zero.embedder.encode([r["text"] for r in val])
    out: dict[str, Any] = {"n_test": len(test), "n_val": len(val), "n_train": len(train), "n_labels": len(labels),
                           "encode_texts_per_s": (len(test) + len(val)) / t.seconds, "methods": {}, "fit": {},
                           "reliability": {}}

    def add(name: str, Pv: np.ndarray, Pt: np.ndarray, own: np.ndarray | None = None) -> None:
        m = _metrics(Yv, Pv, Yt, Pt, own)
        out["methods"][name] = m
        out["reliability"][name] = (Pt, Yt)
        log(f"goemotions {name:28s} macro-F1 {m['macro_f1@0.5']:.3f} / {m['macro_f1@best']:.3f} "
            f"(thr {m['threshold']:.2f})  micro-F1 {m['micro_f1@0.5']:.3f} / {m['micro_f1@best']:.3f}  ECE {m['ece']:.4f}"
            + (f"  | own thresholds: macro-F1 {m['macro_f1@default']:.3f} micro-F1 {m['micro_f1@default']:.3f}"
               if own is not None else ""))

    add("classer_local zero-shot", zero.tag_proba_from_embeddings(Xv), zero.tag_proba_from_embeddings(Xt))

    examples: dict[str, list[str]] = {lb: [] for lb in labels}
    for r in train:
        for lb in r["labels"]:
            examples[lb].append(r["text"])
    clf = cl.Classifier(labels, examples=examples, **kw)
    with Timer() as t_build:
        clf.build()  # prototypes, example vectors (encoded here) and the classify head
    with Timer() as t_tag:
        if clf.heads_ is not None:
            clf.heads_.fit_tag()  # one-vs-rest heads, fitted lazily on the first tag call
    out["fit"]["classer_local examples"] = {"build_with_encoding_s": t_build.seconds,
                                            "softmax_head_s": float(getattr(clf, "fit_seconds_", 0.0)),
                                            "tag_head_s": t_tag.seconds}
    # The baseline: the same heads with neither calibration nor per-label thresholds (what tag did
    # before it calibrated itself on first use).
    before = cl.Classifier(labels, examples=examples, **kw).build()
    before._tag_calibrated = True
    add("classer_local examples, before", before.tag_proba_from_embeddings(Xv), before.tag_proba_from_embeddings(Xt))
    calibrated = False
    with Timer() as t_cal:
        if calibrate:  # the default: runs on the first tag call; timed here on its own
            calibrated = clf.calibrate()
    if calibrate:
        out["fit"]["classer_local examples + calibrate()"] = {"calibrate_s": t_cal.seconds, "calibrated": calibrated}
    add("classer_local examples", clf.tag_proba_from_embeddings(Xv), clf.tag_proba_from_embeddings(Xt),
        clf.label_thresholds())

    # Peers on the same vectors.
    train_texts = [r["text"] for r in train]
    E = clf.embed_texts(train_texts)  # embedding-cache hits: encoded by the build above
    Ytr = matrix(train)
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    with Timer() as t:
        ovr = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(E, Ytr)
    out["fit"]["LR one-vs-rest frozen"] = {"fit_s": t.seconds}
    add("LR one-vs-rest frozen", ovr.predict_proba(Xv), ovr.predict_proba(Xt))

    Sv, St = Xv @ zero.prototypes_.T, Xt @ zero.prototypes_.T
    add("cosine (s+1)/2", (Sv + 1) / 2, (St + 1) / 2)
    lo, hi = float(St.min()), float(St.max())  # min-max over the test matrix itself
    add("cosine min-max", np.clip((Sv - lo) / (hi - lo), 0, 1), (St - lo) / (hi - lo))

    if setfit_per_label > 0:
        from peers import setfit_run

        rng = random.Random(0)
        chosen: list[int] = []
        for lb in labels:
            idx = [i for i, r in enumerate(train) if lb in r["labels"] and i not in chosen]
            chosen.extend(rng.sample(idx, min(setfit_per_label, len(idx))))
        texts = [train[i]["text"] for i in chosen]
        ys = [[int(v) for v in Ytr[i]] for i in chosen]
        eval_texts = [r["text"] for r in val] + [r["text"] for r in test]
        r = setfit_run(texts, ys, eval_texts, seed=0, device=device, max_steps=setfit_max_steps, multi_label=True)
        P = r["proba"]
        out["fit"][f"SetFit {setfit_per_label}/label"] = {"fit_s": r["fit_s"], "steps": r["steps"],
                                                          "protocol_steps": r["protocol_steps"], "rows": len(texts)}
        add(f"SetFit {setfit_per_label}/label", P[: len(val)], P[len(val):])
        # classer_local on the very same rows, for a like-for-like reading
        few = {lb: [] for lb in labels}
        for t_, y_ in zip(texts, ys):
            for lb, v in zip(labels, y_):
                if v:
                    few[lb].append(t_)
        small = cl.Classifier(labels, examples=few, **kw)
        add(f"classer_local {setfit_per_label}/label", small.tag_proba_from_embeddings(Xv), small.tag_proba_from_embeddings(Xt))
    f = out["fit"]["classer_local examples"]
    log(f"goemotions fit: build with encoding {f['build_with_encoding_s']:.1f} s, softmax head "
        f"{f['softmax_head_s']:.2f} s, tag heads {f['tag_head_s']:.2f} s"
        + (f", calibrate() {t_cal.seconds:.1f} s" if calibrate else ""))
    return out


def run_tuned(data: Path, steps: int, *, device: str = "auto", log: Any = print) -> dict[str, Any]:
    """The same 5,000 examples with ``fit(tune=True)``'s encoder tuning (``steps`` LoRA steps),
    then calibration and per-label thresholds as ``classer_local examples``: its own run (half an
    hour on a 2-core CPU), read by ``run_all.py`` from ``results/goemotions_tuned.json``."""
    from classer_local.tuning import TuneSettings

    folder = Path(data) / "goemotions"
    labels = json.loads((folder / "labels.json").read_text())
    test, val = read_jsonl(folder / "test.jsonl"), read_jsonl(folder / "validation.jsonl")
    train = read_jsonl(folder / "train_sample5000_seed42.jsonl")

    def matrix(rows: list[dict[str, Any]]) -> np.ndarray:
        return np.array([[lb in r["labels"] for lb in labels] for r in rows], dtype=float)

    desc = descriptions().get("goemotions", {})
    examples: dict[str, list[str]] = {lb: [] for lb in labels}
    for r in train:
        for lb in r["labels"]:
            examples[lb].append(r["text"])
    clf = cl.Classifier(labels, examples=examples, descriptions=desc.get("descriptions"),
                        text_type=desc.get("text_type"), device=device)
    with Timer() as t_tune:
        clf.tune(TuneSettings(max_steps=steps), progress=False)
    Xv = clf.embed_texts([r["text"] for r in val])
    Xt = clf.embed_texts([r["text"] for r in test])
    with Timer() as t_cal:
        clf.calibrate()
    m = _metrics(matrix(val), clf.tag_proba_from_embeddings(Xv), matrix(test), clf.tag_proba_from_embeddings(Xt),
                 clf.label_thresholds())
    delta = clf.tuned_
    out = {"model": clf.spec_.name, "steps": steps, "steps_run": delta.steps, "tune_s": t_tune.seconds,
           "calibrate_s": t_cal.seconds,
           "delta_bytes": int(sum(a.nbytes for a in delta.tensors.values())), "first_loss": delta.first_loss,
           "final_loss": delta.final_loss, "n_test": len(test), "n_val": len(val), "n_train": len(train),
           "metrics": {k: v for k, v in m.items() if not isinstance(v, (list, dict))},
           "load_avg": os.getloadavg()[0]}
    log(f"goemotions tuned ({delta.steps} steps, {t_tune.seconds:.0f} s): macro-F1 {m['macro_f1@default']:.3f} at its "
        f"own thresholds, {m['macro_f1@0.5']:.3f} at 0.5, {m['macro_f1@best']:.3f} at {m['threshold']:.2f}; "
        f"micro-F1 {m['micro_f1@default']:.3f}; ECE {m['ece']:.4f}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--eval-max", type=int, default=0, help="subsample test and validation to this many rows")
    ap.add_argument("--train-max", type=int, default=0, help="subsample the train rows used as examples")
    ap.add_argument("--no-calibrate", action="store_true", help="skip Classifier.calibrate() (minutes on 5,000 rows)")
    ap.add_argument("--setfit-per-label", type=int, default=0)
    ap.add_argument("--setfit-max-steps", type=int, default=-1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--plot", type=Path, default=None, help="write the tag reliability diagram here")
    ap.add_argument("--tune-steps", type=int, default=0,
                    help="run only the tuned variant (fit(tune=True), this many steps; ~30 min on 2 cores)")
    ap.add_argument("--tuned-out", type=Path, default=Path(__file__).resolve().parent / "results" / "goemotions_tuned.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.tune_steps:
        out = run_tuned(args.data, args.tune_steps, device=args.device)
        args.tuned_out.parent.mkdir(parents=True, exist_ok=True)
        args.tuned_out.write_text(json.dumps(out, indent=1))
        print(f"done in {time.perf_counter() - t0:.0f} s; wrote {args.tuned_out}")
        return out
    out = run(args.data, device=args.device, eval_max=args.eval_max or None, train_max=args.train_max or None,
              calibrate=not args.no_calibrate, setfit_per_label=args.setfit_per_label,
              setfit_max_steps=args.setfit_max_steps)
    if args.plot:
        plot_reliability(args.plot, {"GoEmotions tag (every text-label pair)": out["reliability"]}, "fraction positive")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return out


if __name__ == "__main__":
    main()
