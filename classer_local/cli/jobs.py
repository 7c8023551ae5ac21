"""``jobs``: asynchronous batch jobs (list, get, start, results, delete) and ``jobs run`` (local or Ray)."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from classer_local.language import LANGUAGES

from ._common import EXIT_ERROR, OPS, CliError, add_json, add_labels, cell, emit, options, table

if TYPE_CHECKING:
    from ._common import Subparsers

_COLUMNS = ("id", "status", "kind", "processed", "failed", "total", "created_at")


def register(sub: Subparsers) -> None:
    j = sub.add_parser("jobs", help="asynchronous batch jobs")
    jsub = j.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)
    for name, func in (
        ("list", run_list),
        ("get", run_get),
        ("start", run_start),
        ("results", run_results),
        ("delete", run_delete),
    ):
        jp = jsub.add_parser(name, help=f"{name} job(s)")
        if name != "list":
            jp.add_argument("id")
        if name == "start":
            jp.add_argument("--wait", action="store_true", help="block until it finishes")
        if name == "results":
            jp.add_argument("-o", "--output")
        add_json(jp)
        jp.set_defaults(func=func)
    jr = jsub.add_parser(
        "run", help="create a job over IN and run it now (locally, or on Ray with --engine ray)"
    )
    jr.add_argument("input", help="input NDJSON; with --engine ray also a folder or a quoted glob")
    jr.add_argument(
        "-o", "--output", help="write the results here too (a file, or a folder/ for results.ndjson)"
    )
    jr.add_argument("--kind", choices=OPS, default=OPS[0])
    jr.add_argument("--threshold", type=float, help="tag threshold")
    jr.add_argument("--chunk-size", type=int, default=256)
    jr.add_argument("--engine", choices=["local", "ray"], default="local")
    jr.add_argument(
        "--address", help="Ray cluster: auto, HOST:PORT or ray://HEAD:10001 (default: a local Ray)"
    )
    jr.add_argument("--workers", type=int, help="Ray actors (default: the cluster's CPUs, or GPUs)")
    jr.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per Ray actor (e.g. 1, or 0.5)")
    jr.add_argument("--batch-size", type=int, help="rows per Ray worker call (default: --chunk-size)")
    jr.add_argument("--no-progress", action="store_true")
    jr.add_argument("--language", choices=LANGUAGES,
                    help="auto: rows that are not English go to the multilingual model when installed")
    jr.add_argument("--adapt", action="store_true",
                    help="adapt the label prototypes to each chunk's texts (batch adaptation; chunks of 256+)")
    add_labels(jr)
    add_json(jr)
    jr.set_defaults(func=run_run)


def _jobs() -> Any:
    try:
        from classer_local import jobs
    except ImportError as exc:
        raise CliError(f"batch jobs are not available in this build ({exc})") from None
    return jobs


def run_list(args: argparse.Namespace) -> int:
    rows = [j.to_dict() for j in _jobs().list()]
    emit(args, rows, table(rows, _COLUMNS))
    return 0


def run_get(args: argparse.Namespace) -> int:
    d = _jobs().get(args.id).to_dict()
    emit(args, d, "\n".join(f"{k}: {cell(v)}" for k, v in d.items()))
    return 0


def run_start(args: argparse.Namespace) -> int:
    job = _jobs().get(args.id)
    job.start(wait=args.wait)
    d = job.to_dict()
    emit(args, d, f"{args.id}: {d.get('status', 'started')}")
    return 0


def run_results(args: argparse.Namespace) -> int:
    rows = list(_jobs().get(args.id).results())
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        emit(args, {"output": args.output, "rows": len(rows)}, f"{len(rows)} rows -> {args.output}")
    else:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False, default=str))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    _jobs().get(args.id).delete()
    emit(args, {"id": args.id, "deleted": True}, f"deleted {args.id}")
    return 0


def run_run(args: argparse.Namespace) -> int:
    """Create a job and run it here (locally or on Ray); the job is kept, results also go to ``-o``."""
    jobs = _jobs()
    opts = options(args)
    opts.pop("cache")
    ray_opts: dict[str, Any] = {}
    if args.engine == "ray":
        ray_opts = {
            "address": args.address,
            "num_workers": args.workers,
            "gpus_per_worker": args.gpus_per_worker,
            "batch_size": args.batch_size,
        }
    elif args.address or args.workers or args.gpus_per_worker or args.batch_size:
        raise CliError("--address, --workers, --gpus-per-worker and --batch-size need --engine ray")
    job = jobs.create(
        args.input,
        opts.pop("labels"),
        kind=args.kind,
        threshold=args.threshold,
        chunk_size=args.chunk_size,
        adapt=args.adapt,
        language=args.language,
        engine=args.engine,
        **ray_opts,
        **{k: v for k, v in opts.items() if v is not None},
    )
    job.start(wait=True, progress=not args.no_progress)
    info = job.to_dict()
    if info["status"] != "completed":
        err = info.get("error") or {}
        raise CliError(f"job {job.id} {info['status']}: {err.get('message', '')}")
    output = args.output
    if output and (output.endswith(("/", os.sep)) or os.path.isdir(output)):
        os.makedirs(output, exist_ok=True)
        output = os.path.join(output, "results.ndjson")
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in job.results())
    summary = {
        "job_id": job.id,
        "engine": args.engine,
        "output": output or str(job.results_path),
        "rows": info["processed"],
        "errors": info["failed"],
    }
    emit(
        args, summary, f"{job.id}: {info['processed']} rows -> {summary['output']} ({info['failed']} errors)"
    )
    return 0 if info["failed"] == 0 else EXIT_ERROR
