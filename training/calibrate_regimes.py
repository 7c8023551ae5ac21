#!/usr/bin/env python
"""Fit a text model's confidence constants per regime on ``train/`` rows its training never saw.

Regimes: names only (``temperature_names``), names + descriptions (``temperature``), and the tag
sigmoid over (cosine, log-softmax rank) (``tag_a``, ``tag_c``, ``tag_b``). Rows: up to ``--rows``
per ``train/`` set, drawn from the rows outside the encoder's training sample (the same seeded
sample ``train_encoder.py`` took, so a trained model is never calibrated on what it learned),
and every row of the sets held out of training. ``eval/`` and the dev sets are never read.

A trained encoder has learned the label names of the sets it saw: on their unseen rows it is
right far more often than on a new label set (0.71 against about 0.60), so a temperature fitted
there is too sharp for a user's labels. With ``--fit-on held-out`` (the default for a trained
model) ``temperature_names`` is fitted on the held-out sets only, the regime a new label set is
in, and ``temperature`` (the held-out sets have no descriptions) is the seen-set fit scaled by the
same ratio. Both fits are reported.

    python training/calibrate_regimes.py --train-dir ../shared/trainingdata/train \
        --model classer-minilm-labelmatch --cap 1200 [--write models.toml]

``--write`` replaces the temperatures (the tag fit is reported only) in the model's ``[models.NAME.calibration]`` table of the given
models.toml (the package's copy is a symlink to the root one) and records the fit in
``training/calibration-NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_encoder import DEFAULT_HOLDOUT  # noqa: E402


def unseen_rows(folder: Path, cap: int, seed: int, held_out: bool, n: int) -> list[dict]:
    rows = [json.loads(line) for line in open(folder / "data.jsonl") if line.strip()]
    if not held_out:
        if len(rows) <= cap:
            return []
        seen = {id(r) for r in random.Random(seed).sample(rows, cap)}
        rows = [r for r in rows if id(r) not in seen]
    return random.Random(seed + 7).sample(rows, min(n, len(rows)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-dir", required=True, type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cap", type=int, default=1200, help="the encoder's training rows per set (0: base model)")
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT))
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--fit-on", choices=["held-out", "all"], default="held-out",
                    help="rows the temperatures are fitted on (a base model, --cap 0, has no held-out sets: all)")
    a = ap.parse_args(argv)

    import classer_local as cl
    from classer_local import scoring
    from classer_local.calibration import expected_calibration_error, fit_platt, fit_temperature

    t0 = time.time()
    holdout = set(a.holdout.split(",")) if a.cap else set()
    names_sims, names_y, desc_sims, desc_y, tag_f, tag_t = [], [], [], [], [], []
    held_sims, held_y = [], []
    used = {}
    for folder in sorted(p for p in a.train_dir.iterdir() if p.is_dir()):
        rows = unseen_rows(folder, a.cap if a.cap else 10**9, a.seed, folder.name in holdout or not a.cap, a.rows)
        labels = json.loads((folder / "labels.json").read_text())
        rows = [r for r in rows if ("label" in r and r["label"] in labels)]  # single-label rows only
        if len(rows) < 20 or len(labels) < 2:
            continue
        used[folder.name] = len(rows)
        y = np.array([labels.index(r["label"]) for r in rows])
        clf = cl.Classifier(labels, model=a.model, glossary=False)  # bare names
        X = clf.embedder.encode([r["text"] for r in rows])
        clf.build()
        s = scoring.cosine(X, clf.prototypes_)
        names_sims.append(s)
        names_y.append(y)
        if folder.name in holdout:
            held_sims.append(s)
            held_y.append(y)
        dfile = folder / "descriptions.json"
        if dfile.exists():
            desc = {k: v for k, v in json.loads(dfile.read_text()).items() if k in labels}
            dclf = cl.Classifier(labels, model=a.model, descriptions=desc, glossary=False).build()
            desc_sims.append(scoring.cosine(X, dclf.prototypes_))
            desc_y.append(y)
        tag_f.append(s)
        Y = np.zeros_like(s)
        Y[np.arange(len(y)), y] = 1
        tag_t.append(Y)
        print(f"{folder.name:45s} rows={len(rows)} labels={len(labels)}", flush=True)

    def stack(sims: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # One temperature for every label-set size: pool the per-set NLLs (each set weighs its rows).
        S = np.concatenate([np.pad(x, ((0, 0), (0, 300 - x.shape[1])), constant_values=-1e4) for x in sims])
        return S, np.concatenate(ys)

    def measure(sims: list[np.ndarray], ys: list[np.ndarray], T: float) -> dict:
        S, Yv = stack(sims, ys)
        P = np.exp(scoring.log_softmax(S / T))
        conf, right = P.max(1), (P.argmax(1) == Yv)
        hi = conf > 0.9
        return {"ece": round(expected_calibration_error(conf, right), 4), "acc": round(float(right.mean()), 4),
                "hi_share": round(float(hi.mean()), 4), "hi_acc": round(float(right[hi].mean()), 4) if hi.any() else None}

    def fit_t(sims: list[np.ndarray], ys: list[np.ndarray]) -> tuple[float, dict]:
        T = fit_temperature(*stack(sims, ys))
        return T, measure(sims, ys, T)

    T_names, m_names = fit_t(names_sims, names_y)
    T_desc, m_desc = fit_t(desc_sims, desc_y) if desc_sims else (T_names, {})
    seen_fit = {"temperature_names": round(T_names, 5), "temperature": round(T_desc, 5), "names": m_names,
                "described": m_desc}
    if a.fit_on == "held-out" and held_sims:
        T_held, m_names = fit_t(held_sims, held_y)
        ratio = T_held / T_names
        T_names, T_desc = T_held, T_desc * ratio
        if desc_sims:
            m_desc = measure(desc_sims, desc_y, T_desc)
    feats = np.concatenate([np.stack([s.ravel(), scoring.log_softmax(s / T_desc).ravel()], 1) for s in tag_f])
    a_, c_, b_ = fit_platt(feats, np.concatenate([t.ravel() for t in tag_t]))
    fitted = {"temperature_names": round(T_names, 5), "temperature": round(T_desc, 5),
              "tag_a": round(a_, 4), "tag_c": round(c_, 4), "tag_b": round(b_, 4)}
    report = {"model": a.model, "fitted": fitted, "fit_on": a.fit_on if held_sims else "all", "names": m_names,
              "described": m_desc, "seen_sets_fit": seen_fit, "rows_per_set": used,
              "seconds": round(time.time() - t0, 1), "program": "training/calibrate_regimes.py", "argv": sys.argv[1:]}
    print(json.dumps(report, indent=1))
    if a.write:
        # tag_* from single-label rows would teach tag that a text has one label: reported, not written.
        write(a.write, a.model, {k: v for k, v in fitted.items() if not k.startswith("tag_")})
        out = Path(__file__).resolve().parent / f"calibration-{a.model}.json"
        out.write_text(json.dumps(report, indent=1))
    return report


def write(toml: Path, model: str, values: dict[str, float]) -> None:
    """Set ``values`` in ``[models.MODEL.calibration]``, keeping the file's comments and layout."""
    text = toml.read_text()
    head = f"[models.{model}.calibration]"
    start = text.index(head) + len(head)
    nxt = re.search(r"^\[", text[start:], flags=re.M)
    end = start + (nxt.start() if nxt else len(text) - start)
    body = text[start:end]
    for k, v in values.items():
        if re.search(rf"^{k}\s*=", body, flags=re.M):
            body = re.sub(rf"^{k}\s*=.*$", f"{k} = {v}", body, flags=re.M)
        else:
            body = body.rstrip("\n") + f"\n{k} = {v}"
    body = body.rstrip("\n") + "\n" + ("\n" if nxt else "")
    toml.write_text(text[:start] + body + text[end:])


if __name__ == "__main__":
    main()
