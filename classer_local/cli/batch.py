"""``batch run``: score every row of an NDJSON file here and now, results to ``-o``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from classer_local.language import LANGUAGES

from ._common import EXIT_ERROR, OPS, CliError, add_json, add_labels, emit, existing, options

if TYPE_CHECKING:
    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    b = sub.add_parser("batch", help="classify an NDJSON file")
    bsub = b.add_subparsers(dest="batch_command", metavar="SUBCOMMAND", required=True)
    br = bsub.add_parser("run", help='score every row of in.ndjson ({"text": ...} per line)')
    br.add_argument("input", help="input NDJSON ('-' for stdin)")
    br.add_argument("-o", "--output", help="output NDJSON (default stdout)")
    br.add_argument("--kind", choices=OPS, default=OPS[0])
    br.add_argument("--threshold", type=float, help="tag threshold")
    br.add_argument("--chunk-size", type=int, default=256)
    br.add_argument("--no-progress", action="store_true")
    br.add_argument("--language", choices=LANGUAGES,
                    help="auto: rows that are not English go to the multilingual model when installed")
    br.add_argument("--adapt", action="store_true",
                    help="adapt the label prototypes to each chunk's texts (batch adaptation; chunks of 256+)")
    br.add_argument("--keep-job", action="store_true", help="keep the job (see `jobs list`) after writing")
    add_labels(br)
    add_json(br)
    br.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A batch job run here and now: progress bar, results to ``-o``, the job removed unless ``--keep-job``."""
    from classer_local import jobs

    opts = options(args)
    opts.pop("cache")
    source: Any = sys.stdin.buffer if args.input == "-" else existing(args.input)
    job = jobs.create(
        source,
        opts.pop("labels"),
        kind=args.kind,
        threshold=args.threshold,
        chunk_size=args.chunk_size,
        adapt=args.adapt,
        language=args.language,
        **{k: v for k, v in opts.items() if v is not None},
    )
    try:
        job.start(wait=True, progress=not args.no_progress)
        info = job.to_dict()
        if info["status"] != "completed":
            err = info.get("error") or {}
            raise CliError(f"job {job.id} {info['status']}: {err.get('message', '')}")
        out = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
        tokens = 0
        try:
            for row in job.results():
                tokens += 0 if row.get("cached") else int(row.get("tokens") or 0)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        if not args.keep_job:
            job.delete()
    summary = {
        "job_id": job.id,
        "output": args.output or "-",
        "rows": info["processed"],
        "errors": info["failed"],
        "tokens": tokens,
    }
    if args.output not in (None, "-"):
        emit(
            args,
            summary,
            f"{info['processed']} rows -> {args.output} ({info['failed']} errors, {tokens} tokens)",
        )
    return 0 if info["failed"] == 0 else EXIT_ERROR
