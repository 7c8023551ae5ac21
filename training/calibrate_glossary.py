#!/usr/bin/env python
"""Fit the softmax temperature of the glossary regime (``temperature_glossary``).

A label set whose descriptions all come from the built-in glossary (``classer_local.glossary``:
the user typed bare names) is neither regime that ``calibrate_regimes.py`` fits: its prototypes
hold descriptions, but short generic ones, and they separate a new label set about as well as
bare names do. With the described temperature its answers are too sure (on the rows below its
NLL falls from 0.725 at the described 0.057 to 0.704 at 0.08). Rows: the dev sets' training
pools (``../shared/evaldata/<set>/``, the few-shot pool files, never their test rows) and the
``train/`` sets held out of the encoder's training, wherever the glossary covers every label;
at most ``--rows`` per set, seeded. ``eval/`` is never read.

    python training/calibrate_glossary.py --evaldata ../shared/evaldata \
        --train-dir ../shared/trainingdata/train --model minilm-l6-labelmatch [--write models.toml]

``--write`` sets ``temperature_glossary`` in the model's calibration table of the given
models.toml and records the fit in ``training/calibration-glossary-NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from calibrate_regimes import write  # noqa: E402
from common import TEXT_SETS  # noqa: E402
from train_encoder import DEFAULT_HOLDOUT  # noqa: E402


def rows_of(path: Path, labels: list[str], n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if r.get("label") in labels]
    return random.Random(seed).sample(rows, min(n, len(rows)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaldata", required=True, type=Path, help="the dev sets (their training pools are read)")
    ap.add_argument("--train-dir", required=True, type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT))
    ap.add_argument("--rows", type=int, default=800)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--write", type=Path, default=None)
    a = ap.parse_args(argv)

    import classer_local as cl
    from classer_local import glossary, scoring
    from classer_local.calibration import expected_calibration_error, fit_temperature

    t0 = time.time()
    sources: list[tuple[str, list[str], list[dict]]] = []
    for name, (_, pool) in TEXT_SETS.items():
        labels = json.loads((a.evaldata / name / "labels.json").read_text())
        sources.append((f"dev pool {name}", labels, rows_of(a.evaldata / name / pool, labels, a.rows, a.seed)))
    for name in a.holdout.split(","):
        labels = json.loads((a.train_dir / name / "labels.json").read_text())
        sources.append((f"held-out {name}", labels, rows_of(a.train_dir / name / "data.jsonl", labels, a.rows, a.seed)))
    sims, ys, used = [], [], {}
    for name, labels, rows in sources:
        if not rows or any(glossary.lookup(lb) is None for lb in labels):
            continue  # the glossary must describe every label: that is the regime
        clf = cl.Classifier(labels, model=a.model).build()
        X = clf.embedder.encode([r["text"] for r in rows])
        sims.append(scoring.cosine(X, clf.prototypes_))
        ys.append(np.array([labels.index(r["label"]) for r in rows]))
        used[name] = len(rows)
        print(f"{name:45s} rows={len(rows)} labels={len(labels)}", flush=True)
    if not sims:
        raise SystemExit("no set is fully covered by the glossary")
    width = max(s.shape[1] for s in sims)
    S = np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=-1e4) for s in sims])
    Y = np.concatenate(ys)
    T = fit_temperature(S, Y)

    def measure(t: float) -> dict:
        P = np.exp(scoring.log_softmax(S / t))
        conf, right = P.max(1), P.argmax(1) == Y
        hi = conf > 0.9
        return {"nll": round(float(-np.log(P[np.arange(len(Y)), Y]).mean()), 4),
                "ece": round(expected_calibration_error(conf, right), 4), "acc": round(float(right.mean()), 4),
                "hi_share": round(float(hi.mean()), 4), "hi_acc": round(float(right[hi].mean()), 4) if hi.any() else None}

    spec = cl.Classifier(["x"], model=a.model).spec_
    described = float(spec.calibration.get("temperature", 0.05))
    report = {"model": a.model, "fitted": {"temperature_glossary": round(T, 5)}, "at_fit": measure(T),
              "at_described_temperature": {"temperature": described, **measure(described)},
              "glossary_version": glossary.version(), "rows_per_set": used, "seconds": round(time.time() - t0, 1),
              "program": "training/calibrate_glossary.py", "argv": sys.argv[1:] if argv is None else argv}
    print(json.dumps(report, indent=1))
    if a.write:
        write(a.write, a.model, report["fitted"])
        (HERE / f"calibration-glossary-{a.model}.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
