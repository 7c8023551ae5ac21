"""Zero-shot document kinds on the 34 real files of evaldata/documents, before and after structure cues.

    python benchmarks/documents.py [--data ../shared/evaldata] [--labels names,typed,described]
                                   [--text-only] [--model NAME] [--ocr] [--lang xx,yy]

Every run scores the same files twice in one process: ``baseline`` (passages only,
``doc_scoring.STRUCTURE = False``, the scoring before issue 16) and ``structure`` (passages,
skeleton and structure cues). Label sets, all with the labels exactly as given in labels.json:

* ``names``     the label names alone;
* ``typed``     the names with ``text_type="document"``;
* ``described`` the descriptions of benchmarks/vision.py (written from what each kind of
  document is, not from the files) with ``text_type="document"``.

``text`` is the text-only half (the document's pages left out), ``fused`` is what users get from
``classify(file=...)`` (text and page images). ``--ocr`` also renders every page to an image,
drops the text layer and reads the words back with ``classer_local.ocr`` (scanned-document
accuracy, OCR seconds and tokens). Encodings are memoised per text within the run (same vectors,
less time). No per-file tuning: the files are only read and scored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from vision import DOC_DESCRIPTIONS, DOC_TEXT_TYPE

from classer_local import doc_scoring
from classer_local.classifier import Classifier, Item
from classer_local.inputs import load_document

LABEL_SETS = {
    "names": {},
    "typed": {"text_type": DOC_TEXT_TYPE},
    "described": {"descriptions": DOC_DESCRIPTIONS, "text_type": DOC_TEXT_TYPE},
}


class MemoClassifier(Classifier):
    """A ``Classifier`` whose input encodings are memoised per text (benchmark speed only)."""

    _memo: ClassVar[dict[tuple[str, str], tuple[np.ndarray, int]]] = {}

    def encode(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        key = self.spec.model_id
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


def per_kind(pred: list[str], y: list[str], labels: list[str]) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p, t in zip(pred, y):
        out[t][0] += p == t
        out[t][1] += 1
    return {lb: (out[lb][0], out[lb][1]) for lb in labels}


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


def run(docs: list[Any], y: list[str], labels: list[str], sets: list[str], text_only: bool, model: str | None,
        lang: list[str], name: str) -> dict[str, dict[str, list[str]]]:
    """Predictions per label set and scorer; prints one line per (set, half)."""
    preds: dict[str, dict[str, list[str]]] = {}
    halves = [("text", [dataclasses.replace(d, pages=[]) for d in docs])]
    if not text_only:
        halves.append(("fused", docs))
    for s in sets:
        clf = MemoClassifier(labels, model=model, device="cpu", cache=False, **LABEL_SETS[s])
        for half, items in halves:
            line = f"{name:8s} {s:10s} {half:5s}"
            for scorer, flag in (("baseline", False), ("structure", True)):
                doc_scoring.STRUCTURE = flag
                t0 = time.perf_counter()
                res = clf.classify_items([Item(file=d) for d in items], cache=False)
                dt = time.perf_counter() - t0
                p = [r.label for r in res]
                preds[f"{s}/{half}/{scorer}"] = p
                line += f"  {scorer}={accuracy(p, y):.3f}"
                if lang:
                    sub = [i for i, k in enumerate(LANGS) if k in lang]
                    line += f" ({'/'.join(lang)}: {accuracy([p[i] for i in sub], [y[i] for i in sub]):.3f})"
                line += f" [{dt:.1f}s]"
            doc_scoring.STRUCTURE = True
            print(line, flush=True)
    return preds


LANGS: list[str] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "evaldata")
    ap.add_argument("--labels", default="names,typed,described")
    ap.add_argument("--text-only", action="store_true", help="skip the page images (text half only)")
    ap.add_argument("--model", default=None, help="text model name from models.toml (default: standard)")
    ap.add_argument("--ocr", action="store_true", help="also score the pages as scans read back by OCR")
    ap.add_argument("--ocr-cache", type=Path, default=None, help="JSON file keeping OCR boxes between runs")
    ap.add_argument("--ocr-join-boxes", action="store_true", help="OCR: a line's boxes joined by spaces")
    ap.add_argument("--lang", default="", help="also report accuracy on these languages, e.g. de,nl,fr")
    args = ap.parse_args()
    root = args.data / "documents"
    labels = json.loads((root / "labels.json").read_text())
    rows = read_rows(root / "documents.jsonl")
    y = [r["label"] for r in rows]
    LANGS[:] = [r.get("lang", "en") for r in rows]
    sets = [s for s in args.labels.split(",") if s]
    lang = [x for x in args.lang.split(",") if x]
    t0 = time.perf_counter()
    docs = [load_document(str(root / r["file"]), render=not args.text_only or args.ocr) for r in rows]
    print(f"{len(docs)} documents, {sum(d.n_pages for d in docs)} pages, read in {time.perf_counter() - t0:.1f}s")
    preds = run(docs, y, labels, sets, args.text_only, args.model, lang, "text")
    main_key = f"{sets[-1]}/{'text' if args.text_only else 'fused'}"
    print(f"\nper kind ({main_key}), baseline -> structure:")
    before = per_kind(preds[main_key + "/baseline"], y, labels)
    after = per_kind(preds[main_key + "/structure"], y, labels)
    for lb in labels:
        print(f"  {lb:18s} {before[lb][0]}/{before[lb][1]} -> {after[lb][0]}/{after[lb][1]}")
    for r, p in zip(rows, preds[main_key + "/structure"]):
        if p != r["label"]:
            print(f"  miss {r['file']} ({r.get('lang', 'en')}): {r['label']} -> {p}")
    if args.ocr:
        from classer_local import ocr

        ocr.SPLIT_BOXES = not args.ocr_join_boxes
        scans, seconds, tokens, n_pages = scanned(docs, [r["file"] for r in rows], args.ocr_cache)
        print(f"\nOCR: {n_pages} pages in {seconds:.1f}s ({seconds / max(n_pages, 1):.2f} s/page), {tokens} ocr_tokens")
        run(scans, y, labels, sets, args.text_only, args.model, lang, "scanned")


if __name__ == "__main__":
    main()
