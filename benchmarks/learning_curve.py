"""Few-shot learning curve: classer_local against frozen-vector peers at N = 1 .. 64 per label.

    python benchmarks/learning_curve.py --data ../shared/evaldata [--sets trec,sst2]
        [--shots 1,2,4,8,16,32,64] [--seeds 5] [--setfit-shots 8 --setfit-seeds 1] [--eval-max 0]

For each dev set and N (``common.sample_few_shot``, the same rows for every method, seeds 0..k-1):

* ``classer_local``: ``Classifier(labels, descriptions, text_type).fit(examples)`` — from 16 a
  label, the name/description prior and the example heads stacked by out-of-fold likelihood;
* ``fixed blend``: the same heads with the blend used before cross-validation (w = n / (n + k),
  logistic-regression head, one global temperature) — the baseline, in the same run;
* ``cv from N=2``: the stack fitted at every N (``heads.MIN_CV_PER_LABEL`` = 2);
* ``centroid``: nearest centroid of each label's example vectors (cosine);
* ``lr_frozen``: scikit-learn logistic regression on the same frozen vectors;
* ``tfidf_lr``: TF-IDF + logistic regression on the texts;
* ``setfit`` (optional, slow on CPU): SetFit on the packaged MiniLM body.

Every vector method uses classer_local's own model (the one ``Classifier`` picks by default),
so the frozen peers see exactly the vectors classer_local sees. Prints a table per set
(accuracy, mean over seeds) and the gap to the best frozen peer; writes
``benchmarks/results/learning_curve.json`` and ``benchmarks/plots/learning_curve.png``.
``--eval-on pool`` scores on held-out training-pool rows instead of test rows: settings such as
``heads.MIN_CV_PER_LABEL`` are chosen from that run, never from the test rows.
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
from accuracy import shown_labels  # noqa: E402
from common import DEFAULT_DATA, REPO, TEXT_SETS, Timer, load_set, machine, sample_few_shot  # noqa: E402
from peers import lr_frozen, setfit_run, tfidf_lr, top1  # noqa: E402

import classer_local as cl  # noqa: E402
from classer_local.calibration import expected_calibration_error  # noqa: E402
from classer_local import scoring  # noqa: E402
from classer_local.heads import ExampleHeads, centroids_of  # noqa: E402

FROZEN_PEERS = ("centroid", "lr_frozen", "tfidf_lr")
METHODS = ("classer_local", "fixed blend", "cv from N=2", *FROZEN_PEERS, "setfit")


def refit(clf: cl.Classifier, min_cv: int | None) -> None:
    """Re-fit ``clf``'s classify head: ``min_cv=None`` is the blend used before cross-validation
    (w = n / (n + k), logistic regression, one global temperature); otherwise cross-validation
    from ``min_cv`` examples per label."""
    texts, owners = clf.text_examples()
    X = clf.embed_texts(texts)
    k = clf._calib("prior_weight", 8.0) if clf.descriptions_ else clf._calib("prior_weight_names", 4.0)
    prior = None if min_cv is None else scoring.log_softmax(
        scoring.cosine(X, clf.prototypes_).astype(np.float64) / clf._temperature())
    clf.heads_ = ExampleHeads.fit(X, owners, len(clf.labels_), prior_k=k, C=clf._calib("head_C", 10.0),
                                  prior_logp=prior, prior_temperature=clf._temperature(), min_cv=min_cv or 0)


def run_set(data: Path, name: str, *, shots: list[int], seeds: int, setfit_shots: list[int], setfit_seeds: int,
            eval_max: int | None, eval_on: str = "test", log: Any = print) -> dict[str, Any]:
    ds = load_set(data, name)
    labels = ds["labels"]
    shown, true_to_shown, descs, text_type = shown_labels(name, labels)
    rows = ds["eval"]
    if eval_on == "pool":  # choose settings without test rows: every 4th training row is held out
        rows = [r for i, r in enumerate(ds["pool"]) if i % 4 == 0]
        ds["pool"] = [r for i, r in enumerate(ds["pool"]) if i % 4]
    if eval_max and len(rows) > eval_max:
        rows = random.Random(0).sample(rows, eval_max)
    texts, y = [r["text"] for r in rows], [r["label"] for r in rows]

    def make() -> cl.Classifier:
        return cl.Classifier(shown, descriptions=descs, text_type=text_type)

    X = make().embedder.encode(texts)
    classes_true = labels  # column order of every classer_local proba (shown -> true is 1:1 by position)
    out: dict[str, Any] = {"n_eval": len(texts), "n_labels": len(labels), "model": make().spec_.name,
                           "eval_on": eval_on, "curve": {}}
    for n in shots:
        per: dict[str, list[float]] = {m: [] for m in METHODS}
        extra: dict[str, list[Any]] = {"ece": [], "fit_s": [], "head_s": [], "selection": []}
        for seed in range(seeds):
            Xs, ys = sample_few_shot(ds["pool"], labels, n, seed)
            clf = make()
            with Timer() as t:
                clf.fit(Xs, [true_to_shown[v] for v in ys])
            pred, conf, correct = top1(clf.proba_from_embeddings(X), classes_true, y)
            per["classer_local"].append(float(correct.mean()))
            extra["ece"].append(expected_calibration_error(conf, correct))
            extra["fit_s"].append(t.seconds)
            extra["head_s"].append(clf.fit_seconds_)
            if seed == 0:  # the fit a user meets: embedding cache off, so the examples are encoded
                cold = cl.Classifier(shown, descriptions=descs, text_type=text_type, cache=False)
                cold.embedder.encode(["warm"])
                with Timer() as tc:
                    cold.fit(Xs, [true_to_shown[v] for v in ys])
                extra["cold_fit_s"] = tc.seconds
            extra["selection"].append(clf.heads_.selection if clf.heads_ is not None else {})
            refit(clf, None)
            per["fixed blend"].append(float(top1(clf.proba_from_embeddings(X), classes_true, y)[2].mean()))
            refit(clf, 2)
            per["cv from N=2"].append(float(top1(clf.proba_from_embeddings(X), classes_true, y)[2].mean()))
            E = clf.embed_texts(list(Xs))
            yi = np.array([labels.index(v) for v in ys])
            C = centroids_of(E, yi, len(labels))
            per["centroid"].append(float((np.argmax(X @ C.T, axis=1) == np.array([labels.index(v) for v in y])).mean()))
            r = lr_frozen(E, ys, X)
            per["lr_frozen"].append(float(top1(r["proba"], r["classes"], y)[2].mean()))
            r = tfidf_lr(Xs, ys, texts)
            per["tfidf_lr"].append(float(top1(r["proba"], r["classes"], y)[2].mean()))
            if n in setfit_shots and seed < setfit_seeds:
                r = setfit_run(Xs, ys, texts, seed=seed)
                per["setfit"].append(float(top1(r["proba"], r["classes"], y)[2].mean()))
        row = {m: {"acc": float(np.mean(v)), "acc_std": float(np.std(v)), "runs": len(v)} for m, v in per.items() if v}
        best_peer = max(FROZEN_PEERS, key=lambda m: row[m]["acc"])
        row["best_frozen_peer"] = best_peer
        row["gap_to_best_frozen"] = row["classer_local"]["acc"] - row[best_peer]["acc"]
        row["classer_local"].update(ece=float(np.mean(extra["ece"])), fit_s=float(np.median(extra["fit_s"])),
                                    head_s=float(np.median(extra["head_s"])), cold_fit_s=extra["cold_fit_s"])
        kinds = [s.get("kind", "default") for s in extra["selection"]]
        row["chosen"] = {k: kinds.count(k) for k in sorted(set(kinds))}
        row["chosen_weights"] = [s.get("weights", s.get("weight")) for s in extra["selection"]]
        out["curve"][n] = row
        log(f"{name:10s} N={n:3d} " + " ".join(f"{m} {row[m]['acc']:.3f}" for m in METHODS if m in row)
            + f" | gap {row['gap_to_best_frozen']:+.3f} vs {best_peer} | chosen {row['chosen']}"
            f" w {row['chosen_weights']} | ECE {row['classer_local']['ece']:.3f} fit {row['classer_local']['fit_s']:.2f} s"
            f" (heads {row['classer_local']['head_s']:.2f} s, cold {row['classer_local']['cold_fit_s']:.2f} s)")
    return out


def table(results: dict[str, Any]) -> str:
    lines = []
    for name, res in results.items():
        lines += [f"\n{name} ({res['n_eval']} rows, {res['n_labels']} labels, model {res['model']}): accuracy, mean over seeds",
                  "| N | " + " | ".join(METHODS) + " | gap to best frozen peer |",
                  "|---" * (len(METHODS) + 2) + "|"]
        for n, row in res["curve"].items():
            cells = [f"{row[m]['acc']:.3f}" if m in row else "–" for m in METHODS]
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {row['gap_to_best_frozen']:+.3f} ({row['best_frozen_peer']}) |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        ns = list(res["curve"])
        for m in METHODS:
            pts = [(n, res["curve"][n][m]["acc"]) for n in ns if m in res["curve"][n]]
            if pts:
                ax.plot(*zip(*pts), marker="o" if m != "setfit" else "*", label=m, lw=2 if m == "classer_local" else 1)
        ax.set_xscale("log", base=2)
        ax.set_title(name)
        ax.set_xlabel("examples per label")
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", default=",".join(TEXT_SETS))
    ap.add_argument("--shots", default="1,2,4,8,16,32,64")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--setfit-shots", default="", help="N for which SetFit also runs (slow on CPU)")
    ap.add_argument("--setfit-seeds", type=int, default=1)
    ap.add_argument("--eval-max", type=int, default=0)
    ap.add_argument("--eval-on", choices=("test", "pool"), default="test",
                    help="pool: evaluate on every 4th training-pool row instead (for choosing settings)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "learning_curve.json")
    ap.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "plots" / "learning_curve.png")
    ap.add_argument("--md", type=Path, default=REPO / "benchmarks" / "LEARNING_CURVE.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    results = {name: run_set(args.data, name, shots=[int(s) for s in args.shots.split(",")], seeds=args.seeds,
                             setfit_shots=[int(s) for s in args.setfit_shots.split(",") if s],
                             setfit_seeds=args.setfit_seeds, eval_max=args.eval_max or None,
                             eval_on=args.eval_on)
               for name in args.sets.split(",")}
    print(table(results))
    meta = {"machine": machine(), "seconds": time.perf_counter() - t0, "loadavg_start": load0,
            "loadavg_end": os.getloadavg()[0], "argv": sys.argv[1:]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    plot(results, args.plot)
    print(f"done in {meta['seconds']:.0f} s; load average {load0:.1f} -> {meta['loadavg_end']:.1f}")
    fits = "; ".join(f"{name} {res['curve'][n]['classer_local']['cold_fit_s']:.2f} s"
                     for name, res in results.items() for n in res["curve"] if n == 8)
    worst = min((row["gap_to_best_frozen"], name, n) for name, res in results.items() for n, row in res["curve"].items())
    args.md.write_text(
        "# Few-shot learning curve\n\n<!-- Generated by benchmarks/learning_curve.py. Do not edit by hand. -->\n\n"
        f"- **Command**: `python benchmarks/learning_curve.py {' '.join(sys.argv[1:])}`\n"
        f"- **Machine**: {meta['machine']}; load average {load0:.1f} at the start, {meta['loadavg_end']:.1f} at the end; "
        f"{meta['seconds'] / 60:.1f} min\n"
        f"- **Rows scored**: {'held-out training-pool rows (every 4th)' if args.eval_on == 'pool' else 'test rows'}\n\n"
        "classer_local (names + descriptions + N examples per label) against the best frozen-vector peer "
        "(nearest centroid, logistic regression on the same vectors, TF-IDF + LR) at every N; goal: at or above "
        f"the best frozen peer − 1 point everywhere. Worst gap: **{100 * worst[0]:+.1f} points** ({worst[1]}, N={worst[2]}). "
        f"8-shot `Classifier.fit` with the embedding cache off (examples encoded): {fits}.\n"
        + table(results) + "\n\n![learning curve](plots/learning_curve.png)\n")
    return results


if __name__ == "__main__":
    main()
