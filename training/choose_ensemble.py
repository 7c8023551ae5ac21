#!/usr/bin/env python
"""Choose an ensemble's member weights (``member_weights`` of a ``backend = "ensemble"`` model).

Rows: the dev sets' training pools (``../shared/evaldata/<set>/``, the few-shot pool files, never
their test rows; names shown as ``benchmarks/descriptions.json`` names them) and every row of the
``train/`` sets held out of the label-matching encoder's training (``train_encoder.DEFAULT_HOLDOUT``:
the sets it saw would flatter it). ``eval/`` is never read. Per set, each member's cosines to the
label prototypes are computed once in two regimes, bare names (``glossary=False``) and the library's
default (glossary descriptions where it knows a label); then every weighting on a grid over the
simplex (``--step``) is scored by names-only accuracy plus glossary accuracy, averaged over the sets.
The best weighting is printed beside every single member and written, with the rows' sha256, to
``--out``.

    python training/choose_ensemble.py --evaldata ../shared/evaldata --train-dir ../shared/trainingdata/train \\
        --members minilm-l6-labelmatch,all-minilm-l6-v2,use-multilingual
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from common import TEXT_SETS, descriptions, load_set

sys.path.insert(0, str(REPO / "training"))
from train_encoder import DEFAULT_HOLDOUT


def selection_sets(evaldata: Path, train_dir: Path, holdout: list[str], rows: int) -> list[dict]:
    desc_all = descriptions()
    out = []
    for name in TEXT_SETS:
        ds = load_set(evaldata, name)
        shown = desc_all.get(name, {}).get("names", {})
        to_shown = {lb: shown.get(lb, lb) for lb in ds["labels"]}
        pool = random.Random(2).sample(ds["pool"], min(rows, len(ds["pool"])))
        out.append({"name": f"{name} (pool)", "labels": list(to_shown.values()), "texts": [r["text"] for r in pool],
                    "gold": [{to_shown[r["label"]]} for r in pool]})
    for name in holdout:
        folder = train_dir / name
        data = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines() if line.strip()]
        data = random.Random(1).sample(data, min(rows, len(data)))
        out.append({"name": f"{name} (held out)", "labels": json.loads((folder / "labels.json").read_text()),
                    "texts": [r["text"] for r in data],
                    "gold": [set(r["labels"]) if "labels" in r else {r["label"]} for r in data]})
    return out


def member_sims(model: str, s: dict) -> dict[str, np.ndarray]:
    import classer_local as cl
    from classer_local import scoring

    bare = cl.Classifier(s["labels"], model=model, glossary=False).build()
    X = bare.embedder.encode(s["texts"])
    typed = cl.Classifier(s["labels"], model=model).build()
    return {"names": scoring.cosine(X, bare.prototypes_), "glossary": scoring.cosine(X, typed.prototypes_)}


def simplex(k: int, step: float) -> list[tuple[float, ...]]:
    n = round(1 / step)
    return [tuple(c / n for c in combo) for combo in itertools.product(range(n + 1), repeat=k) if sum(combo) == n]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaldata", required=True, type=Path, help="the dev sets (their training pools are read)")
    ap.add_argument("--train-dir", required=True, type=Path)
    ap.add_argument("--members", default="minilm-l6-labelmatch,all-minilm-l6-v2,use-multilingual")
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT))
    ap.add_argument("--rows", type=int, default=500, help="rows per set at most (seeded sample)")
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=REPO / "training" / "ensemble-weights.json")
    a = ap.parse_args(argv)
    t0 = time.time()
    members = a.members.split(",")
    sets = selection_sets(a.evaldata, a.train_dir, a.holdout.split(","), a.rows)
    sims = {m: [member_sims(m, s) for s in sets] for m in members}
    golds = [np.array([[lb in g for lb in s["labels"]] for g in s["gold"]]) for s in sets]

    def figures(w: tuple[float, ...]) -> dict[str, float]:
        out = {}
        for regime in ("names", "glossary"):
            accs = []
            for i, gold in enumerate(golds):
                total = sum(wi * sims[m][i][regime] for m, wi in zip(members, w) if wi)
                accs.append(float(gold[np.arange(len(gold)), total.argmax(1)].mean()))
            out[regime] = float(np.mean(accs))
            out[f"{regime}_per_set"] = dict(zip((s["name"] for s in sets), accs))
        out["score"] = (out["names"] + out["glossary"]) / 2
        return out

    scored = sorted(((figures(w), w) for w in simplex(len(members), a.step)), key=lambda fw: -fw[0]["score"])
    print(f"load average {os.getloadavg()}; {len(sets)} sets, {sum(len(g) for g in golds)} rows; members {members}")
    print("weights".ljust(28) + "names  glossary  mean")
    for f, w in scored[:10]:
        print(str(w).ljust(28) + f"{f['names']:.3f}  {f['glossary']:.3f}    {f['score']:.3f}")
    alone = {m: figures(tuple(float(i == j) for j in range(len(members)))) for i, m in enumerate(members)}
    for m, f in alone.items():
        print(f"{m} alone".ljust(28) + f"{f['names']:.3f}  {f['glossary']:.3f}    {f['score']:.3f}")
    best_f, best_w = scored[0]
    print(f"chosen member_weights = {list(best_w)}")
    record = {
        "program": "training/choose_ensemble.py", "argv": sys.argv[1:], "members": members,
        "member_weights": list(best_w), "chosen": best_f, "alone": alone,
        "top10": [{"weights": list(w), "names": f["names"], "glossary": f["glossary"]} for f, w in scored[:10]],
        "sets": [{"name": s["name"], "rows": len(s["texts"]),
                  "sha256": hashlib.sha256("\n".join(s["texts"]).encode()).hexdigest()} for s in sets],
        "seconds": round(time.time() - t0, 1), "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    a.out.write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
