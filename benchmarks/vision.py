"""Image and document classification: accuracy and speed of classer_local's visual path.

    python benchmarks/vision.py [--data ../shared/evaldata] [--device cpu] [--limit N]

* CIFAR-10, 1,000 test images: zero-shot (ConSE through the standard text model) and
  10-shot (train_fewshot.jsonl as image examples); images/s of the zero-shot pass.
* Temperatures for models.toml, fitted on the CIFAR-10 *train* few-shot split only (zero-shot
  on its 100 images; few-shot by 2-fold, 5 shots building prototypes for the other 5).
* The 34 documents of evaldata/documents: zero-shot with the descriptions below (written
  from what each kind of document is, not from the files), text only, pages only, and fused
  through ``Classifier(...).classify(file=...)`` as users get it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def cifar(data: Path, text, image_spec, device: str, limit: int | None) -> None:
    root = data / "cifar10"
    labels = json.loads((root / "labels.json").read_text())
    test = read_rows(root / "test.jsonl")
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
    dt = time.perf_counter() - t0
    acc_zs = float((sims.argmax(1) == y_test).mean())
    print(f"CIFAR-10 zero-shot (ConSE)  n={len(test)}  accuracy={acc_zs:.3f}  "
          f"images/s={len(test) / dt:.1f}  visual_tokens/image={tokens[0]}")

    examples = {lab: [im for im, r in zip(train_imgs, train) if r["label"] == lab] for lab in labels}
    fs = vision.VisualScorer(labels, examples=examples, text_embedder=text, image_spec=image_spec, device=device)
    sims_fs, _ = fs.score([[im] for im in test_imgs])
    acc_fs = float((sims_fs.argmax(1) == y_test).mean())
    print(f"CIFAR-10 10-shot            n={len(test)}  accuracy={acc_fs:.3f}  (EXAMPLE_WEIGHT={vision.EXAMPLE_WEIGHT})")

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
    print(f"fitted on train: temperature={t_zs:.4f}  temperature_few_shot={t_fs:.4f}  "
          f"(models.toml now: {zs.temperature:.4f} / {fs.temperature:.4f})")
    print(f"test NLL at models.toml temperatures: zero-shot {nll(sims, y_test, zs.temperature):.3f}, "
          f"10-shot {nll(sims_fs, y_test, fs.temperature):.3f}")


def documents(data: Path, device: str) -> None:
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
    dt = time.perf_counter() - t0
    text_only = clf.classify_items([Item(text=d.text) for d in docs])
    pages_only = clf.classify_items([Item(image=d.pages) for d in docs])
    n_pages = sum(len(d.pages) for d in docs)

    def acc(rs: list) -> float:
        return float(np.mean([r.label == t for r, t in zip(rs, y)]))

    print(f"documents  n={len(docs)} ({n_pages} pages)  fused={acc(fused):.3f}  "
          f"text-only (pooled windows)={acc(text_only):.3f}  pages-only={acc(pages_only):.3f}  "
          f"docs/s={len(docs) / dt:.2f}  visual tokens total {sum(r.visual_tokens for r in fused)}")
    for r, row in zip(fused, rows):
        if r.label != row["label"]:
            print(f"  miss {row['file']}: {row['label']} -> {r.label} ({r.confidence:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "evaldata")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image-model", default="image")
    ap.add_argument("--limit", type=int, default=None, help="CIFAR test images to use (default all 1,000)")
    ap.add_argument("--only", choices=["cifar", "documents"], default=None)
    args = ap.parse_args()
    text = load_text(registry.get("standard"), args.device)
    image_spec = registry.get(args.image_model)
    load_image(image_spec, args.device)
    if args.only in (None, "cifar"):
        cifar(args.data, text, image_spec, args.device, args.limit)
    if args.only in (None, "documents"):
        documents(args.data, args.device)


if __name__ == "__main__":
    main()
