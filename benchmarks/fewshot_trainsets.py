"""Few-shot on label sets beyond the five dev sets: ``train/`` sets, rows the encoder never trained on.

    python benchmarks/fewshot_trainsets.py --train-dir ../shared/trainingdata/train \
        [--sets medical_abstracts_5,...] [--shots 8,16,32,64] [--seeds 2] [--eval-rows 400]

The learning curve (``learning_curve.py``) covers five dev sets; this widens it to ten
``train/`` sets (the three held out of encoder training, and rows outside the seeded sample
``training/train_encoder.py`` took from the others, so the prior has not memorised them). For
each set, N examples per label are drawn from a pool, the rest scored:

* ``classer_local``: ``Classifier(labels, descriptions).fit`` on the examples, as a user runs it
  (from ``heads.MIN_CV_PER_LABEL`` a label: prior and heads stacked by out-of-fold likelihood);
* ``fixed blend``: the same heads with the default blend only (w = n / (n + k));
* ``centroid`` and ``lr_frozen`` (scikit-learn logistic regression), on the same vectors.

Prints a table per N (accuracy, mean over seeds) with the gap to the best frozen peer; writes
``benchmarks/results/fewshot_trainsets.json`` and ``benchmarks/FEWSHOT_TRAINSETS.md``.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from common import REPO, machine
from train_encoder import DEFAULT_HOLDOUT

import classer_local as cl
from classer_local import scoring
from classer_local.heads import ExampleHeads, centroids_of

SETS = ("medical_abstracts_5", "yelp_review_sentence_sentiment", "crisislex_information_type",
        "csabstruct_sentence_roles", "dbpedia_14", "tweeteval_sentiment", "stanford_politeness_requests",
        "davidson_hate_offensive", "pricerunner_product_categories", "tweeteval_stance")
METHODS = ("classer_local", "fixed blend", "centroid", "lr_frozen")
TRAINED_ROWS = 1200  # rows per set the shipped encoder trained on (training/train_encoder.py --cap)


def split(folder: Path, shots: int, seeds: int, eval_rows: int) -> tuple[list[str], list[dict], list[dict]]:
    """(labels, eval rows, example pool): rows outside the encoder's training sample, the pool
    holding up to ``shots * seeds`` rows a label (disjoint draws per seed where there are enough)."""
    with open(folder / "data.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    labels = json.loads((folder / "labels.json").read_text())
    rows = [r for r in rows if r.get("label") in labels]  # single-label rows
    if folder.name not in DEFAULT_HOLDOUT and len(rows) > TRAINED_ROWS:
        seen = {id(r) for r in random.Random(0).sample(rows, TRAINED_ROWS)}  # train_encoder.py's sample
        rows = [r for r in rows if id(r) not in seen]
    random.Random(1).shuffle(rows)
    pool: dict[str, list[dict]] = {lb: [] for lb in labels}
    ev = []
    for r in rows:
        if len(pool[r["label"]]) < shots * seeds and not (len(ev) < eval_rows and len(pool[r["label"]]) >= shots):
            pool[r["label"]].append(r)
        elif len(ev) < eval_rows:
            ev.append(r)
    return labels, ev, [r for lb in labels for r in pool[lb]]


def run_set(folder: Path, shots: list[int], seeds: int, eval_rows: int, log: Any = print) -> dict[str, Any]:
    labels, ev, pool = split(folder, max(shots), seeds, eval_rows)
    dfile = folder / "descriptions.json"
    desc = {k: v for k, v in json.loads(dfile.read_text()).items() if k in labels} if dfile.exists() else None
    clf = cl.Classifier(labels, descriptions=desc)
    Xe = clf.embedder.encode([r["text"] for r in ev])
    ye = np.array([labels.index(r["label"]) for r in ev])
    Xp = clf.embedder.encode([r["text"] for r in pool])
    yp = np.array([labels.index(r["label"]) for r in pool])
    clf.build()
    prior_acc = float((scoring.cosine(Xe, clf.prototypes_).argmax(axis=1) == ye).mean())
    out: dict[str, Any] = {"labels": len(labels), "eval_rows": len(ev), "prior_accuracy": prior_acc, "curve": {}}
    for n in shots:
        per: dict[str, list[float]] = {m: [] for m in METHODS}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            idx = np.concatenate([rng.choice(np.flatnonzero(yp == c), min(n, int((yp == c).sum())), replace=False)
                                  for c in range(len(labels)) if (yp == c).any()])
            texts, y = [pool[i]["text"] for i in idx], yp[idx]
            user = cl.Classifier(labels, descriptions=desc).fit(texts, [labels[i] for i in y])
            per["classer_local"].append(float((user.proba_from_embeddings(Xe).argmax(axis=1) == ye).mean()))
            k = user._calib("prior_weight", 8.0) if user.descriptions_ else user._calib("prior_weight_names", 4.0)
            fixed = ExampleHeads.fit(Xp[idx], [[int(v)] for v in y], len(labels), prior_k=k, C=user._calib("head_C", 10.0))
            prior = scoring.log_softmax(scoring.cosine(Xe, user.prototypes_).astype(np.float64) / user._temperature())
            z = fixed.classify_logp(prior, Xe, user._calib("few_shot_temperature", 1.0))
            per["fixed blend"].append(float((z.argmax(axis=1) == ye).mean()))
            per["centroid"].append(float(((Xe @ centroids_of(Xp[idx], y, len(labels)).T).argmax(axis=1) == ye).mean()))
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(max_iter=1000).fit(Xp[idx], y)
            per["lr_frozen"].append(float((lr.classes_[lr.predict_proba(Xe).argmax(axis=1)] == ye).mean()))
        row = {m: float(np.mean(v)) for m, v in per.items()}
        best = max(("centroid", "lr_frozen"), key=row.get)
        row["gap_to_best_frozen"] = row["classer_local"] - row[best]
        out["curve"][n] = row
        log(f"{folder.name:32s} N={n:3d} " + " ".join(f"{m} {row[m]:.3f}" for m in METHODS)
            + f" | gap {row['gap_to_best_frozen']:+.3f} vs {best}")
    return out


def table(results: dict[str, Any], shots: list[int]) -> str:
    lines = ["| set | labels | prior | " + " | ".join(f"N={n}: classer_local / fixed / best frozen" for n in shots) + " |",
             "|---|---|---|" + "---|" * len(shots)]
    for name, r in results.items():
        cells = [f"{c['classer_local']:.3f} / {c['fixed blend']:.3f} / {max(c['centroid'], c['lr_frozen']):.3f}"
                 for c in (r["curve"][n] for n in shots)]
        lines.append(f"| {name} | {r['labels']} | {r['prior_accuracy']:.3f} | " + " | ".join(cells) + " |")
    means = [f"**{np.mean([r['curve'][n]['classer_local'] for r in results.values()]):.3f}** / "
             f"{np.mean([r['curve'][n]['fixed blend'] for r in results.values()]):.3f} / "
             f"{np.mean([max(r['curve'][n]['centroid'], r['curve'][n]['lr_frozen']) for r in results.values()]):.3f}"
             for n in shots]
    lines.append("| mean | | | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-dir", type=Path, default=REPO.parent / "shared" / "trainingdata" / "train")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--shots", default="8,16,32,64")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--eval-rows", type=int, default=400)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fewshot_trainsets.json")
    ap.add_argument("--md", type=Path, default=REPO / "benchmarks" / "FEWSHOT_TRAINSETS.md")
    args = ap.parse_args(argv)
    shots = [int(s) for s in args.shots.split(",")]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    results = {name: run_set(args.train_dir / name, shots, args.seeds, args.eval_rows) for name in args.sets.split(",")}
    meta = {"machine": machine(), "seconds": time.perf_counter() - t0, "loadavg_start": load0,
            "loadavg_end": os.getloadavg()[0], "argv": sys.argv[1:], "model": cl.Classifier(["a", "b"]).spec_.name}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    worst = min((r["curve"][n]["gap_to_best_frozen"], name, n) for name, r in results.items() for n in shots)
    md = ("# Few-shot on train/ label sets\n\n<!-- Generated by benchmarks/fewshot_trainsets.py. Do not edit by hand. -->\n\n"
          f"- **Command**: `python benchmarks/fewshot_trainsets.py {' '.join(sys.argv[1:])}`\n"
          f"- **Machine**: {meta['machine']}; load average {load0:.1f} -> {meta['loadavg_end']:.1f}; "
          f"{meta['seconds'] / 60:.1f} min; model {meta['model']}\n"
          f"- **Rows**: {args.eval_rows} scored rows a set outside the encoder's training sample; "
          f"{args.seeds} seeds; prior = zero-shot accuracy\n\n"
          "Accuracy: classer_local / the default blend alone / the best frozen peer (nearest centroid or "
          f"logistic regression on the same vectors). Worst gap to the best frozen peer: "
          f"**{100 * worst[0]:+.1f} points** ({worst[1]}, N={worst[2]}).\n\n" + table(results, shots) + "\n")
    args.md.write_text(md)
    print(md)
    return results


if __name__ == "__main__":
    main()
