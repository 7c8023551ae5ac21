"""Zero-shot and few-shot accuracy on AG News, SST-2, Emotion, TREC and Banking77.

    python benchmarks/accuracy.py --data ../shared/evaldata [--shots 8 --seeds 5] [--priority fast]

Modes: ``names`` (bare label names), ``described`` (names + descriptions + text_type from
benchmarks/descriptions.json, written from each dataset's documentation), and ``N-shot``
(N examples per label, 5 seeds, SetFit's protocol) on top of the descriptions.
Prints accuracy and macro-F1 per set and the fit time of the few-shot head.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, TEXT_SETS, Timer, descriptions, load_set, sample_few_shot  # noqa: E402

import classer_local as cl  # noqa: E402
from classer_local.evaluate import accuracy, macro_f1  # noqa: E402


def display_labels(labels: list[str], desc: dict) -> list[str]:
    """The names a user would type for ``labels`` (``desc``: one set's entry of descriptions.json)."""
    names = desc.get("names", {})
    return [names.get(lb, lb) for lb in labels]


def shown_labels(name: str, labels: list[str]) -> tuple[list[str], dict[str, str], dict[str, str], str | None]:
    """How set ``name``'s labels are given to classer_local: the shown names, true -> shown, the
    descriptions by shown name, and the text_type (benchmarks/descriptions.json)."""
    desc = descriptions().get(name, {})
    shown = display_labels(labels, desc)
    to_shown = dict(zip(labels, shown))
    return shown, to_shown, {to_shown[k]: v for k, v in desc.get("descriptions", {}).items()}, desc.get("text_type")


def evaluate(clf: cl.Classifier, X: np.ndarray, y: list[str], shown_to_true: dict[str, str], labels: list[str]) -> tuple[float, float]:
    proba = clf.proba_from_embeddings(X)
    pred = [shown_to_true[clf.labels_[i]] for i in np.argmax(proba, axis=1)]
    return accuracy(y, pred), macro_f1(y, pred, labels)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", default=",".join(TEXT_SETS))
    ap.add_argument("--shots", default="8", help="comma-separated N per label; 0 to skip few-shot")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--priority", default="standard")
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    desc_all = descriptions()
    rows = []
    out: dict = {}
    for name in args.sets.split(","):
        ds = load_set(args.data, name)
        desc = desc_all.get(name, {})
        labels = ds["labels"]
        shown = display_labels(labels, desc)
        shown_to_true = dict(zip(shown, labels))
        true_to_shown = dict(zip(labels, shown))
        texts = [r["text"] for r in ds["eval"]]
        y = [r["label"] for r in ds["eval"]]
        base = cl.Classifier(shown, priority=args.priority, model=args.model, glossary=False)  # bare names
        with Timer() as t:
            X = base.embedder.encode(texts)
        res = {"n": len(texts), "encode_texts_per_s": len(texts) / t.seconds}
        res["names"] = evaluate(base, X, y, shown_to_true, labels)
        descs = {true_to_shown[k]: v for k, v in desc.get("descriptions", {}).items()}
        described = cl.Classifier(shown, descriptions=descs, text_type=desc.get("text_type"),
                                  priority=args.priority, model=args.model)
        res["described"] = evaluate(described, X, y, shown_to_true, labels)
        for shots in [int(s) for s in args.shots.split(",") if int(s) > 0]:
            accs, f1s, fits, walls = [], [], [], []
            for seed in range(args.seeds):
                Xs, ys = sample_few_shot(ds["pool"], labels, shots, seed)
                clf = cl.Classifier(shown, descriptions=descs, text_type=desc.get("text_type"),
                                    priority=args.priority, model=args.model)
                clf.embedder.encode(Xs[:1])  # model loaded before timing
                with Timer() as t:
                    clf.fit(Xs, [true_to_shown[v] for v in ys])
                fits.append(getattr(clf, "fit_seconds_", t.seconds))
                walls.append(t.seconds)
                a, f = evaluate(clf, X, y, shown_to_true, labels)
                accs.append(a)
                f1s.append(f)
            res[f"{shots}-shot"] = (float(np.mean(accs)), float(np.mean(f1s)), float(np.std(accs)),
                                    float(np.median(fits)), float(np.median(walls)))
        out[name] = res
        line = f"{name:10s} n={len(texts):5d}  names acc {res['names'][0]:.3f} F1 {res['names'][1]:.3f} | " \
               f"described acc {res['described'][0]:.3f} F1 {res['described'][1]:.3f}"
        for k, v in res.items():
            if k.endswith("-shot"):
                line += f" | {k} acc {v[0]:.3f}±{v[2]:.3f} F1 {v[1]:.3f} head fit {v[3] * 1000:.0f} ms (with encoding {v[4]:.2f} s)"
        print(line, flush=True)
        rows.append(line)
    return out


if __name__ == "__main__":
    main()
