"""``eval``: accuracy, macro-F1, ECE, confusion matrix and a reliability diagram on labelled JSONL.

The figures come from ``classer_local.evaluate``, the same definitions as ``benchmarks/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import CliError, add_json, add_labels, descriptions, emit, labels, read_ndjson, table

if TYPE_CHECKING:
    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    e = sub.add_parser("eval", help="accuracy, macro-F1, confusion matrix and reliability diagram")
    e.add_argument("data", help='JSONL rows {"text", "label"}')
    e.add_argument("--plot", help="write a reliability diagram PNG here")
    e.add_argument("--bins", type=int, help="confidence bins of the ECE and the diagram (default 15)")
    e.add_argument("--limit", type=int, help="use the first N rows")
    e.add_argument("--no-progress", action="store_true")
    add_labels(e)
    add_json(e)
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from classer_local import evaluate
    from classer_local.options import ClassifierOptions

    rows = [r for _, r in read_ndjson(args.data)]
    rows = [r for r in rows if isinstance(r.get("text"), str) and isinstance(r.get("label"), str)]
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise CliError(f"{args.data}: no rows with string text and label")
    given = labels(args)
    if given is not None and args.classifier:
        raise CliError("give either labels or --classifier, not both")
    truth = {r["label"] for r in rows}
    unknown = sorted(truth - set(given or truth))
    if unknown:
        raise CliError(f"the data has labels not in --label: {unknown}")
    clf = ClassifierOptions(
        labels=None if args.classifier else (given or sorted(truth)),
        descriptions=descriptions(args.description),
        text_type=args.text_type,
        priority=args.priority,
        model=args.model,
        truncate=args.truncate,
        classifier=args.classifier,
        glossary=not args.no_glossary,
        ocr=args.ocr,
    ).build()
    unknown = sorted(truth - set(clf.labels_))
    if unknown:
        raise CliError(f"the data has labels that {args.classifier} does not: {unknown}")
    preds: list[str] = []
    conf: list[float] = []
    with tqdm(total=len(rows), unit="row", disable=args.no_progress or None, file=sys.stderr) as bar:
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            for r in clf.classify([x["text"] for x in chunk], cache=not args.no_cache):
                preds.append(r.label)
                conf.append(r.confidence)
            bar.update(len(chunk))
    bins = args.bins or evaluate.DEFAULT_BINS
    report = evaluate.report([r["label"] for r in rows], preds, conf, clf.labels_, bins)
    if args.plot:
        evaluate.reliability_diagram(
            report["reliability"], args.plot, title=f"{Path(args.data).name} ({clf.spec_.name})"
        )
        report["plot"] = args.plot
    emit(args, report, _text(report, clf.spec_.name, args.plot))
    return 0


def _text(report: dict[str, Any], model: str, plot: str | None) -> str:
    names = report["labels"]
    lines = [
        f"rows: {report['rows']}  labels: {len(names)}  model: {model}",
        f"accuracy: {report['accuracy']:.4f}  macro-F1: {report['macro_f1']:.4f}  ECE: {report['ece']:.4f}",
        "",
        "confusion matrix (rows: true, columns: predicted)",
    ]
    width = max(6, *(len(lb) for lb in names))
    lines.append(" " * (width + 2) + "  ".join(lb[:width].rjust(width) for lb in names))
    for lb, row in zip(names, report["confusion_matrix"]):
        lines.append(lb[:width].ljust(width + 2) + "  ".join(str(v).rjust(width) for v in row))
    lines.append("")
    lines.append(
        table(
            [{"label": lb, **m} for lb, m in report["per_label"].items()],
            ("label", "precision", "recall", "f1", "support"),
        )
    )
    if plot:
        lines.append(f"\nreliability diagram -> {plot}")
    return "\n".join(lines)
