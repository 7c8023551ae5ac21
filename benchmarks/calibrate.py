"""Fit each text model's calibration on training data and write it into models.toml.

    python benchmarks/calibrate.py --data ../shared/evaldata [--priority standard|fast | --model NAME] [--write]

Fitted on the *training* pools only (never the test rows):
- ``temperature``: softmax temperature of classify, by the negative log-likelihood of the
  true label over AG News, SST-2, Emotion, TREC and Banking77 (names + descriptions);
- ``tag_a``, ``tag_b``: Platt scaling sigmoid(a·cos + b) of one-vs-rest pairs from the same
  sets plus GoEmotions (multi-label), each set weighted equally;
- ``prior_weight`` and ``head_C``: the blend of the name/description prior with the
  few-shot head, by grid search on 8- and 32-shot splits drawn from the pools.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, TEXT_SETS, descriptions, load_set, read_jsonl, sample_few_shot

import classer_local as cl
from classer_local.calibration import fit_platt, fit_temperature
from classer_local.scoring import log_softmax

POOL_ROWS = 800


def described(name: str, labels: list[str], desc: dict, **kw) -> cl.Classifier:
    names = desc.get("names", {})
    shown = [names.get(lb, lb) for lb in labels]
    descs = {names.get(k, k): v for k, v in desc.get("descriptions", {}).items()}
    return cl.Classifier(shown, descriptions=descs, text_type=desc.get("text_type"), cache=True, **kw)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--priority", default="standard")
    ap.add_argument("--model", default=None, help="a model by name (instead of --priority's)")
    ap.add_argument("--write", action="store_true", help="write the fitted values into models.toml")
    args = ap.parse_args(argv)
    pick = {"model": args.model} if args.model else {"priority": args.priority}
    desc_all = descriptions()
    sims_all, y_all, pairs = [], [], []
    fewshot_sets = []
    for name in TEXT_SETS:
        ds = load_set(args.data, name)
        rng = random.Random(7)
        pool = ds["pool"]
        held = rng.sample(pool, min(POOL_ROWS, len(pool) // 2))
        clf = described(name, ds["labels"], desc_all[name], **pick)
        X = clf.embedder.encode([r["text"] for r in held])
        clf.build()
        S = X @ clf.prototypes_.T
        y = np.array([ds["labels"].index(r["label"]) for r in held])
        sims_all.append(S)
        y_all.append(y)
        T = np.zeros_like(S)
        T[np.arange(len(y)), y] = 1
        pairs.append((S, T))
        fewshot_sets.append((name, ds, clf, X, y, held))
        print(f"{name}: {len(held)} pool rows embedded", flush=True)
    # GoEmotions (multi-label) for tag calibration
    ge = Path(args.data) / "goemotions"
    ge_labels = json.loads((ge / "labels.json").read_text())
    rows = random.Random(7).sample(read_jsonl(ge / "train_sample5000_seed42.jsonl"), POOL_ROWS)
    clf = described("goemotions", ge_labels, desc_all["goemotions"], **pick)
    X = clf.embedder.encode([r["text"] for r in rows])
    clf.build()
    S = X @ clf.prototypes_.T
    T = np.array([[lb in r["labels"] for lb in ge_labels] for r in rows], dtype=np.float64)
    pairs.append((S, T))

    # temperature: each set contributes equally (rows are already equal in number)
    temps = [fit_temperature(s, y) for s, y in zip(sims_all, y_all)]
    temperature = float(np.exp(np.mean(np.log(temps))))
    print("per-set temperatures", [round(t, 4) for t in temps], "-> geometric mean", round(temperature, 4))

    # tag: Platt scaling on [cosine, log softmax(cosine / T)] of one-vs-rest pairs,
    # each set weighted equally by resampling to the same number of pairs
    rng = np.random.default_rng(0)
    n_pairs = min(s.size for s, _ in pairs)
    ff, tt = [], []
    for S, T in pairs:
        F = np.stack([S, log_softmax(S / temperature)], axis=-1).reshape(-1, 2)
        idx = rng.choice(len(F), n_pairs, replace=False)
        ff.append(F[idx])
        tt.append(T.ravel()[idx])
    tag_a, tag_c, tag_b = fit_platt(np.concatenate(ff), np.concatenate(tt))
    print(f"tag Platt: a={tag_a:.3f} c={tag_c:.3f} b={tag_b:.3f}")

    # prior weight and head C for few-shot: train on N-shot from the pool minus held rows, test on
    # held rows; fitted separately for a described prior and a names-only prior (weaker, so it
    # should give way to examples sooner)
    from classer_local.calibration import SoftmaxHead

    ks, Cs = (1.0, 2.0, 4.0, 8.0, 16.0), (1.0, 4.0, 10.0, 30.0)
    grid = {(kind, k, C): [] for kind in ("described", "names") for k in ks for C in Cs}
    blends: dict[tuple, list] = {}  # (k, C) -> [(blended log-probs, y)] for the few-shot temperature
    for name, ds, clf, X, y, held in fewshot_sets:
        held_texts = {r["text"] for r in held}
        rest = [r for r in ds["pool"] if r["text"] not in held_texts]
        bare = cl.Classifier(clf.labels, **pick, glossary=False)
        bare.build()
        priors = {"described": log_softmax(X @ clf.prototypes_.T / temperature),
                  "names": log_softmax(X @ bare.prototypes_.T / temperature)}
        for shots in (2, 8, 32):
            Xs, ys = sample_few_shot(rest, ds["labels"], shots, 0)
            Xe = clf.embed_texts(Xs)
            yi = np.array([ds["labels"].index(v) for v in ys])
            for C in Cs:
                hl = SoftmaxHead(len(ds["labels"]), C=C).fit(Xe, yi).predict_log_proba(X)
                for k in ks:
                    w = shots / (shots + k)
                    for kind, prior in priors.items():
                        blend = (1 - w) * prior + w * hl
                        grid[(kind, k, C)].append(float((blend.argmax(1) == y).mean()))
                        if kind == "described":
                            blends.setdefault((k, C), []).append((blend, y))
    ranked = sorted(((key, np.mean(v)) for key, v in grid.items() if key[0] == "described"), key=lambda kv: -kv[1])
    for (_, k, C), acc in ranked[:5]:
        print(f"described prior: prior_weight={k} head_C={C}: mean acc {acc:.4f}")
    (_, prior_weight, head_C), _ = ranked[0]
    names_ranked = sorted(((k, np.mean(grid[("names", k, head_C)])) for k in ks), key=lambda kv: -kv[1])
    print("names-only prior:", [(k, round(a, 4)) for k, a in names_ranked])
    prior_weight_names = names_ranked[0][0]
    # The blend of two log-probabilities is under-confident: one temperature over it, by NLL
    # across sets and shot counts (each set weighted equally through its mean NLL).
    chosen = blends[(prior_weight, head_C)]

    def mean_nll(log_t: float) -> float:
        return float(np.mean([-log_softmax(b / np.exp(log_t))[np.arange(len(yy)), yy].mean() for b, yy in chosen]))

    from scipy.optimize import minimize_scalar

    few_shot_temperature = float(np.exp(minimize_scalar(mean_nll, bounds=(-3, 3), method="bounded").x))
    print(f"few-shot temperature {few_shot_temperature:.3f}: NLL {mean_nll(0.0):.3f} -> "
          f"{mean_nll(np.log(few_shot_temperature)):.3f}")
    fitted = {"temperature": round(temperature, 5), "tag_a": round(tag_a, 4), "tag_c": round(tag_c, 4),
              "tag_b": round(tag_b, 4),
              "prior_weight": prior_weight, "prior_weight_names": prior_weight_names, "head_C": head_C,
              "few_shot_temperature": round(few_shot_temperature, 4)}
    print("fitted", fitted)
    if args.write:
        write_calibration(cl.Classifier(["x"], **pick).spec_.name, fitted)
    return fitted


def write_calibration(model: str, values: dict) -> None:
    path = REPO / "models.toml"
    text = path.read_text()
    header = f"[models.{model}.calibration]"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end
    body = "".join(f"\n{k} = {v}" for k, v in values.items()) + "\n"
    rest = text[end:].lstrip("\n")
    path.write_text(text[:start] + body + ("\n" + rest if rest else ""))
    print(f"wrote {header} to {path}")


if __name__ == "__main__":
    main()
