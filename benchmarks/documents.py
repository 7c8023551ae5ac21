"""Zero-shot document kinds on the 34 real files of evaldata/documents, before and after structure cues.

    python benchmarks/documents.py [--data ../shared/evaldata] [--labels names_bare,names,typed,described]
                                   [--text-only] [--models a,b | --model NAME] [--ocr [--ocr-models a]]
                                   [--lang xx,yy] [--md DOCUMENTS.md] [--out results/documents.json]
    python benchmarks/documents.py --from-json benchmarks/results/documents.json   # only rewrite --md

Every run scores the same files twice in one process: ``baseline`` (passages only,
``doc_scoring.STRUCTURE = False``, the scoring before issue 16) and ``structure`` (passages,
skeleton and structure cues). Label sets, all with the labels exactly as given in labels.json:

* ``names_bare`` the label names alone, ``glossary=False`` (the bare-name baseline);
* ``names``      the label names as users pass them: the built-in glossary (on by default) gives
  the names it knows a description;
* ``typed``      the names with ``text_type="document"`` (glossary on, the default);
* ``described``  the descriptions of benchmarks/vision.py (written from what each kind of
  document is, not from the files) with ``text_type="document"``; every label has one, so the
  glossary adds nothing.

``text`` is the text-only half (the document's pages left out), ``fused`` is what users get from
``classify(file=...)`` (text and page images). ``--ocr`` also renders every page to an image,
drops the text layer and reads the words back with ``classer_local.ocr`` (scanned-document
accuracy, OCR seconds and tokens). Encodings are memoised per text within the run (same vectors,
less time). No per-file tuning: the files are only read and scored.

Writes ``benchmarks/DOCUMENTS.md``, ``benchmarks/results/documents.json`` and
``benchmarks/plots/documents.png`` (``--md``, ``--out``, ``--plot`` move them; smoke runs write
to a temporary folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from common import json_ready
from vision import DOC_DESCRIPTIONS, DOC_TEXT_TYPE

from classer_local import doc_scoring
from classer_local.classifier import Classifier, Item
from classer_local.inputs import load_document

LABEL_SETS: dict[str, dict[str, Any]] = {
    "names_bare": {"glossary": False},
    "names": {},
    "typed": {"text_type": DOC_TEXT_TYPE},
    "described": {"descriptions": DOC_DESCRIPTIONS, "text_type": DOC_TEXT_TYPE},
}
SET_NOTES = {
    "names_bare": "the label names alone, `glossary=False` (bare-name baseline)",
    "names": "the label names as users pass them; the built-in glossary (on by default) describes the names it knows",
    "typed": "the names with `text_type=\"document\"` (glossary on, the default)",
    "described": "names + the descriptions of `benchmarks/vision.py` (written from what each kind is, not from the "
                 "files) with `text_type=\"document\"`; every label is described, so the glossary adds nothing",
}
SCORERS = (("baseline", False), ("structure", True))


class MemoClassifier(Classifier):
    """A ``Classifier`` whose input encodings are memoised per text (benchmark speed only)."""

    _memo: ClassVar[dict[tuple[str, str], tuple[np.ndarray, int]]] = {}

    def encode(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        key = self.spec_.model_id
        missing = list(dict.fromkeys(t for t in texts if (key, t) not in self._memo))
        if missing:
            vecs, toks = super().encode(missing)
            for t, v, n in zip(missing, vecs, toks):
                self._memo[(key, t)] = (v, n)
        got = [self._memo[(key, t)] for t in texts]
        return np.stack([v for v, _ in got]), [n for _, n in got]


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy(pred: list[str], y: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(pred, y)]))


def tally(pred: list[str], y: list[str], groups: list[str]) -> dict[str, list[int]]:
    """[right, n] per group (a document kind, a language), groups in order of first appearance."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p, t, g in zip(pred, y, groups):
        out[g][0] += p == t
        out[g][1] += 1
    return dict(out)


def summary(pred: list[str], y: list[str], langs: list[str], seconds: float) -> dict[str, Any]:
    """One run's figures: accuracy, [right, n] per kind and per language, the predictions."""
    return {"acc": accuracy(pred, y), "right": int(sum(p == t for p, t in zip(pred, y))), "n": len(y),
            "seconds": round(seconds, 2), "per_kind": tally(pred, y, y), "per_lang": tally(pred, y, langs),
            "pred": pred}


def scanned(docs: list[Any], names: list[str], cache: Path | None) -> tuple[list[Any], float, int, int]:
    """The documents as scans: their page images only, the words read back by OCR from the first
    ``MAX_OCR_PAGES`` pages and laid out by ``ocr.layout`` (as ``ocr.read_pages`` does). ``cache``:
    each file's OCR boxes and seconds kept (JSON) so a rerun scores without re-reading; its seconds
    are those measured when read."""
    from classer_local import ocr

    memo = json.loads(cache.read_text()) if cache and cache.exists() else {}
    out, seconds, tokens, pages = [], 0.0, 0, 0
    for d, name in zip(docs, names):
        if name not in memo:
            memo[name] = [ocr.read_boxes(p) for p in d.pages[: ocr.MAX_OCR_PAGES]]
            if cache:
                cache.write_text(json.dumps(memo))
        texts = [ocr.layout([tuple(b) for b in boxes]) for boxes, _ in memo[name]]
        text = "\n\n".join(t for t in texts if t.strip())
        seconds += sum(s for _, s in memo[name])
        tokens += len(text.split())
        pages += len(memo[name])
        out.append(dataclasses.replace(d, text=text))
    return out, seconds, tokens, pages


def run(docs: list[Any], y: list[str], langs: list[str], labels: list[str], sets: list[str], text_only: bool,
        model: str, lang: list[str], source: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Figures per label set, half and scorer (``out[set][half][scorer]``); prints one line per (set, half)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    halves = [("text", [dataclasses.replace(d, pages=[]) for d in docs])]
    if not text_only:
        halves.append(("fused", docs))
    sub = [i for i, k in enumerate(langs) if k in lang]
    for s in sets:
        clf = MemoClassifier(labels, model=model, device="cpu", cache=False, **LABEL_SETS[s])
        out[s] = {}
        for half, items in halves:
            line = f"{model[:20]:20s} {source:10s} {s:10s} {half:5s}"
            out[s][half] = {}
            for scorer, flag in SCORERS:
                doc_scoring.STRUCTURE = flag
                try:
                    t0 = time.perf_counter()
                    res = clf.classify_items([Item(file=d) for d in items], cache=False)
                    seconds = time.perf_counter() - t0
                finally:
                    doc_scoring.STRUCTURE = True
                p = [r.label for r in res]
                out[s][half][scorer] = summary(p, y, langs, seconds)
                line += f"  {scorer}={accuracy(p, y):.3f}"
                if sub:
                    line += f" ({'/'.join(lang)}: {accuracy([p[i] for i in sub], [y[i] for i in sub]):.3f})"
                line += f" [{seconds:.1f}s]"
            print(line, flush=True)
    return out


# ---------------------------------------------------------------------------- report
def _acc(r: dict[str, Any] | None) -> str:
    return "–" if not r else f"{r['acc']:.3f} ({r['right']}/{r['n']})"


def _frac(rn: list[int] | None) -> str:
    return "–" if not rn else f"{rn[0]}/{rn[1]}"


def _get(res: dict[str, Any], model: str, source: str, s: str, half: str, scorer: str) -> dict[str, Any] | None:
    return res["models"].get(model, {}).get(source, {}).get(s, {}).get(half, {}).get(scorer)


def write_markdown(res: dict[str, Any]) -> str:
    """DOCUMENTS.md from the figures ``main`` saves (also ``--from-json``)."""
    meta, models, sets = res["meta"], list(res["models"]), res["meta"]["label_sets"]
    halves = ["text"] if meta["text_only"] else ["text", "fused"]
    best_half = halves[-1]
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    langs, lang = meta["langs"], meta["lang"]
    n_lang = {k: langs.count(k) for k in dict.fromkeys(langs)}
    L: list[str] = ["# Documents: zero-shot document kinds", "",
                    "<!-- Generated by benchmarks/documents.py. Do not edit by hand: rerun the command below. -->", "",
                    f"- **Command**: `{meta['command'].strip()}`",
                    f"- **Date**: {meta['date']} ({meta['seconds'] / 60:.1f} min); load average "
                    f"{', '.join(f'{x:.1f}' for x in la0)} at the start, {', '.join(f'{x:.1f}' for x in la1)} at the "
                    "end (1, 5, 15 min)",
                    f"- **Machine**: {meta['machine']}; device cpu. The machine was shared with other work: "
                    "seconds are upper bounds.",
                    f"- **Data**: the {meta['n_docs']} files of `../shared/evaldata/documents` ({meta['n_pdf']} PDF + "
                    f"{meta['n_docx']} DOCX, {meta['n_pages']} pages), {len(meta['labels'])} kinds "
                    f"({', '.join(meta['labels'])}); languages "
                    + ", ".join(f"{k} {v}" for k, v in n_lang.items())
                    + ". Zero-shot: the files are only read and scored, nothing is tuned on them.",
                    "- **Models**: " + ", ".join(f"`{m}`" + (" (the standard default)" if m == meta["standard"] else "")
                                               for m in models) + f"; image model `{meta['image_model']}` for the "
                    "page images of the fused half.",
                    "- **Label sets**: " + "; ".join(f"`{s}`: {SET_NOTES[s]}" for s in sets) + ".",
                    "- **Halves**: `text`: the text layer only; `fused`: text and page images, what "
                    "`classify(file=...)` does. **Scorers**: `baseline`: best passages only (the scoring before "
                    "issue 16); `structure`: passages, skeleton and structure cues (the default).", ""]
    w = L.append
    w("## Accuracy per label set")
    w("")
    w(f"Text layer, accuracy (right of {meta['n_docs']}). One file is {100 / meta['n_docs']:.1f} points: a "
      "difference of a file or two is within what another handful of documents could reverse.")
    w("")
    cols = [(h, sc) for h in halves for sc, _ in SCORERS]
    w("| model | label set | " + " | ".join(f"{h} {sc}" for h, sc in cols) + " |")
    w("|---|---|" + "---|" * len(cols))
    for m in models:
        for s in sets:
            w(f"| {m} | {s} | " + " | ".join(_acc(_get(res, m, "text_layer", s, h, sc)) for h, sc in cols) + " |")
    w("")
    if plot_name := meta.get("plot"):
        w(f"![documents](plots/{plot_name})")
        w("")
    if "names_bare" in sets and "names" in sets:
        w("## Glossary: bare names against the names with the built-in glossary")
        w("")
        w(f"`names_bare` is `glossary=False`; `names` is what a user gets by passing the bare names (the default). "
          "Text layer, `structure` scorer. Kinds the glossary describes: "
          f"{', '.join(meta['glossary_covers']) or 'none'}"
          + (f"; not described: {', '.join(k for k in meta['labels'] if k not in meta['glossary_covers'])}"
             if len(meta["glossary_covers"]) < len(meta["labels"]) else "") + ".")
        w("")
        w("| model | half | glossary off (`names_bare`) | glossary on (`names`) | change (points) |")
        w("|---|---|---|---|---|")
        for m in models:
            for h in halves:
                a, b = _get(res, m, "text_layer", "names_bare", h, "structure"), _get(res, m, "text_layer", "names", h,
                                                                                        "structure")
                if a and b:
                    w(f"| {m} | {h} | {_acc(a)} | {_acc(b)} | {100 * (b['acc'] - a['acc']):+.1f} |")
        w("")
    for m in models:
        w(f"## Per kind: `{m}`")
        w("")
        w(f"Right of n per kind, text layer, {best_half} half, `baseline` → `structure`.")
        w("")
        w("| kind | n | " + " | ".join(sets) + " |")
        w("|---|---|" + "---|" * len(sets))
        for k in meta["labels"]:
            cells = []
            for s in sets:
                a, b = _get(res, m, "text_layer", s, best_half, "baseline"), _get(res, m, "text_layer", s, best_half,
                                                                                   "structure")
                cells.append(f"{_frac(a and a['per_kind'].get(k))} → {_frac(b and b['per_kind'].get(k))}")
            w(f"| {k} | {meta['labels_n'][k]} | " + " | ".join(cells) + " |")
        w("")
    if lang:
        kinds = sorted({y for y, g in zip(meta["y"], langs) if g in lang})
        w(f"## Other languages ({', '.join(lang)})")
        w("")
        w(f"The non-English files ({', '.join(f'{k} {n_lang.get(k, 0)}' for k in lang)}; all of kind "
          f"{', '.join(kinds)}) against the English ones; text layer, {best_half} half, `structure` scorer, "
          "right of n.")
        w("")
        w("| model | label set | " + " | ".join(lang) + f" | all {'/'.join(lang)} | en |")
        w("|---|---|" + "---|" * (len(lang) + 2))
        for m in models:
            for s in sets:
                r = _get(res, m, "text_layer", s, best_half, "structure")
                if not r:
                    continue
                pl = r["per_lang"]
                tot = [sum(pl.get(k, [0, 0])[i] for k in lang) for i in (0, 1)]
                w(f"| {m} | {s} | " + " | ".join(_frac(pl.get(k)) for k in lang) + f" | {_frac(tot)} | "
                  f"{_frac(pl.get('en'))} |")
        w("")
    ocr = res.get("ocr")
    if ocr:
        w("## Scanned: OCR instead of the text layer")
        w("")
        w(f"Every page rendered to an image, the text layer dropped, the words read back by `classer_local.ocr` "
          f"({ocr['engine']}, first {ocr['max_pages']} pages of each file, one box a line: "
          f"`SPLIT_BOXES={ocr['split_boxes']}`): {ocr['pages']} pages in {ocr['seconds']:.0f} s "
          f"({ocr['seconds'] / max(ocr['pages'], 1):.2f} s a page, {ocr['seconds'] / max(meta['n_docs'], 1):.1f} s a "
          f"file), {ocr['tokens']:,} words read (`ocr_tokens`)"
          + (" (seconds as measured when the boxes were first read and kept in the OCR cache)" if ocr.get("cached")
             else "") + ". `structure` scorer.")
        w("")
        w("| model | label set | " + " | ".join(f"text layer, {h}" for h in halves) + " | "
          + " | ".join(f"OCR, {h}" for h in halves) + " |")
        w("|---|---|" + "---|" * (2 * len(halves)))
        for m in models:
            if "scanned" not in res["models"][m]:
                continue
            for s in sets:
                w(f"| {m} | {s} | " + " | ".join(_acc(_get(res, m, src, s, h, "structure"))
                                                 for src in ("text_layer", "scanned") for h in halves) + " |")
        skipped = [m for m in models if "scanned" not in res["models"][m]]
        if skipped:
            w("")
            w(f"OCR scoring not run for {', '.join(skipped)} (`--ocr-models`).")
        w("")
    w("## Misses")
    w("")
    main_set = sets[-1]
    w(f"Text layer, `{main_set}`, {best_half} half, `structure` scorer: file (language) true kind → answer.")
    w("")
    for m in models:
        r = _get(res, m, "text_layer", main_set, best_half, "structure")
        if not r:
            continue
        miss = [f"{f} ({g}) {t} → {p}" for f, g, t, p in zip(meta["files"], langs, meta["y"], r["pred"]) if p != t]
        w(f"- `{m}`: " + ("; ".join(miss) if miss else "none"))
    w("")
    return "\n".join(L)


def plot(res: dict[str, Any], path: Path) -> None:
    """Accuracy per label set and model, fused (or text) half, structure scorer; text layer and OCR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = res["meta"]
    sets, half = meta["label_sets"], "text" if meta["text_only"] else "fused"
    bars = [(m, src) for m in res["models"] for src in ("text_layer", "scanned") if src in res["models"][m]]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(sets), 4.2))
    width = 0.8 / max(len(bars), 1)
    colour = {m: f"C{i}" for i, m in enumerate(res["models"])}
    for j, (m, src) in enumerate(bars):
        vals = [(_get(res, m, src, s, half, "structure") or {}).get("acc", np.nan) for s in sets]
        x = np.arange(len(sets)) + (j - len(bars) / 2 + 0.5) * width
        ocr = src == "scanned"
        ax.bar(x, vals, width, label=f"{m}, {'OCR' if ocr else 'text layer'}", color="white" if ocr else colour[m],
               edgecolor=colour[m], hatch="///" if ocr else None)
        for xi, v in zip(x, vals):
            if not np.isnan(v):
                ax.text(xi, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel(f"accuracy ({meta['n_docs']} files)")
    ax.set_title(f"Document kinds, zero-shot ({half} half, structure scorer)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "evaldata")
    ap.add_argument("--labels", default=",".join(LABEL_SETS), help="label sets, of " + ", ".join(LABEL_SETS))
    ap.add_argument("--text-only", action="store_true", help="skip the page images (text half only)")
    ap.add_argument("--model", default=None, help="one text model name from models.toml (default: standard)")
    ap.add_argument("--models", default=None, help="several text models, comma-separated (one report)")
    ap.add_argument("--ocr", action="store_true", help="also score the pages as scans read back by OCR")
    ap.add_argument("--ocr-models", default=None, help="models to score the OCR text with (default: all of --models)")
    ap.add_argument("--ocr-cache", type=Path, default=None, help="JSON file keeping OCR boxes between runs")
    ap.add_argument("--ocr-join-boxes", action="store_true", help="OCR: a line's boxes joined by spaces")
    ap.add_argument("--lang", default="", help="also report accuracy on these languages, e.g. de,nl,fr")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (smoke runs)")
    ap.add_argument("--md", type=Path, default=HERE / "DOCUMENTS.md")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "documents.json")
    ap.add_argument("--plot", default=str(HERE / "plots" / "documents.png"), help="the plot; '' for none")
    ap.add_argument("--from-json", type=Path, default=None, help="only rewrite --md (and --plot) from a saved --out")
    args = ap.parse_args(argv)
    args.plot = Path(args.plot) if args.plot else None
    if args.from_json:
        res = json.loads(args.from_json.read_text())
        if args.plot and res["meta"].get("plot"):
            plot(res, args.plot)
        args.md.write_text(write_markdown(res), encoding="utf-8")
        print(f"wrote {args.md}")
        return res
    from classer_local import registry

    if args.model and args.models:
        ap.error("give --model or --models, not both")
    standard = registry.get("standard").name
    models = [m for m in (args.models or args.model or standard).split(",") if m]
    sets = [s for s in args.labels.split(",") if s]
    unknown = [s for s in sets if s not in LABEL_SETS]
    if unknown:
        ap.error(f"unknown label sets {unknown}; known: {', '.join(LABEL_SETS)}")
    ocr_models = models if args.ocr_models is None else [m for m in args.ocr_models.split(",") if m]
    lang = [x for x in args.lang.split(",") if x]

    argv_shown = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/documents.py", *(shlex.quote(a) for a in argv_shown)])
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load0 = os.getloadavg()
    t_start = time.perf_counter()

    root = args.data / "documents"
    labels = json.loads((root / "labels.json").read_text())
    rows = read_rows(root / "documents.jsonl")[: args.limit]
    y = [r["label"] for r in rows]
    langs = [r.get("lang", "en") for r in rows]
    t0 = time.perf_counter()
    docs = [load_document(str(root / r["file"]), render=not args.text_only or args.ocr) for r in rows]
    n_pages = sum(d.n_pages for d in docs)
    print(f"{len(docs)} documents, {n_pages} pages, read in {time.perf_counter() - t0:.1f}s; load average {load0}",
          flush=True)

    from classer_local import glossary
    from common import machine

    res: dict[str, Any] = {"models": {}}
    for m in models:
        res["models"][m] = {"text_layer": run(docs, y, langs, labels, sets, args.text_only, m, lang, "text layer")}
        main_key = res["models"][m]["text_layer"][sets[-1]]["text" if args.text_only else "fused"]
        print(f"\n{m}: per kind ({sets[-1]}/{'text' if args.text_only else 'fused'}), baseline -> structure:")
        for lb in labels:
            b, a = main_key["baseline"]["per_kind"].get(lb, [0, 0]), main_key["structure"]["per_kind"].get(lb, [0, 0])
            print(f"  {lb:18s} {b[0]}/{b[1]} -> {a[0]}/{a[1]}")
        for r, p in zip(rows, main_key["structure"]["pred"]):
            if p != r["label"]:
                print(f"  miss {r['file']} ({r.get('lang', 'en')}): {r['label']} -> {p}")
        print(flush=True)
    if args.ocr:
        from classer_local import ocr

        ocr.SPLIT_BOXES = not args.ocr_join_boxes
        cached = bool(args.ocr_cache and args.ocr_cache.exists())
        scans, seconds, tokens, ocr_pages = scanned(docs, [r["file"] for r in rows], args.ocr_cache)
        print(f"OCR: {ocr_pages} pages in {seconds:.1f}s ({seconds / max(ocr_pages, 1):.2f} s/page), "
              f"{tokens} ocr_tokens", flush=True)
        res["ocr"] = {"engine": "rapidocr-onnxruntime", "pages": ocr_pages, "seconds": round(seconds, 1),
                      "tokens": tokens, "max_pages": ocr.MAX_OCR_PAGES, "split_boxes": ocr.SPLIT_BOXES,
                      "cached": cached}
        for m in ocr_models:
            res["models"].setdefault(m, {})["scanned"] = run(scans, y, langs, labels, sets, args.text_only, m, lang,
                                                             "OCR")
    image_model = registry.get("image", kind="image").name
    res["meta"] = {
        "command": command, "date": started, "seconds": round(time.perf_counter() - t_start, 1),
        "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()), "machine": machine(),
        "standard": standard, "image_model": image_model, "label_sets": sets, "text_only": args.text_only,
        "lang": lang, "labels": labels, "labels_n": {k: y.count(k) for k in labels},
        "glossary_covers": [k for k in labels if glossary.lookup(k) is not None],
        "n_docs": len(docs), "n_pages": n_pages, "n_pdf": sum(r.get("format") == "pdf" for r in rows),
        "n_docx": sum(r.get("format") == "docx" for r in rows),
        "files": [r["file"] for r in rows], "y": y, "langs": langs,
        "plot": args.plot.name if args.plot else None,
    }
    res = json_ready(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    if res["meta"]["plot"]:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(res, args.plot)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(write_markdown(res), encoding="utf-8")
    print(f"wrote {args.md}, {args.out}" + (f", {args.plot}" if res["meta"]["plot"] else "")
          + f" in {res['meta']['seconds'] / 60:.1f} min; load average {os.getloadavg()}")
    return res


if __name__ == "__main__":
    main()
