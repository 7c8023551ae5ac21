"""Opt-in tuning (``Classifier.fit(X, y, tune=True)``) against frozen classer_local and SetFit.

    python benchmarks/tune.py --data ../shared/evaldata [--sets trec,sst2] [--shots 8] [--seeds 1]
        [--no-setfit] [--eval-max 1000] [--setfit-from benchmarks/results/tune-setfit.json]

Same N-shot rows for every method (``common.sample_few_shot``, seeds 0..k-1), names +
descriptions from benchmarks/descriptions.json as in the accuracy benchmarks. Reports accuracy,
the tuning / training time, the delta size, and writes ``benchmarks/results/tune.json`` (after
every set, so a run cut short keeps the sets it finished). SetFit runs its own protocol (1 epoch,
20 pair iterations, batch 16) on the packaged MiniLM; ``--setfit-from`` reuses the SetFit runs of
an earlier ``tune.json`` (same sets, shots and rows) for the seeds it has and trains the others.
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
from peers import setfit_run, top1  # noqa: E402

import classer_local as cl  # noqa: E402


def run_set(data: Path, name: str, shots: int, seeds: int, setfit: bool, eval_max: int | None,
            saved_setfit: dict[str, Any] | None = None) -> dict[str, Any]:
    """``saved_setfit``: this set's result in an earlier run (``--setfit-from``), whose SetFit runs are
    reused for the seeds they cover."""
    ds = load_set(data, name)
    labels = ds["labels"]
    shown, to_shown, descs, text_type = shown_labels(name, labels)
    rows = ds["eval"]
    if eval_max and len(rows) > eval_max:
        rows = random.Random(0).sample(rows, eval_max)
    texts, y = [r["text"] for r in rows], [r["label"] for r in rows]
    reuse: list[dict[str, Any]] = []
    if saved_setfit is not None:
        if saved_setfit.get("n_eval") != len(texts):
            raise SystemExit(f"the saved SetFit runs of {name} scored {saved_setfit.get('n_eval')} rows, not {len(texts)}")
        reuse = saved_setfit["setfit"]["runs"]
    runs: dict[str, list[dict[str, float]]] = {"frozen": [], "tuned": [], "setfit": []}
    for seed in range(seeds):
        Xs, ys = sample_few_shot(ds["pool"], labels, shots, seed)
        yshown = [to_shown[v] for v in ys]
        for key, tune in (("frozen", False), ("tuned", True)):
            # embedding cache off: the fit a user meets encodes the examples (an earlier run's vectors would be found)
            clf = cl.Classifier(shown, descriptions=descs, text_type=text_type, cache=False)
            with Timer() as t:
                clf.fit(Xs, yshown, tune=tune)
            proba = clf.proba_from_embeddings(clf.embedder.encode(texts))
            acc = float(top1(proba, labels, y)[2].mean())
            row = {"acc": acc, "fit_s": t.seconds}
            if tune:
                row.update(steps=clf.tuned_.steps, delta_bytes=clf.tuned_.nbytes, tune_s=clf.tuned_.seconds)
            runs[key].append(row)
            print(f"{name:10s} seed {seed} {key:6s} acc {acc:.3f} fit {t.seconds:.1f} s", flush=True)
        if seed < len(reuse):
            runs["setfit"].append(reuse[seed])
            print(f"{name:10s} seed {seed} setfit acc {reuse[seed]['acc']:.3f} (saved run)", flush=True)
        elif setfit:
            r = setfit_run(Xs, ys, texts, seed=seed)
            acc = float(top1(r["proba"], r["classes"], y)[2].mean())
            runs["setfit"].append({"acc": acc, "fit_s": r["fit_s"], "steps": r["steps"]})
            print(f"{name:10s} seed {seed} setfit acc {acc:.3f} train {r['fit_s']:.1f} s", flush=True)
    out: dict[str, Any] = {"n_eval": len(texts), "n_labels": len(labels)}
    for key, rs in runs.items():
        if rs:
            out[key] = {"acc": float(np.mean([r["acc"] for r in rs])), "fit_s": float(np.median([r["fit_s"] for r in rs])),
                        "runs": rs}
    return out


def saved_setfit(saved: dict[str, Any], name: str, source: Path | None) -> dict[str, Any] | None:
    """``name``'s result in a ``--setfit-from`` file, each SetFit run marked with the file it came from."""
    if source is None:
        return None
    old = saved.get(name, {})
    if not old.get("setfit"):
        raise SystemExit(f"{source} has no SetFit runs for {name}")
    return {**old, "setfit": {"runs": [{**r, "from": r.get("from", str(source))} for r in old["setfit"]["runs"]]}}


def write_results(out: Path, res: dict[str, Any], t0: float, load0: float, argv: list[str],
                  partial: bool) -> dict[str, Any]:
    meta = {"machine": machine(), "seconds": time.perf_counter() - t0, "loadavg_start": load0,
            "loadavg_end": os.getloadavg()[0], "argv": argv, "partial": partial}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    return meta


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", default=",".join(TEXT_SETS))
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-setfit", action="store_true")
    ap.add_argument("--setfit-from", type=Path, default=None,
                    help="reuse SetFit's runs from a saved --out of the same sets, shots and rows for the seeds it has "
                         "and train the others (SetFit trains the packaged MiniLM, so its figures do not change with "
                         "classer_local's model)")
    ap.add_argument("--eval-max", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tune.json")
    ap.add_argument("--md", type=Path, default=REPO / "benchmarks" / "TUNE.md")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    saved = json.loads(args.setfit_from.read_text())["results"] if args.setfit_from else {}
    res: dict[str, Any] = {}
    for name in args.sets.split(","):
        res[name] = run_set(args.data, name, args.shots, args.seeds, not args.no_setfit, args.eval_max or None,
                            saved_setfit(saved, name, args.setfit_from))
        write_results(args.out, res, t0, load0, argv, partial=True)
    lines = [f"{args.shots}-shot, {args.seeds} seed(s): accuracy (fit / train seconds, median; classer_local's "
             "`Classifier.fit` with the embedding cache off, so the examples are encoded)", "",
             "| set | frozen | tuned | SetFit | tuned − SetFit (points) | per seed |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        sf = r.get("setfit")
        per_seed = (" / ".join(f"{100 * (t['acc'] - f['acc']):+.1f}" for t, f in zip(r["tuned"]["runs"], sf["runs"]))
                    if sf else "–")
        lines.append(f"| {name} | {r['frozen']['acc']:.3f} ({r['frozen']['fit_s']:.1f} s) | {r['tuned']['acc']:.3f} "
                     f"({r['tuned']['fit_s']:.0f} s) | " + (f"{sf['acc']:.3f} ({sf['fit_s']:.0f} s) | "
                                                            f"{100 * (r['tuned']['acc'] - sf['acc']):+.1f} |"
                                                            if sf else "– | – |") + f" {per_seed} |")
    print("\n" + "\n".join(lines))
    meta = write_results(args.out, res, t0, load0, argv, partial=False)
    print(f"done in {meta['seconds']:.0f} s; load average {load0:.1f} -> {meta['loadavg_end']:.1f}")
    args.md.write_text(
        "# Opt-in tuning against frozen classer_local and SetFit\n\n"
        "<!-- Generated by benchmarks/tune.py. Do not edit by hand. -->\n\n"
        f"- **Command**: `python benchmarks/tune.py {' '.join(argv)}`\n"
        f"- **Machine**: {meta['machine']}; load average {load0:.1f} at the start, {meta['loadavg_end']:.1f} at the end "
        "(other work was running: times are upper bounds)\n"
        + (f"- **SetFit**: the runs `{args.setfit_from}` has are reused (same sets, shots, seeds and rows; SetFit "
           "trains the packaged MiniLM, whatever classer_local's default model is), the other seeds trained in this run; "
           "`results/tune.json` keeps them all, each reused run marked `from`\n" if args.setfit_from else "")
        + "\n" + "\n".join(lines) + "\n")
    return res


if __name__ == "__main__":
    main()
