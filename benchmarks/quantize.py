"""The standard model against its int8 copy (``quantize = "int8"`` in models.toml), with
``--bf16`` its float32 run against its bfloat16 run (``cpu_dtype = "bfloat16"``), or with
``--onnx`` its float32 run in torch against the same in ONNX Runtime (``cpu_runtime``).

    python benchmarks/quantize.py --data ../shared/evaldata --broad ../shared/trainingdata/eval \
        [--float minilm-l6-labelmatch] [--int8 minilm-l6-labelmatch-int8] [--rows 500] [--reps 3]
    python benchmarks/quantize.py --bf16 ...    # writes PRECISION.md and results/precision.json
    python benchmarks/quantize.py --onnx ...    # writes RUNTIME.md and results/runtime.json

``--bf16`` adds a float32 twin of ``--float`` (``like`` it, ``cpu_dtype = "float32"``) to a
scratch ``CLASSER_HOME``'s models.json and compares the two; on a CPU without native bfloat16
both run float32 and the report says so. ``--onnx`` adds two float32 twins, one with
``cpu_runtime = "torch"``, and also times a cold start: a new process's first ``classify``
(interpreter start included), the two runtimes alternating, the graph already exported.

Same run, same texts, the two models' calls interleaved:

* speed: ``classify_batch`` texts/s (1,000 AG News texts a call, cache off), warm single
  ``classify`` p50, and an 8-shot Banking77 ``fit`` (616 examples, 77 labels);
* accuracy: names only on the 22 ``eval/`` sets (at most ``--rows`` rows each) and the five dev
  sets, names + descriptions on the dev sets (``zeroshot.py``'s rows and scoring), with the share
  of answers the int8 model gives differently and the sets where it loses most.

Figures go to stdout, ``QUANTIZE.md`` and ``results/quantize.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, load_set, sample_few_shot  # noqa: E402
from speed import AG_LABELS, eval_texts  # noqa: E402
from zeroshot import DEFAULT_BROAD, broad_sets, dev_sets, score  # noqa: E402

import classer_local as cl  # noqa: E402

HERE = Path(__file__).resolve().parent


def speed(models: list[str], data: Path, reps: int) -> dict[str, dict[str, float]]:
    texts = eval_texts(data)[:1000]
    bank = load_set(data, "banking77")
    shots = sample_few_shot(bank["pool"], bank["labels"], 8, 0)
    rates: dict[str, list[float]] = {m: [] for m in models}
    single: dict[str, list[float]] = {m: [] for m in models}
    fits: dict[str, list[float]] = {m: [] for m in models}
    for m in models:  # load and warm
        cl.classify_batch(texts=texts[:64], labels=AG_LABELS, model=m, cache=False)
    for _ in range(reps):
        for m in models:
            t = time.perf_counter()
            cl.classify_batch(texts=texts, labels=AG_LABELS, model=m, cache=False)
            rates[m].append(len(texts) / (time.perf_counter() - t))
            for text in texts[:30]:
                t = time.perf_counter()
                cl.classify(text, labels=AG_LABELS, model=m, cache=False)
                single[m].append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            cl.Classifier(bank["labels"], model=m, cache=False).fit(*shots)
            fits[m].append(time.perf_counter() - t)
    return {m: {"classify_batch_texts_per_s": float(np.median(rates[m])), "single_p50_ms": float(np.median(single[m])),
                "fit_8shot_banking77_s": float(np.median(fits[m]))} for m in models}


def accuracy(models: list[str], sets: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in sets:
        row: dict[str, Any] = {"group": s["group"]}
        for m in models:
            X = cl.Classifier(s["labels"], model=m).embedder.encode(s["texts"])
            row[m] = {"names": score(cl.Classifier(s["labels"], model=m, glossary=False), X, s["gold"])}
            if s["group"] == "dev" and s["descriptions"]:
                desc = cl.Classifier(s["labels"], model=m, descriptions=s["descriptions"], text_type=s["text_type"],
                                     glossary=False)
                row[m]["described"] = score(desc, X, s["gold"])
        out[s["name"]] = row
        print(f"{s['name']:34s} " + " ".join(f"{m}={row[m]['names']['acc']:.3f}" for m in models), flush=True)
    return out


def summarize(models: list[str], per_set: dict[str, Any]) -> dict[str, Any]:
    f, q = models
    out: dict[str, Any] = {}
    for group, regime in (("eval", "names"), ("dev", "names"), ("dev", "described")):
        rows = {n: r for n, r in per_set.items() if r["group"] == group and regime in r[f]}
        if not rows:  # --sets left none of this group
            continue
        acc = {m: float(np.mean([r[m][regime]["acc"] for r in rows.values()])) for m in models}
        conf = {m: np.concatenate([r[m][regime]["conf"] for r in rows.values()]) for m in models}
        right = {m: np.concatenate([r[m][regime]["right"] for r in rows.values()]) for m in models}
        hi = {m: float(right[m][conf[m] > 0.9].mean()) if (conf[m] > 0.9).any() else None for m in models}
        diffs = sorted((r[q][regime]["acc"] - r[f][regime]["acc"], n) for n, r in rows.items())
        changed = np.mean([a != b for r in rows.values()
                           for a, b in zip(r[f][regime]["right"], r[q][regime]["right"])])
        out[f"{group}/{regime}"] = {"sets": len(rows), "acc": acc, "right_above_0.9": hi,
                                    "right_or_wrong_changed": float(changed), "worst": diffs[:3]}
    return out


IMAGE_TWIN = "efficientnet-lite0-float32"


def batch_invariance(models: list[str], data: Path, n: int = 300, alone: int = 150) -> dict[str, dict[str, float]]:
    """How far a text's confidences move between a call of its own and a batch of ``n`` texts:
    the largest and 99th-percentile absolute change of any label's confidence, and the answers
    that change, over ``alone`` Banking77 test texts, per model."""
    texts = [r["text"] for r in load_set(data, "banking77")["eval"][:n]]
    labels = ["account access", "payments", "delivery", "product question", "other"]
    out: dict[str, dict[str, float]] = {}
    for m in models:
        batch = cl.classify_batch(texts=texts, labels=labels, model=m, cache=False)
        single = [cl.classify(t, labels=labels, model=m, cache=False) for t in texts[:alone]]
        moved = [max(abs(a.scores[k] - b.scores[k]) for k in labels) for a, b in zip(batch, single)]
        out[m] = {"max": float(max(moved)), "p99": float(np.percentile(moved, 99)),
                  "labels_changed": int(sum(a.label != b.label for a, b in zip(batch, single))), "texts": alone}
    return out


def image_speed(data: Path, reps: int, n: int = 128) -> dict[str, Any]:
    """The image model in float32 against bfloat16: images/s (calls alternating, medians), the
    cosine of their features and how often their top ImageNet class agrees, on CIFAR-10 test images."""
    from PIL import Image

    from classer_local import registry
    from classer_local.backends import load_image, load_text

    rows = [json.loads(line) for line in (data / "cifar10" / "test.jsonl").read_text().splitlines()[:n]]
    images = [Image.open(data / "cifar10" / r["image"]).convert("RGB") for r in rows]
    encoders = {"float32": load_image(registry.get(IMAGE_TWIN), "cpu"),
                "bfloat16": load_image(registry.get("efficientnet-lite0"), "cpu")}
    rates: dict[str, list[float]] = {k: [] for k in encoders}
    out: dict[str, Any] = {}
    for k, enc in encoders.items():
        out[k] = enc.encode_with_probs(images)  # warm, and the vectors compared below
    for _ in range(reps):
        for k, enc in encoders.items():
            t = time.perf_counter()
            enc.encode_with_probs(images)
            rates[k].append(len(images) / (time.perf_counter() - t))
    (fa, pa), (fb, pb) = out["float32"], out["bfloat16"]
    cos = (fa * fb).sum(1)
    from vision import cifar  # benchmarks/vision.py: CIFAR-10 zero-shot (ConSE) and 10-shot on all test images

    text = load_text(registry.get("standard"), "cpu")
    runs = {k: cifar(data, text, registry.get(name), "cpu", None)
            for k, name in (("float32", IMAGE_TWIN), ("bfloat16", "efficientnet-lite0"))}
    return {"images": len(images), "ran_in": {k: "bfloat16" if e.bf16 else "float32" for k, e in encoders.items()},
            "cifar10_accuracy": {k: {"zero_shot": r["zero_shot"]["acc"], "few_shot": r["few_shot"]["acc"],
                                     "shots": r["shots"]} for k, r in runs.items()},
            "images_per_s": {k: float(np.median(v)) for k, v in rates.items()},
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "top1_imagenet_agree": float(np.mean(pa.argmax(1) == pb.argmax(1)))}


def twins(entries: dict[str, dict[str, Any]]) -> list[str]:
    """User entries (``like`` others, a scratch CLASSER_HOME, never the user's); their names."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="classer_precision_"))
    (home / "models.json").write_text(json.dumps({"models": entries}))
    os.environ["CLASSER_HOME"] = str(home)
    return list(entries)


def float32_twin(name: str) -> str:
    """A user entry running ``name`` in float32 (and the image model's float32 twin)."""
    return twins({f"{name}-float32": {"like": name, "cpu_dtype": "float32"},
                  IMAGE_TWIN: {"like": "efficientnet-lite0", "cpu_dtype": "float32"}})[0]


def runtime_twins(name: str) -> list[str]:
    """``name`` in float32 on torch, and in float32 as it runs by default (ONNX Runtime where installed)."""
    return twins({f"{name}-torch": {"like": name, "cpu_dtype": "float32", "cpu_runtime": "torch"},
                  f"{name}-fp32": {"like": name, "cpu_dtype": "float32"}})


def cold_start(models: list[str], reps: int) -> dict[str, dict[str, float]]:
    """Seconds from starting a Python process to its first ``classify`` answer (cache off), per
    model, the models alternating; median and the runs. Also whether torch was imported."""
    import subprocess

    code = ("import sys, time; t0 = time.perf_counter(); import classer_local as cl; "
            "cl.classify('I cannot sign in to my account', labels=['billing', 'technical', 'sales'], model=sys.argv[1], "
            "cache=False); print(time.perf_counter() - t0, 'torch' in sys.modules)")
    runs: dict[str, list[float]] = {m: [] for m in models}
    torch_loaded: dict[str, bool] = {}
    for _ in range(reps):
        for m in models:
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code, m], capture_output=True, text=True, check=True)
            runs[m].append(time.perf_counter() - t)
            torch_loaded[m] = out.stdout.split()[-1] == "True"
    return {m: {"median_s": float(np.median(v)), "runs_s": v, "torch_imported": torch_loaded[m]} for m, v in runs.items()}


def precisions(models: list[str]) -> list[str]:
    """What each model ran in on this machine (and in which runtime, where ONNX Runtime ran it)."""
    from classer_local import registry
    from classer_local.backends import load_text

    out = []
    for m in models:
        emb = load_text(registry.get(m), "cpu")
        kind = "int8" if getattr(emb, "quantized", False) else "bfloat16" if getattr(emb, "bf16", False) else "float32"
        onnx = getattr(emb, "onnx_encoder", lambda: None)()
        out.append(f"{kind} {'ONNX Runtime' if onnx is not None else 'torch'}")
    return out


def write(a: argparse.Namespace, models: list[str], sp: dict[str, Any], summary: dict[str, Any], load: list[float]) -> None:
    f, q = models
    pf, pq = precisions(models)
    if a.onnx:
        title, command = "The standard model in ONNX Runtime against torch (float32 both)", f"--onnx --float {a.flt}"
        about = [f"- `{f}` ran in {pf}, `{q}` in {pq}: the same weights, tokenizer, windows and calibration; the "
                 "exported graph is the whole SentenceTransformer forward (`backends/_onnx.py`)"]
    elif a.bf16:
        from classer_local.backends._precision import native_bf16

        title, command = "The standard model in bfloat16 against float32", f"--bf16 --float {a.flt}"
        about = [f"- **CPU**: native bfloat16 matrix units {'yes' if native_bf16() else 'no (both runs are float32)'}; "
                 f"`{f}` ran in {pf}, `{q}` in {pq}",
                 "- bfloat16: the forward pass under torch's CPU autocast (matrix products read bfloat16 and sum in "
                 "float32; layer norms, softmax, pooling float32: `backends/_precision.py`); same weights, prompts "
                 "and calibration."]
    else:
        title, command = "The standard model in int8", f"--float {f} --int8 {q}"
        about = [f"- `{f}` ran in {pf}, `{q}` in {pq}",
                 "- int8: the transformer's linear layers quantised per output channel, activations per call "
                 "(`backends/sentence_transformers.quantized_copy`); same weights, prompts and calibration."]
    lines = [f"# {title}", "",
             "<!-- Generated by benchmarks/quantize.py. Do not edit by hand: rerun the command below. -->", "",
             f"- **Command**: `python benchmarks/quantize.py {command} --rows {a.rows} --reps {a.reps}`",
             f"- **Date**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
             f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 CPU cores shared with other work); "
             "speed: the two models' calls alternate, medians of the repetitions",
             *about, "", f"| measure | {pf} | {pq} | {pq} / {pf} |", "|---|---|---|---|"]
    for key, label in (("classify_batch_texts_per_s", "classify_batch, AG News texts/s"),
                       ("single_p50_ms", "warm classify p50, ms"),
                       ("fit_8shot_banking77_s", "8-shot Banking77 fit, s")):
        lines.append(f"| {label} | {sp[f][key]:.1f} | {sp[q][key]:.1f} | {sp[q][key] / sp[f][key]:.2f} |")
    cold = sp.get("cold_start")
    if cold:
        runs = " / ".join(", ".join(f"{x:.1f}" for x in cold[m]["runs_s"]) for m in models)
        lines.append(f"| cold start: a new process to its first `classify`, s (runs {runs}; torch imported: "
                     f"{'yes' if cold[f]['torch_imported'] else 'no'} / {'yes' if cold[q]['torch_imported'] else 'no'}) | "
                     f"{cold[f]['median_s']:.2f} | {cold[q]['median_s']:.2f} | {cold[q]['median_s'] / cold[f]['median_s']:.2f} |")
    inv = sp.get("batch_invariance")
    if inv:
        lines.append(f"| a text alone against in a batch of 300: largest confidence change (p99), answers changed "
                     f"({inv[f]['texts']} Banking77 texts, 5 labels) | {inv[f]['max']:.4f} ({inv[f]['p99']:.4f}), "
                     f"{inv[f]['labels_changed']} | {inv[q]['max']:.4f} ({inv[q]['p99']:.4f}), "
                     f"{inv[q]['labels_changed']} | — |")
    img = sp.get("image")
    if img:
        r = img["images_per_s"]
        lines.append(f"| images/s, efficientnet-lite0 ({img['images']} CIFAR-10 images a call; ran in "
                     f"{img['ran_in']['float32']} / {img['ran_in']['bfloat16']}) | {r['float32']:.1f} | "
                     f"{r['bfloat16']:.1f} | {r['bfloat16'] / r['float32']:.2f}; feature cosine min "
                     f"{img['cosine_min']:.4f}, mean {img['cosine_mean']:.5f}; top ImageNet class agrees "
                     f"{img['top1_imagenet_agree'] * 100:.1f}% |")
        for key, label in (("zero_shot", "zero-shot (ConSE)"), ("few_shot", f"{img['cifar10_accuracy']['float32']['shots']}-shot")):
            fa, fb = (img["cifar10_accuracy"][k][key] for k in ("float32", "bfloat16"))
            lines.append(f"| CIFAR-10 {label} accuracy, 1,000 test images (benchmarks/vision.py's run) | {fa:.3f} | "
                         f"{fb:.3f} | {(fb - fa) * 100:+.1f} points |")
    for k, v in summary.items():
        hi = " / ".join("-" if v["right_above_0.9"][m] is None else f"{v['right_above_0.9'][m]:.3f}" for m in models)
        worst = ", ".join(f"{n} {d * 100:+.1f}" for d, n in v["worst"])
        lines.append(f"| {k} mean accuracy ({v['sets']} sets) | {v['acc'][f]:.3f} | {v['acc'][q]:.3f} | "
                     f"{(v['acc'][q] - v['acc'][f]) * 100:+.1f} points; answers right/wrong changed "
                     f"{v['right_or_wrong_changed'] * 100:.1f}%; right above 0.9 {hi}; worst: {worst} |")
    a.md.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--broad", type=Path, default=DEFAULT_BROAD)
    ap.add_argument("--float", dest="flt", default="minilm-l6-labelmatch")
    ap.add_argument("--int8", default="minilm-l6-labelmatch-int8")
    ap.add_argument("--bf16", action="store_true", help="--float in float32 against --float as it runs (bfloat16)")
    ap.add_argument("--onnx", action="store_true", help="--float in float32 on torch against ONNX Runtime")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sets", default="", help="only these set names (comma-separated)")
    ap.add_argument("--out", type=Path, default=None, help="default results/quantize.json (--bf16: precision.json, --onnx: runtime.json)")
    ap.add_argument("--md", type=Path, default=None, help="default QUANTIZE.md (--bf16: PRECISION.md, --onnx: RUNTIME.md)")
    a = ap.parse_args(argv)
    stem = "runtime" if a.onnx else "precision" if a.bf16 else "quantize"
    a.out = a.out or HERE / "results" / f"{stem}.json"
    a.md = a.md or HERE / f"{stem.upper()}.md"
    models = runtime_twins(a.flt) if a.onnx else [float32_twin(a.flt), a.flt] if a.bf16 else [a.flt, a.int8]
    load = list(os.getloadavg())
    sp = speed(models, a.data, a.reps)
    if a.onnx:
        sp["cold_start"] = cold_start(models, a.reps)
        sp["batch_invariance"] = batch_invariance(models, a.data)
    elif a.bf16:
        sp["batch_invariance"] = batch_invariance(models, a.data)
        sp["image"] = image_speed(a.data, a.reps)
    for k, v in sp.items():
        print(k, json.dumps(v), flush=True)
    sets = broad_sets(a.broad, a.rows) + dev_sets(a.data)
    if a.sets:
        sets = [s for s in sets if s["name"] in set(a.sets.split(","))]
    summary = summarize(models, accuracy(models, sets))
    for k, v in summary.items():
        print(k, json.dumps(v), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"speed": sp, "summary": summary, "load_average": [load, list(os.getloadavg())]},
                                indent=1))
    write(a, models, sp, summary, load)
    return {"speed": sp, "summary": summary}


if __name__ == "__main__":
    main()
