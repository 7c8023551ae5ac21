"""What every command group shares: exit codes, output, the label/option flags and input reading.

Only the standard library and ``classer_local.options`` (enums, no models) are imported here,
so building the whole parser for ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from classer_local.options import OPS, PRIORITIES, TRUNCATES

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_ERROR",
    "OPS",
    "PRIORITIES",
    "TRUNCATES",
    "CliError",
    "add_json",
    "add_labels",
    "cell",
    "descriptions",
    "emit",
    "existing",
    "labels",
    "options",
    "print_json",
    "read_ndjson",
    "read_text",
    "table",
]

if TYPE_CHECKING:
    from typing import TypeAlias

    # What ``add_subparsers`` returns; private in typeshed, so it is spelt once, here.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class CliError(Exception):
    """A problem with the command line itself (exit 2)."""


# ---------------------------------------------------------------------- output
def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain left-aligned table, one row per dict; ``(none)`` when empty."""
    if not rows:
        return "(none)"
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    """JSON with ``--json``, else the readable ``text``."""
    if getattr(args, "json", False):
        print_json(obj)
    else:
        print(text)


# ---------------------------------------------------------------------- shared flags
def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def add_labels(p: argparse.ArgumentParser) -> None:
    """The flags that define a classifier: labels (or a saved one), descriptions, model, options."""
    g = p.add_argument_group("labels")
    g.add_argument("-l", "--label", action="append", default=[], metavar="LABEL", help="a label (repeat)")
    g.add_argument("--labels", metavar="A,B,...", help="comma-separated labels")
    g.add_argument("--classifier", metavar="NAME[@vN]", help="a saved classifier instead of labels")
    g.add_argument(
        "--description", action="append", default=[], metavar="LABEL=TEXT", help="describe a label (repeat)"
    )
    g.add_argument("--text-type", help='what the inputs are, e.g. "support ticket"')
    g.add_argument("--priority", choices=PRIORITIES, default=PRIORITIES[0])
    g.add_argument("--model", help="a model name from `models list` (overrides --priority)")
    g.add_argument("--truncate", choices=TRUNCATES)
    g.add_argument("--no-cache", action="store_true", help="skip the request cache")
    g.add_argument("--ocr", action="store_true",
                   help="also read the words in images (a receipt photo, a screenshot; the ocr extra)")
    g.add_argument("--no-glossary", action="store_true",
                   help="score bare label names (default: labels without --description borrow the built-in glossary's)")


def labels(args: argparse.Namespace) -> list[str] | None:
    """``-l`` labels then ``--labels`` ones, in order; None when neither was given."""
    out = list(args.label or [])
    if args.labels:
        out += [x.strip() for x in args.labels.split(",") if x.strip()]
    return out or None


def descriptions(pairs: list[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        label, sep, text = pair.partition("=")
        if not sep:
            raise CliError(f"--description takes LABEL=TEXT, got {pair!r}")
        out[label.strip()] = text.strip()
    return out or None


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The classifier keywords of the library calls, from the ``add_labels`` flags.

    The labels-or-classifier rule is checked here too (the library has its own typed error):
    the CLI's message names the flags to use.
    """
    given = labels(args)
    if given is None and not args.classifier:
        raise CliError("give labels (-l/--label, --labels) or --classifier")
    if given is not None and args.classifier:
        raise CliError("give either labels or --classifier, not both")
    return {
        "labels": given,
        "descriptions": descriptions(args.description),
        "text_type": args.text_type,
        "priority": args.priority,
        "model": args.model,
        "truncate": args.truncate,
        "cache": not args.no_cache,
        "classifier": args.classifier,
        "glossary": not args.no_glossary,
        "ocr": args.ocr,
    }


# ---------------------------------------------------------------------- inputs
def read_text(args: argparse.Namespace) -> str | None:
    """The positional text, or stdin for ``-`` (or when piped and no file/image was given)."""
    if args.text not in (None, "-"):
        return str(args.text)
    if args.text == "-" or (not args.file and not args.image and not sys.stdin.isatty()):
        return sys.stdin.read().rstrip("\n")
    return None


def existing(path: str) -> str:
    """``path`` itself if it exists (URLs and data URIs pass through); a CliError otherwise."""
    if not path.lower().startswith(("http://", "https://", "data:")) and not os.path.exists(path):
        raise CliError(f"no such file: {path}")
    return path


def read_ndjson(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, row) for each non-empty line; a row is an object with ``text`` or a JSON string."""
    fh = sys.stdin if path == "-" else open(existing(path), encoding="utf-8")  # noqa: SIM115
    try:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CliError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if isinstance(row, str):
                row = {"text": row}
            if not isinstance(row, dict):
                raise CliError(f'{path}:{n}: each line must be an object with "text" (or a JSON string)')
            yield n, row
    finally:
        if fh is not sys.stdin:
            fh.close()
