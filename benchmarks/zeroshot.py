"""Zero-shot accuracy and confidence on the broad unseen benchmark and the five dev sets.

    python benchmarks/zeroshot.py --data ../shared/evaldata --broad ../shared/trainingdata/eval \
        --models all-minilm-l6-v2,classer-minilm-labelmatch [--rows 500] [--adapt]

For every model (same run, same rows): the 22 ``eval/`` sets (at most ``--rows`` rows each,
``random.Random(0).sample``, names only; names + descriptions where a set ships them) and the
five dev sets (names only, and names + descriptions + text_type from benchmarks/descriptions.json).
Regime ``glossary``: the names as typed with the library's default ``glossary=True`` (labels the
built-in glossary knows get its description; ``names`` and ``described`` turn it off, so they stay
the bare-name and the given-description figures).
Per set and mean: accuracy; with ``--adapt`` also with batch adaptation (``classer_local.adapt``)
over batches of ``--adapt-batch`` texts. Confidence: share of answers above 0.9 and their accuracy,
per regime, and a reliability diagram (``--plot``). Figures go to stdout and ``--out`` (JSON).
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
from common import DEFAULT_DATA, TEXT_SETS, descriptions, load_set, read_jsonl  # noqa: E402

import classer_local as cl  # noqa: E402
from classer_local.calibration import expected_calibration_error  # noqa: E402

DEFAULT_BROAD = DEFAULT_DATA.parent / "trainingdata" / "eval"


def broad_sets(folder: Path, rows: int) -> list[dict[str, Any]]:
    out = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        data = read_jsonl(d / "data.jsonl")
        if len(data) > rows:
            data = random.Random(0).sample(data, rows)
        labels = json.loads((d / "labels.json").read_text())
        desc_file = d / "descriptions.json"
        desc = json.loads(desc_file.read_text()) if desc_file.exists() else {}
        gold = [set(r["labels"]) if "labels" in r else {r["label"]} for r in data]
        out.append({"name": d.name, "group": "eval", "labels": labels, "texts": [r["text"] for r in data],
                    "gold": gold, "descriptions": {k: v for k, v in desc.items() if k in labels}, "text_type": None})
    return out


def dev_sets(data: Path) -> list[dict[str, Any]]:
    desc_all = descriptions()
    out = []
    for name in TEXT_SETS:
        ds = load_set(data, name)
        d = desc_all.get(name, {})
        names = d.get("names", {})
        shown = [names.get(lb, lb) for lb in ds["labels"]]
        to_shown = dict(zip(ds["labels"], shown))
        out.append({"name": name, "group": "dev", "labels": shown, "texts": [r["text"] for r in ds["eval"]],
                    "gold": [{to_shown[r["label"]]} for r in ds["eval"]],
                    "descriptions": {to_shown.get(k, k): v for k, v in d.get("descriptions", {}).items()},
                    "text_type": d.get("text_type")})
    return out


def score(clf: cl.Classifier, X: np.ndarray, gold: list[set[str]], adapt_batch: int = 0) -> dict[str, Any]:
    if adapt_batch:
        parts = [clf.proba_from_embeddings(X[i : i + adapt_batch], adapt=True) for i in range(0, len(X), adapt_batch)]
        P = np.concatenate(parts)
    else:
        P = clf.proba_from_embeddings(X)
    pred = [clf.labels[i] for i in P.argmax(1)]
    conf = P.max(1)
    right = np.array([p in g for p, g in zip(pred, gold)], dtype=float)
    hi = conf > 0.9
    return {"acc": float(right.mean()), "n": len(gold), "conf": conf.tolist(), "right": right.tolist(),
            "hi_share": float(hi.mean()), "hi_acc": float(right[hi].mean()) if hi.any() else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--broad", type=Path, default=DEFAULT_BROAD)
    ap.add_argument("--models", default="all-minilm-l6-v2")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--adapt", action="store_true")
    ap.add_argument("--adapt-batch", type=int, default=500)
    ap.add_argument("--sets", default="", help="only these set names (comma-separated)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "zeroshot.json")
    ap.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "plots" / "zeroshot.png")
    ap.add_argument("--md", type=Path, default=Path(__file__).resolve().parent / "ZEROSHOT.md",
                    help="the markdown report (per set, means, confidence, adaptation)")
    ap.add_argument("--from-json", type=Path, default=None, help="only rewrite --md from a saved --out")
    a = ap.parse_args(argv)
    if a.from_json:
        saved = json.loads(a.from_json.read_text())
        a.models = ",".join(saved["results"])
        write_markdown(a, saved["results"], saved["summary"])
        return saved["summary"]
    sets = broad_sets(a.broad, a.rows) + dev_sets(a.data)
    if a.sets:
        keep = set(a.sets.split(","))
        sets = [s for s in sets if s["name"] in keep]
    print(f"load average {os.getloadavg()}, {len(sets)} sets", flush=True)
    results: dict[str, Any] = {}
    for model in a.models.split(","):
        t0 = time.perf_counter()
        rows: dict[str, Any] = {}
        for s in sets:
            base = cl.Classifier(s["labels"], model=model, glossary=False)
            X = base.embedder.encode(s["texts"])
            r = {"names": score(base, X, s["gold"])}
            if a.adapt:
                r["names_adapt"] = score(base, X, s["gold"], a.adapt_batch)
            typed = cl.Classifier(s["labels"], model=model)  # the default: glossary on
            r["glossary"] = score(typed, X, s["gold"]) if typed.descriptions_ else dict(r["names"])
            r["glossary"]["covered"] = len(typed.descriptions_)
            if s["descriptions"]:
                desc = cl.Classifier(s["labels"], model=model, descriptions=s["descriptions"], text_type=s["text_type"],
                                     glossary=False)
                r["described"] = score(desc, X, s["gold"])
                if a.adapt:
                    r["described_adapt"] = score(desc, X, s["gold"], a.adapt_batch)
            rows[s["name"]] = {"group": s["group"], **r}
            print(f"{model:28s} {s['name']:34s} " + " ".join(f"{k}={v['acc']:.3f}" for k, v in r.items()), flush=True)
        results[model] = {"sets": rows, "seconds": round(time.perf_counter() - t0, 1)}
    summary = summarize(results)
    print_summary(summary)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    slim = {m: {"seconds": r["seconds"], "sets": {n: {g: v if not isinstance(v, dict) else
                                                       {k: x for k, x in v.items() if k not in ("conf", "right")}
                                                       for g, v in row.items()} for n, row in r["sets"].items()}}
            for m, r in results.items()}
    a.out.write_text(json.dumps({"summary": summary, "results": slim, "load_average": os.getloadavg()}, indent=1))
    plot(results, a.plot)
    write_markdown(a, results, summary)
    return summary


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model, r in results.items():
        m: dict[str, Any] = {}
        for group in ("eval", "dev"):
            rows = {n: v for n, v in r["sets"].items() if v["group"] == group}
            for regime in ("names", "glossary", "names_adapt", "described", "described_adapt"):
                accs = [v[regime]["acc"] for v in rows.values() if regime in v]
                if not accs:
                    continue
                conf = np.concatenate([v[regime]["conf"] for v in rows.values() if regime in v])
                right = np.concatenate([v[regime]["right"] for v in rows.values() if regime in v])
                hi = conf > 0.9
                m[f"{group}/{regime}"] = {
                    "mean_acc": round(float(np.mean(accs)), 4), "sets": len(accs),
                    "hi_share": round(float(hi.mean()), 4),
                    "hi_acc": round(float(right[hi].mean()), 4) if hi.any() else None,
                    "ece": round(expected_calibration_error(conf, right), 4)}
        out[model] = m
    return out


def print_summary(summary: dict[str, Any]) -> None:
    print("\nmodel | group/regime | sets | mean acc | answers > 0.9 | right when > 0.9 | ECE")
    for model, m in summary.items():
        for k, v in m.items():
            hi = "-" if v["hi_acc"] is None else f"{v['hi_acc']:.3f}"
            print(f"{model} | {k} | {v['sets']} | {v['mean_acc']:.3f} | {v['hi_share']:.3f} | {hi} | {v['ece']:.3f}")


def write_markdown(a: argparse.Namespace, results: dict[str, Any], summary: dict[str, Any]) -> None:
    models = list(results)
    lines = ["# Zero-shot: broad unseen benchmark and dev sets", "",
             "<!-- Generated by benchmarks/zeroshot.py. Do not edit by hand: rerun the command below. -->", "",
             f"- **Command**: `python benchmarks/zeroshot.py --models {','.join(models)}"
             f"{' --adapt' if a.adapt else ''} --rows {a.rows}`",
             f"- **Date**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 CPU cores shared with other work)",
             "- eval/: 22 sets of `../shared/trainingdata/eval` (never trained or calibrated on), at most "
             f"{a.rows} rows each (`random.Random(0).sample`); dev: the five test sets of `../shared/evaldata`.",
             "- Regimes: `names` (bare label names, glossary off), `glossary` (the names as typed with the default "
             "built-in glossary on: labels it knows get its description), `described` (names + the set's descriptions, "
             "glossary off, where the set has them); "
             "`_adapt`: batch adaptation over batches of "
             f"{a.adapt_batch} texts (`classer_local.adapt`, with its guard).", "",
             "## Means", "", "| model | group/regime | sets | mean accuracy | answers > 0.9 | right when > 0.9 | ECE |",
             "|---|---|---|---|---|---|---|"]
    for model, m in summary.items():
        for k, v in m.items():
            hi = "-" if v["hi_acc"] is None else f"{v['hi_acc']:.3f}"
            lines.append(f"| {model} | {k} | {v['sets']} | {v['mean_acc']:.3f} | {v['hi_share']:.3f} | {hi} | {v['ece']:.3f} |")
    regimes = ["names", "glossary", "names_adapt", "described", "described_adapt"]
    lines += ["", "## Per set (accuracy)", "", "| set | group | " + " | ".join(
        f"{m} {r}" for m in models for r in regimes) + " |", "|---|---|" + "---|" * (len(models) * len(regimes))]
    for name, row in next(iter(results.values()))["sets"].items():
        cells = []
        for m in models:
            r = results[m]["sets"][name]
            cells += [f"{r[g]['acc']:.3f}" if g in r else "" for g in regimes]
        lines.append(f"| {name} | {row['group']} | " + " | ".join(cells) + " |")
    covered = {n: r.get("glossary", {}).get("covered", 0) for n, r in next(iter(results.values()))["sets"].items()}
    lines += ["", f"Glossary coverage (labels given a built-in description, per set): "
              + ", ".join(f"{n} {c}" for n, c in covered.items() if c) + "."]
    for m in models:
        if all("glossary" in r for r in results[m]["sets"].values()):
            gains = {n: r["glossary"]["acc"] - r["names"]["acc"] for n, r in results[m]["sets"].items()}
            worst = min(gains, key=gains.get)
            lines.append(f"Glossary ({m}): mean {np.mean(list(gains.values())) * 100:+.1f} points over names; "
                         f"{sum(g > 0 for g in gains.values())} up, {sum(g < 0 for g in gains.values())} down; "
                         f"worst {worst} {gains[worst] * 100:+.1f}; best {max(gains, key=gains.get)} "
                         f"{max(gains.values()) * 100:+.1f}.")
    if len(models) == 2:
        old, new = models
        for regime in ("names", "glossary"):
            if not all(regime in r for r in results[new]["sets"].values()):
                continue
            diffs = {n: results[new]["sets"][n][regime]["acc"] - results[old]["sets"][n]["names"]["acc"]
                     for n in results[old]["sets"]}
            worst = min(diffs, key=diffs.get)
            lines += ["", f"{new} {regime} vs {old} names: mean {np.mean(list(diffs.values())) * 100:+.1f} points over "
                      f"{len(diffs)} sets, {sum(d > 0 for d in diffs.values())} up, {sum(d < 0 for d in diffs.values())} "
                      f"down, {sum(d < -0.05 for d in diffs.values())} more than 5 points down; worst {worst} "
                      f"{diffs[worst] * 100:+.1f}."]
    if a.adapt:
        for m in models:
            gains = {n: r["names_adapt"]["acc"] - r["names"]["acc"] for n, r in results[m]["sets"].items()}
            worst = min(gains, key=gains.get)
            lines.append(f"Adaptation ({m}, names): mean {np.mean(list(gains.values())) * 100:+.1f} points; "
                         f"worst {worst} {gains[worst] * 100:+.1f}; best {max(gains, key=gains.get)} "
                         f"{max(gains.values()) * 100:+.1f}.")
    lines += ["", "![zero-shot per set and reliability](plots/zeroshot.png)", ""]
    a.md.write_text("\n".join(lines))


def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = list(results)
    names = list(next(iter(results.values()))["sets"])
    fig, axes = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 1]})
    w = 0.8 / len(models)
    for k, model in enumerate(models):
        accs = [results[model]["sets"][n]["names"]["acc"] for n in names]
        axes[0].bar(np.arange(len(names)) + k * w, accs, w, label=model)
    axes[0].set_xticks(np.arange(len(names)) + 0.4 - w / 2, names, rotation=75, fontsize=7)
    axes[0].set_ylabel("accuracy, names only")
    axes[0].legend()
    bins = np.linspace(0, 1, 11)
    for model in models:
        conf = np.concatenate([v["names"]["conf"] for v in results[model]["sets"].values()])
        right = np.concatenate([v["names"]["right"] for v in results[model]["sets"].values()])
        idx = np.clip(np.digitize(conf, bins[1:-1]), 0, 9)
        xs = [conf[idx == b].mean() for b in range(10) if (idx == b).any()]
        ys = [right[idx == b].mean() for b in range(10) if (idx == b).any()]
        axes[1].plot(xs, ys, "o-", label=model)
    axes[1].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[1].set_xlabel("confidence (names only)")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("reliability")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
