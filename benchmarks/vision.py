"""Image and document classification: accuracy and speed of classer_local's visual path.

    python benchmarks/vision.py [--data ../shared/evaldata] [--device cpu] [--limit N]
                                [--only cifar|documents] [--md VISION.md] [--out results/vision.json]
    python benchmarks/vision.py --from-json benchmarks/results/vision.json   # only rewrite --md

* CIFAR-10, 1,000 test images: zero-shot (ConSE through the standard text model) and
  10-shot (train_fewshot.jsonl as image examples); images/s of the zero-shot pass.
* Temperatures for models.toml, fitted on the CIFAR-10 *train* few-shot split only (zero-shot
  on its 100 images; few-shot by 2-fold, 5 shots building prototypes for the other 5).
* The 34 documents of evaldata/documents: zero-shot with the descriptions below (written
  from what each kind of document is, not from the files), text only, pages only, and fused
  through ``Classifier(...).classify(file=...)`` as users get it. Label sets, structure cues,
  other languages and OCR are benchmarks/documents.py's (DOCUMENTS.md).

Writes ``benchmarks/VISION.md`` and ``benchmarks/results/vision.json`` (``--md``, ``--out`` move
them; smoke runs write to a temporary folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))

from common import machine

from classer_local import registry, vision
from classer_local.backends import load_image, load_text
from classer_local.inputs import load_document, load_images

DOC_TEXT_TYPE = "document"
DOC_DESCRIPTIONS = {
    "invoice": "A bill from a seller asking for payment: invoice number, date, line items with quantities and "
               "prices, subtotal, VAT or tax, total amount due and payment details.",
    "resume": "A CV summarising a person's career: contact details, work experience, education, skills and "
              "projects.",
    "scientific paper": "An academic research article: title, authors, abstract, introduction, methods, "
                        "experiments, results, references and citations.",
    "contract": "A legal agreement between parties: terms and conditions, obligations, definitions, "
                "confidentiality, liability, governing law, termination and signatures.",
    "letter": "A letter written to a person or organisation: date, greeting such as Dear, body paragraphs, "
              "closing such as Sincerely, and the sender's name.",
    "form": "A form to fill in: fields, boxes, checkboxes, blanks for names, dates and signatures, "
            "questions and ratings.",
    "financial report": "A company's financial results: revenue, net income, earnings per share, quarterly or "
                        "annual results, balance sheet, cash flow and outlook.",
    "manual": "Instructions on how to use, configure or maintain a product or follow a procedure: steps, "
              "settings, maintenance schedules, chapters and guidance.",
}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_temperature(sims: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising the NLL of the true labels (grid on a log scale)."""
    grid = np.exp(np.linspace(np.log(0.002), np.log(1.0), 200))
    nll = [-log_softmax(sims / t)[np.arange(len(y)), y].mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def nll(sims: np.ndarray, y: np.ndarray, t: float) -> float:
    return float(-log_softmax(sims / t)[np.arange(len(y)), y].mean())


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cifar(data: Path, text, image_spec, device: str, limit: int | None) -> dict[str, Any]:
    root = data / "cifar10"
    labels = json.loads((root / "labels.json").read_text())
    test = read_rows(root / "test.jsonl")
    n_all = len(test)
    if limit:
        test = test[:: max(1, len(test) // limit)][:limit]
    train = read_rows(root / "train_fewshot.jsonl")
    y_test = np.array([labels.index(r["label"]) for r in test])
    y_train = np.array([labels.index(r["label"]) for r in train])
    test_imgs = [load_images(str(root / r["image"]))[0] for r in test]
    train_imgs = [load_images(str(root / r["image"]))[0] for r in train]

    zs = vision.VisualScorer(labels, text_embedder=text, image_spec=image_spec, device=device)
    zs.score([[train_imgs[0]]])  # warm-up
    t0 = time.perf_counter()
    sims, tokens = zs.score([[im] for im in test_imgs])
    dt_zs = time.perf_counter() - t0
    acc_zs = float((sims.argmax(1) == y_test).mean())
    print(f"CIFAR-10 zero-shot (ConSE)  n={len(test)}  accuracy={acc_zs:.3f}  "
          f"images/s={len(test) / dt_zs:.1f}  visual_tokens/image={tokens[0]}", flush=True)

    examples = {lab: [im for im, r in zip(train_imgs, train) if r["label"] == lab] for lab in labels}
    fs = vision.VisualScorer(labels, examples=examples, text_embedder=text, image_spec=image_spec, device=device)
    t0 = time.perf_counter()
    sims_fs, _ = fs.score([[im] for im in test_imgs])
    dt_fs = time.perf_counter() - t0
    acc_fs = float((sims_fs.argmax(1) == y_test).mean())
    shots = min(len(v) for v in examples.values())
    print(f"CIFAR-10 {shots}-shot            n={len(test)}  accuracy={acc_fs:.3f}  images/s={len(test) / dt_fs:.1f}  "
          f"(EXAMPLE_WEIGHT={vision.EXAMPLE_WEIGHT})", flush=True)

    # temperatures, on the train split only
    sims_tr, _ = zs.score([[im] for im in train_imgs])
    t_zs = fit_temperature(sims_tr, y_train)
    folds = [np.arange(len(train)) % 10 < 5, np.arange(len(train)) % 10 >= 5]
    fold_sims, fold_y = [], []
    for build in folds:
        ex = {lab: [im for im, r, b in zip(train_imgs, train, build) if b and r["label"] == lab] for lab in labels}
        sc = vision.VisualScorer(labels, examples=ex, text_embedder=text, image_spec=image_spec, device=device)
        held = [[im] for im, b in zip(train_imgs, build) if not b]
        fold_sims.append(sc.score(held)[0])
        fold_y.append(y_train[~build])
    t_fs = fit_temperature(np.concatenate(fold_sims), np.concatenate(fold_y))
    nll_zs, nll_fs = nll(sims, y_test, zs.temperature), nll(sims_fs, y_test, fs.temperature)
    print(f"fitted on train: temperature={t_zs:.4f}  temperature_few_shot={t_fs:.4f}  "
          f"(models.toml now: {zs.temperature:.4f} / {fs.temperature:.4f})")
    print(f"test NLL at models.toml temperatures: zero-shot {nll_zs:.3f}, {shots}-shot {nll_fs:.3f}", flush=True)

    def per_class(s: np.ndarray) -> dict[str, float]:
        return {lab: float((s.argmax(1)[y_test == i] == i).mean()) for i, lab in enumerate(labels)}

    return {"n_test": len(test), "n_test_all": n_all, "limit": limit, "labels": labels, "shots": shots,
            "zero_shot": {"acc": acc_zs, "images_per_s": len(test) / dt_zs, "seconds": dt_zs,
                          "visual_tokens_per_image": int(tokens[0]), "nll": nll_zs, "temperature": zs.temperature,
                          "per_class": per_class(sims)},
            "few_shot": {"acc": acc_fs, "images_per_s": len(test) / dt_fs, "seconds": dt_fs, "nll": nll_fs,
                         "temperature": fs.temperature, "example_weight": vision.EXAMPLE_WEIGHT,
                         "per_class": per_class(sims_fs)},
            "fitted_on_train": {"temperature": t_zs, "temperature_few_shot": t_fs}}


def documents(data: Path, device: str) -> dict[str, Any]:
    """The documents through ``Classifier`` exactly as users call it (``file=``), plus its
    text-only and pages-only halves for comparison."""
    import classer_local as cl
    from classer_local.classifier import Item

    root = data / "documents"
    labels = json.loads((root / "labels.json").read_text())
    rows = read_rows(root / "documents.jsonl")
    y = [r["label"] for r in rows]
    clf = cl.Classifier(labels, descriptions=DOC_DESCRIPTIONS, text_type=DOC_TEXT_TYPE, device=device, cache=False)
    paths = [str(root / r["file"]) for r in rows]
    docs = [load_document(p) for p in paths]
    clf.classify(file=paths[0])  # models loaded before timing
    t0 = time.perf_counter()
    fused = clf.classify_items([Item(file=p) for p in paths])
    secs = time.perf_counter() - t0
    text_only = clf.classify_items([Item(text=d.text) for d in docs])
    pages_only = clf.classify_items([Item(image=d.pages) for d in docs])
    n_pages = sum(len(d.pages) for d in docs)

    def acc(rs: list) -> float:
        return float(np.mean([r.label == t for r, t in zip(rs, y)]))

    print(f"documents  n={len(docs)} ({n_pages} pages)  fused={acc(fused):.3f}  "
          f"text-only (pooled windows)={acc(text_only):.3f}  pages-only={acc(pages_only):.3f}  "
          f"docs/s={len(docs) / secs:.2f}  visual tokens total {sum(r.visual_tokens for r in fused)}", flush=True)
    misses = []
    for r, row in zip(fused, rows):
        if r.label != row["label"]:
            misses.append({"file": row["file"], "label": row["label"], "pred": r.label, "confidence": r.confidence})
            print(f"  miss {row['file']}: {row['label']} -> {r.label} ({r.confidence:.2f})")
    return {"n_docs": len(docs), "n_pages": n_pages, "fused": acc(fused), "text_only": acc(text_only),
            "pages_only": acc(pages_only), "docs_per_s": len(docs) / secs, "seconds": secs,
            "visual_tokens": int(sum(r.visual_tokens for r in fused)), "misses": misses}


def write_markdown(res: dict[str, Any]) -> str:
    """VISION.md from the figures ``main`` saves (also ``--from-json``)."""
    meta, im, tx = res["meta"], res["meta"]["image_model"], res["meta"]["text_model"]
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    L = ["# Images: CIFAR-10 and document pages", "",
         "<!-- Generated by benchmarks/vision.py. Do not edit by hand: rerun the command below. -->", "",
         f"- **Command**: `{meta['command'].strip()}`",
         f"- **Date**: {meta['date']} ({meta['seconds'] / 60:.1f} min); load average "
         f"{', '.join(f'{x:.1f}' for x in la0)} at the start, {', '.join(f'{x:.1f}' for x in la1)} at the end "
         "(1, 5, 15 min)",
         f"- **Machine**: {meta['machine']}; device `{meta['device']}`. The machine was shared with other work: "
         "images/s are lower bounds.",
         f"- **Image model**: `{im['name']}` ({im['backend']}, {im['dim']}-d features, {im['license']}; "
         f"`{im['package']}` {im['version']}); zero-shot by ConSE through the text model `{tx}` "
         f"(top {im.get('conse_top_k', '?')} ImageNet classes an image, their names embedded by the text model).", ""]
    w = L.append
    c = res.get("cifar")
    if c:
        part = c["limit"] and c["n_test"] < c["n_test_all"]
        subset = (f"{c['n_test']:,} of the {c['n_test_all']:,} test images (`--limit {c['limit']}`: one image in "
                  f"{max(1, c['n_test_all'] // c['limit'])})" if part else f"all {c['n_test']:,} test images")
        zs, fs = c["zero_shot"], c["few_shot"]
        w("## CIFAR-10")
        w("")
        w(f"{len(c['labels'])} classes, {subset} of `../shared/evaldata/cifar10`; few-shot: the {c['shots']} images "
          f"a class of `train_fewshot.jsonl` as image examples. Images/s: one `VisualScorer.score` call over the "
          "test images after a warm-up (loading and decoding the files not counted).")
        w("")
        w("| method | accuracy | images/s | test NLL (models.toml temperature) |")
        w("|---|---|---|---|")
        w(f"| zero-shot (ConSE, label names only) | {zs['acc']:.3f} | {zs['images_per_s']:.1f} | "
          f"{zs['nll']:.3f} (T={zs['temperature']:.4f}) |")
        w(f"| {c['shots']}-shot (image examples, EXAMPLE_WEIGHT={fs['example_weight']}) | {fs['acc']:.3f} | "
          f"{fs['images_per_s']:.1f} | {fs['nll']:.3f} (T={fs['temperature']:.4f}) |")
        w("")
        w("Per class (zero-shot / few-shot): " + "; ".join(
            f"{lab} {zs['per_class'][lab]:.2f} / {fs['per_class'][lab]:.2f}" for lab in c["labels"]) + ".")
        w("")
        ft = c["fitted_on_train"]
        w(f"Temperatures refitted on the train split only (for models.toml): zero-shot {ft['temperature']:.4f}, "
          f"few-shot {ft['temperature_few_shot']:.4f} (models.toml has {zs['temperature']:.4f} / "
          f"{fs['temperature']:.4f}). {zs['visual_tokens_per_image']} visual tokens an image.")
        w("")
    d = res.get("documents")
    if d:
        w("## Document pages")
        w("")
        w(f"The {d['n_docs']} files of `../shared/evaldata/documents` ({d['n_pages']} pages), described labels "
          f"(`benchmarks/vision.py`'s descriptions, `text_type=\"document\"`), the standard text model `{tx}`, "
          "three ways in. Text only is the extracted text passed as a plain text (pooled windows, none of the "
          "document scoring: no best passages, no structure cues), so fused − text only is not what the pages "
          "add; DOCUMENTS.md's `text` against `fused` half is. Label sets, structure cues, other languages and "
          "OCR: [DOCUMENTS.md](DOCUMENTS.md).")
        w("")
        w("| input | accuracy |")
        w("|---|---|")
        w(f"| fused: `classify(file=...)` (text and pages, as users call it) | {d['fused']:.3f} |")
        w(f"| text only (`classify(text=doc.text)`, plain-text path) | {d['text_only']:.3f} |")
        w(f"| pages only (`classify(image=pages)`, the image model alone) | {d['pages_only']:.3f} |")
        w("")
        w(f"Fused: {d['docs_per_s']:.2f} documents/s (reading, rendering and scoring), {d['visual_tokens']:,} visual "
          "tokens in all. Misses (fused): " + ("; ".join(f"{m['file']} {m['label']} → {m['pred']} "
                                                         f"({m['confidence']:.2f})" for m in d["misses"]) or "none")
          + ".")
        w("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "evaldata")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image-model", default="image")
    ap.add_argument("--limit", type=int, default=None, help="CIFAR test images to use (default all 1,000)")
    ap.add_argument("--only", choices=["cifar", "documents"], default=None)
    ap.add_argument("--md", type=Path, default=HERE / "VISION.md")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "vision.json")
    ap.add_argument("--from-json", type=Path, default=None, help="only rewrite --md from a saved --out")
    args = ap.parse_args(argv)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
        args.md.write_text(write_markdown(res), encoding="utf-8")
        print(f"wrote {args.md}")
        return res
    shown = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/vision.py", *(shlex.quote(a) for a in shown)])
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load0, t_start = os.getloadavg(), time.perf_counter()
    text_spec = registry.get("standard")
    text = load_text(text_spec, args.device)
    image_spec = registry.get(args.image_model)
    load_image(image_spec, args.device)
    res: dict[str, Any] = {}
    if args.only in (None, "cifar"):
        res["cifar"] = cifar(args.data, text, image_spec, args.device, args.limit)
    if args.only in (None, "documents"):
        res["documents"] = documents(args.data, args.device)
    res["meta"] = {"command": command, "date": started, "seconds": round(time.perf_counter() - t_start, 1),
                   "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()), "machine": machine(),
                   "device": args.device, "text_model": text_spec.name,
                   "image_model": {"name": image_spec.name, "backend": image_spec.backend, "dim": image_spec.dim,
                                   "package": image_spec.package, "version": image_spec.version,
                                   "license": image_spec.license, **{k: v for k, v in image_spec.options.items()
                                                                      if k in ("arch", "input_size", "conse_top_k")}}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=float))
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(write_markdown(res), encoding="utf-8")
    print(f"wrote {args.md} and {args.out} in {res['meta']['seconds'] / 60:.1f} min; load average {os.getloadavg()}")
    return res


if __name__ == "__main__":
    main()
