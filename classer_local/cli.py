"""The ``classer-local`` console script.

Readable output by default, JSON with ``--json``. Errors print their typed message and
exit non-zero: 2 for bad input (like argparse), 1 for anything else. Heavy modules
(torch, the models, fastapi) are imported by the command that needs them, so
``--help`` and ``models list`` stay fast.

Example:
    $ classer-local classify "I can't log in" -l billing -l technical
    technical  0.94
    $ echo "refund please" | classer-local classify --labels billing,technical --json
    $ classer-local serve --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A problem with the command line itself (exit 2)."""


# ---------------------------------------------------------------------- output
def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    if getattr(args, "json", False):
        _print_json(obj)
    else:
        print(text)


# ---------------------------------------------------------------------- shared options
def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_labels(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labels")
    g.add_argument("-l", "--label", action="append", default=[], metavar="LABEL", help="a label (repeat)")
    g.add_argument("--labels", metavar="A,B,...", help="comma-separated labels")
    g.add_argument("--classifier", metavar="NAME[@vN]", help="a saved classifier instead of labels")
    g.add_argument(
        "--description", action="append", default=[], metavar="LABEL=TEXT", help="describe a label (repeat)"
    )
    g.add_argument("--text-type", help='what the inputs are, e.g. "support ticket"')
    g.add_argument("--priority", choices=["standard", "fast"], default="standard")
    g.add_argument("--model", help="a model name from `models list` (overrides --priority)")
    g.add_argument("--truncate", choices=["NONE", "START", "END"])
    g.add_argument("--no-cache", action="store_true", help="skip the request cache")


def _labels(args: argparse.Namespace) -> list[str] | None:
    labels = list(args.label or [])
    if args.labels:
        labels += [x.strip() for x in args.labels.split(",") if x.strip()]
    return labels or None


def _descriptions(pairs: list[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        label, sep, text = pair.partition("=")
        if not sep:
            raise CliError(f"--description takes LABEL=TEXT, got {pair!r}")
        out[label.strip()] = text.strip()
    return out or None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    labels = _labels(args)
    if labels is None and not args.classifier:
        raise CliError("give labels (-l/--label, --labels) or --classifier")
    if labels is not None and args.classifier:
        raise CliError("give either labels or --classifier, not both")
    return {
        "labels": labels,
        "descriptions": _descriptions(args.description),
        "text_type": args.text_type,
        "priority": args.priority,
        "model": args.model,
        "truncate": args.truncate,
        "cache": not args.no_cache,
        "classifier": args.classifier,
    }


def _read_text(args: argparse.Namespace) -> str | None:
    if args.text not in (None, "-"):
        return str(args.text)
    if args.text == "-" or (not args.file and not args.image and not sys.stdin.isatty()):
        return sys.stdin.read().rstrip("\n")
    return None


def _existing(path: str) -> str:
    if not path.lower().startswith(("http://", "https://", "data:")) and not os.path.exists(path):
        raise CliError(f"no such file: {path}")
    return path


# ---------------------------------------------------------------------- classify / tag
def cmd_classify(args: argparse.Namespace) -> int:
    import classer_local as cl

    opts = _options(args)
    text = _read_text(args)
    images = [_existing(p) for p in args.image] if args.image else None
    image: Any = images[0] if images is not None and len(images) == 1 else images
    file = _existing(args.file) if args.file else None
    r: Any
    if args.command == "tag":
        r = cl.tag(
            text,
            image=image,
            file=file,
            threshold=args.threshold if args.threshold is not None else 0.5,
            **opts,
        )
        chosen = (
            ", ".join(f"{x.label} ({x.confidence:.4f})" for x in r.labels) or "(no label above threshold)"
        )
        lines = [chosen]
    else:
        r = cl.classify(text, image=image, file=file, **opts)
        lines = [f"{r.label}  {r.confidence:.4f}"]
    if args.verbose:
        for label, score in sorted(r.scores.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {label:<30} {score:.4f}")
        lines.append(
            f"  tokens={r.tokens} visual_tokens={r.visual_tokens} cached={r.cached} "
            f"latency_ms={r.latency_ms} model={r.model}"
        )
    _emit(args, r.to_dict(), "\n".join(lines))
    return 0


# ---------------------------------------------------------------------- batch run
def _read_ndjson(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, row) for each non-empty line; a row is an object with ``text`` or a JSON string."""
    fh = sys.stdin if path == "-" else open(_existing(path), encoding="utf-8")  # noqa: SIM115
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


def cmd_batch_run(args: argparse.Namespace) -> int:
    """A batch job run here and now: progress bar, results to ``-o``, the job removed unless ``--keep-job``."""
    from classer_local import jobs

    opts = _options(args)
    opts.pop("cache")
    source: Any = sys.stdin.buffer if args.input == "-" else _existing(args.input)
    job = jobs.create(
        source,
        opts.pop("labels"),
        kind=args.kind,
        threshold=args.threshold,
        chunk_size=args.chunk_size,
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
        _emit(
            args,
            summary,
            f"{info['processed']} rows -> {args.output} ({info['failed']} errors, {tokens} tokens)",
        )
    return 0 if info["failed"] == 0 else EXIT_ERROR


# ---------------------------------------------------------------------- jobs
def _jobs() -> Any:
    try:
        from classer_local import jobs
    except ImportError as exc:
        raise CliError(f"batch jobs are not available in this build ({exc})") from None
    return jobs


def _job_dict(job: Any) -> dict[str, Any]:
    return job.to_dict()  # type: ignore[no-any-return]


_JOB_COLUMNS = ("id", "status", "kind", "processed", "failed", "total", "created_at")


def cmd_jobs_run(args: argparse.Namespace) -> int:
    """Create a job and run it here (locally or on Ray); the job is kept, results also go to ``-o``."""
    jobs = _jobs()
    opts = _options(args)
    opts.pop("cache")
    ray_opts: dict[str, Any] = {}
    if args.engine == "ray":
        ray_opts = {"address": args.address, "num_workers": args.workers,
                    "gpus_per_worker": args.gpus_per_worker, "batch_size": args.batch_size}
    elif args.address or args.workers or args.gpus_per_worker or args.batch_size:
        raise CliError("--address, --workers, --gpus-per-worker and --batch-size need --engine ray")
    job = jobs.create(
        args.input, opts.pop("labels"), kind=args.kind, threshold=args.threshold, chunk_size=args.chunk_size,
        engine=args.engine, **ray_opts, **{k: v for k, v in opts.items() if v is not None},
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
    summary = {"job_id": job.id, "engine": args.engine, "output": output or str(job.results_path),
               "rows": info["processed"], "errors": info["failed"]}
    _emit(args, summary, f"{job.id}: {info['processed']} rows -> {summary['output']} ({info['failed']} errors)")
    return 0 if info["failed"] == 0 else EXIT_ERROR


def cmd_jobs(args: argparse.Namespace) -> int:
    jobs = _jobs()
    if args.jobs_command == "list":
        rows = [_job_dict(j) for j in jobs.list()]
        _emit(args, rows, _table(rows, _JOB_COLUMNS))
        return 0
    job = jobs.get(args.id)
    if args.jobs_command == "get":
        d = _job_dict(job)
        _emit(args, d, "\n".join(f"{k}: {_cell(v)}" for k, v in d.items()))
    elif args.jobs_command == "start":
        job.start(wait=args.wait)
        d = _job_dict(job)
        _emit(args, d, f"{args.id}: {d.get('status', 'started')}")
    elif args.jobs_command == "results":
        rows = list(job.results())
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
            _emit(args, {"output": args.output, "rows": len(rows)}, f"{len(rows)} rows -> {args.output}")
        else:
            for r in rows:
                print(json.dumps(r, ensure_ascii=False, default=str))
    elif args.jobs_command == "delete":
        job.delete()
        _emit(args, {"id": args.id, "deleted": True}, f"deleted {args.id}")
    return 0


# ---------------------------------------------------------------------- classifiers
def _load_spec(path: str) -> dict[str, Any]:
    text = Path(_existing(path)).read_text(encoding="utf-8")
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise CliError("reading YAML needs PyYAML (pip install pyyaml); or use a JSON spec") from None
        spec = yaml.safe_load(text)
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: not JSON ({exc.msg})") from None
    if not isinstance(spec, dict):
        raise CliError(f"{path}: the spec must be an object (labels, descriptions, examples, ...)")
    return spec


_SPEC_KEYS = {
    "labels",
    "descriptions",
    "examples",
    "text_type",
    "model",
    "priority",
    "threshold",
    "truncate",
    "calibrate",
}


def cmd_classifiers(args: argparse.Namespace) -> int:
    from classer_local import store

    sub = args.classifiers_command
    if sub == "list":
        rows = store.list(args.name) if args.name else store.list()
        _emit(args, rows, _table(rows, ("ref", "model", "labels", "n_examples", "calibrated", "created_at")))
    elif sub == "get":
        info = store.get(args.ref)
        _emit(args, info, "\n".join(f"{k}: {_cell(v)}" for k, v in info.items()))
    elif sub == "delete":
        res = store.delete(args.ref)
        _emit(args, res, "deleted " + ", ".join(res["deleted"]))
    elif sub == "create":
        spec: dict[str, Any] = _load_spec(args.spec) if args.spec else {}
        unknown = set(spec) - _SPEC_KEYS - {"name"}
        if unknown:
            raise CliError(f"unknown keys in spec: {sorted(unknown)}; known: {sorted(_SPEC_KEYS)}")
        spec.pop("name", None)
        labels = _labels(args)
        if labels:
            spec["labels"] = labels
        if args.description:
            spec["descriptions"] = {
                **(spec.get("descriptions") or {}),
                **(_descriptions(args.description) or {}),
            }
        for pair in args.example:
            label, sep, text = pair.partition("=")
            if not sep:
                raise CliError(f"--example takes LABEL=TEXT, got {pair!r}")
            spec.setdefault("examples", {}).setdefault(label.strip(), []).append(text)
        if args.examples_file:
            for _, row in _read_ndjson(args.examples_file):
                if not isinstance(row.get("label"), str) or not isinstance(row.get("text"), str):
                    raise CliError(f"{args.examples_file}: rows need string text and label")
                spec.setdefault("examples", {}).setdefault(row["label"], []).append(row["text"])
        for flag in ("text_type", "model", "priority", "threshold", "truncate"):
            value = getattr(args, flag, None)
            if value is not None:
                spec[flag] = value
        if args.no_calibrate:
            spec["calibrate"] = False
        info = store.create(args.name, spec.pop("labels", None), **spec)
        _emit(
            args,
            info,
            f"created {info['ref']} ({len(info['labels'])} labels, {info['n_examples']} examples, "
            f"calibrated={info['calibrated']})",
        )
    return 0


# ---------------------------------------------------------------------- models, keys, usage, logs
def cmd_models(args: argparse.Namespace) -> int:
    from classer_local.registry import models

    rows = models()
    _emit(args, rows, _table(rows, ("name", "kind", "backend", "dim", "installed", "default_for")))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from classer_local.server.keys import KeyStore

    store = KeyStore()
    try:
        if args.keys_command == "create":
            key, row = store.create(args.name, quota=args.quota, rpm=args.rpm, tpm=args.tpm, admin=args.admin)
            _emit(
                args,
                {"key": key, **row},
                f"{key}\n(id {row['id']}; shown once: store it now. quota={_cell(row['quota'])})",
            )
        elif args.keys_command == "list":
            rows = store.list()
            _emit(
                args,
                rows,
                _table(rows, ("id", "name", "admin", "quota", "used", "remaining", "rpm", "tpm", "revoked")),
            )
        elif args.keys_command == "update":
            changes: dict[str, Any] = {}
            for flag in ("quota", "rpm", "tpm"):
                value = getattr(args, flag)
                if value is not None:
                    changes[flag] = None if value < 0 else value
            if args.reset_used:
                changes["used"] = 0
            row = store.update(args.id, **changes)
            _emit(
                args,
                row,
                f"{row['id']}: quota={_cell(row['quota'])} used={row['used']} rpm={_cell(row['rpm'])} "
                f"tpm={_cell(row['tpm'])}",
            )
        elif args.keys_command == "revoke":
            row = store.update(args.id, revoked=True)
            _emit(args, row, f"revoked {row['id']}")
    finally:
        store.close()
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from classer_local.usagelog import usage

    filters = {
        k: v
        for k, v in (("endpoint", args.endpoint), ("model", args.model), ("key_id", args.key_id))
        if v is not None
    }
    res = usage(
        since=args.since,
        until=args.until,
        group_by=None if args.group_by == "none" else args.group_by,
        **filters,
    )
    cols = ("requests", "items", "tokens", "errors", "cache_hit_rate", "latency_ms_p50", "latency_ms_p95")
    text = "totals\n" + _table([res["totals"]], cols)
    if res["groups"]:
        text += f"\n\nby {res['group_by']}\n" + _table(res["groups"], ("key", *cols))
    _emit(args, res, text)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from classer_local.usagelog import logs

    filters = {
        k: v
        for k, v in (("endpoint", args.endpoint), ("status", args.status), ("key_id", args.key_id))
        if v is not None
    }
    rows = logs(limit=args.limit, since=args.since, **filters)
    _emit(
        args,
        rows,
        _table(
            rows,
            (
                "time",
                "request_id",
                "endpoint",
                "model",
                "items",
                "tokens",
                "cached",
                "latency_ms",
                "status",
                "error_code",
                "key_id",
            ),
        ),
    )
    return 0


# ---------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from classer_local.server.app import ServerConfig, serve
    except ImportError as exc:
        raise CliError(f"the server needs its extra: pip install 'classer-local[server]' ({exc})") from None
    config = ServerConfig(
        auth=not args.no_auth,
        rpm=args.rpm,
        tpm=args.tpm,
        batch_wait_ms=args.batch_wait_ms,
        batch_max_items=args.batch_max_items,
        preload=[x for x in (args.preload or "").split(",") if x],
    )
    if args.host not in ("127.0.0.1", "localhost", "::1") and args.no_auth:
        print("warning: serving without authentication on a non-loopback address", file=sys.stderr)
    serve(args.host, args.port, config, log_level=args.log_level)
    return 0


# ---------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from classer_local.api import get_classifier

    rows = [r for _, r in _read_ndjson(args.data)]
    rows = [r for r in rows if isinstance(r.get("text"), str) and isinstance(r.get("label"), str)]
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        raise CliError(f"{args.data}: no rows with string text and label")
    labels = _labels(args) or sorted({r["label"] for r in rows})
    unknown = sorted({r["label"] for r in rows} - set(labels))
    if unknown:
        raise CliError(f"the data has labels not in --label: {unknown}")
    clf = get_classifier(
        labels,
        descriptions=_descriptions(args.description),
        text_type=args.text_type,
        priority=args.priority,
        model=args.model,
        truncate=args.truncate,
        classifier=args.classifier,
    )
    preds: list[str] = []
    conf: list[float] = []
    with tqdm(total=len(rows), unit="row", disable=args.no_progress or None, file=sys.stderr) as bar:
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            for r in clf.classify([x["text"] for x in chunk], cache=not args.no_cache):
                preds.append(r.label)
                conf.append(r.confidence)
            bar.update(len(chunk))
    y = [r["label"] for r in rows]
    report = _metrics(y, preds, conf, clf.labels, args.bins)
    if args.plot:
        _reliability_plot(report["reliability"], args.plot, title=f"{Path(args.data).name} ({clf.spec.name})")
        report["plot"] = args.plot
    lines = [
        f"rows: {len(rows)}  labels: {len(clf.labels)}  model: {clf.spec.name}",
        f"accuracy: {report['accuracy']:.4f}  macro-F1: {report['macro_f1']:.4f}  ECE: {report['ece']:.4f}",
        "",
        "confusion matrix (rows: true, columns: predicted)",
    ]
    width = max(6, *(len(lb) for lb in clf.labels))
    lines.append(" " * (width + 2) + "  ".join(lb[:width].rjust(width) for lb in clf.labels))
    for lb, row in zip(clf.labels, report["confusion_matrix"]):
        lines.append(lb[:width].ljust(width + 2) + "  ".join(str(v).rjust(width) for v in row))
    lines.append("")
    lines.append(
        _table(
            [{"label": lb, **m} for lb, m in report["per_label"].items()],
            ("label", "precision", "recall", "f1", "support"),
        )
    )
    if args.plot:
        lines.append(f"\nreliability diagram -> {args.plot}")
    _emit(args, report, "\n".join(lines))
    return 0


def _metrics(
    y: list[str], preds: list[str], conf: list[float], labels: list[str], bins: int
) -> dict[str, Any]:
    import numpy as np

    index = {lb: i for i, lb in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y, preds):
        cm[index[t], index[p]] += 1
    per_label = {}
    f1s = []
    for i, lb in enumerate(labels):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        support = int(cm[i, :].sum())
        per_label[lb] = {
            "precision": round(float(prec), 4),
            "recall": round(float(rec), 4),
            "f1": round(float(f1), 4),
            "support": support,
        }
        if support:
            f1s.append(f1)
    correct = np.array([t == p for t, p in zip(y, preds)], dtype=float)
    c = np.array(conf, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(c, edges[1:-1], right=True), 0, bins - 1)
    reliability, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        acc = float(correct[mask].mean()) if n else None
        mean_conf = float(c[mask].mean()) if n else None
        if n:
            ece += n / len(c) * abs(acc - mean_conf)  # type: ignore[operator]
        reliability.append(
            {
                "lo": round(float(edges[b]), 4),
                "hi": round(float(edges[b + 1]), 4),
                "count": n,
                "accuracy": None if acc is None else round(acc, 4),
                "confidence": None if mean_conf is None else round(mean_conf, 4),
            }
        )
    return {
        "rows": len(y),
        "labels": labels,
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
        "ece": round(ece, 4),
        "confusion_matrix": cm.tolist(),
        "per_label": per_label,
        "reliability": reliability,
    }


def _reliability_plot(bins: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
    width = bins[0]["hi"] - bins[0]["lo"]
    acc = [b["accuracy"] or 0.0 for b in bins]
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    hist.bar(centers, [b["count"] for b in bins], width=width * 0.95, color="#dd8452", edgecolor="black")
    hist.set_xlabel("confidence")
    hist.set_ylabel("count")
    hist.set_xlim(0, 1)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="classer-local", description="Offline text, image and document classification."
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for name, help_ in (("classify", "pick the best label"), ("tag", "every label above a threshold")):
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("text", nargs="?", help="the text; '-' or omitted reads stdin")
        c.add_argument("--file", help="a PDF or DOCX")
        c.add_argument("--image", action="append", help="an image (repeat for several)")
        _add_labels(c)
        if name == "tag":
            c.add_argument("--threshold", type=float, help="minimum confidence (default 0.5)")
        c.add_argument("-v", "--verbose", action="store_true", help="print every label's score")
        _add_json(c)
        c.set_defaults(func=cmd_classify)

    b = sub.add_parser("batch", help="classify an NDJSON file")
    bsub = b.add_subparsers(dest="batch_command", metavar="SUBCOMMAND", required=True)
    br = bsub.add_parser("run", help='score every row of in.ndjson ({"text": ...} per line)')
    br.add_argument("input", help="input NDJSON ('-' for stdin)")
    br.add_argument("-o", "--output", help="output NDJSON (default stdout)")
    br.add_argument("--kind", choices=["classify", "tag"], default="classify")
    br.add_argument("--threshold", type=float, help="tag threshold")
    br.add_argument("--chunk-size", type=int, default=256)
    br.add_argument("--no-progress", action="store_true")
    br.add_argument("--keep-job", action="store_true", help="keep the job (see `jobs list`) after writing")
    _add_labels(br)
    _add_json(br)
    br.set_defaults(func=cmd_batch_run)

    j = sub.add_parser("jobs", help="asynchronous batch jobs")
    jsub = j.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)
    for name in ("list", "get", "start", "results", "delete"):
        jp = jsub.add_parser(name, help=f"{name} job(s)")
        if name != "list":
            jp.add_argument("id")
        if name == "start":
            jp.add_argument("--wait", action="store_true", help="block until it finishes")
        if name == "results":
            jp.add_argument("-o", "--output")
        _add_json(jp)
        jp.set_defaults(func=cmd_jobs)
    jr = jsub.add_parser("run", help="create a job over IN and run it now (locally, or on Ray with --engine ray)")
    jr.add_argument("input", help="input NDJSON; with --engine ray also a folder or a quoted glob")
    jr.add_argument("-o", "--output", help="write the results here too (a file, or a folder/ for results.ndjson)")
    jr.add_argument("--kind", choices=["classify", "tag"], default="classify")
    jr.add_argument("--threshold", type=float, help="tag threshold")
    jr.add_argument("--chunk-size", type=int, default=256)
    jr.add_argument("--engine", choices=["local", "ray"], default="local")
    jr.add_argument("--address", help="Ray cluster: auto, HOST:PORT or ray://HEAD:10001 (default: a local Ray)")
    jr.add_argument("--workers", type=int, help="Ray actors (default: the cluster's CPUs, or GPUs)")
    jr.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per Ray actor (e.g. 1, or 0.5)")
    jr.add_argument("--batch-size", type=int, help="rows per Ray worker call (default: --chunk-size)")
    jr.add_argument("--no-progress", action="store_true")
    _add_labels(jr)
    _add_json(jr)
    jr.set_defaults(func=cmd_jobs_run)

    cf = sub.add_parser("classifiers", help="saved, versioned classifiers")
    csub = cf.add_subparsers(dest="classifiers_command", metavar="SUBCOMMAND", required=True)
    cc = csub.add_parser("create", help="fit and save a classifier (from a JSON/YAML spec and/or flags)")
    cc.add_argument("name")
    cc.add_argument(
        "--spec", help="JSON or YAML: labels, descriptions, examples, text_type, model, threshold"
    )
    cc.add_argument("-l", "--label", action="append", default=[])
    cc.add_argument("--labels")
    cc.add_argument("--description", action="append", default=[], metavar="LABEL=TEXT")
    cc.add_argument("--example", action="append", default=[], metavar="LABEL=TEXT")
    cc.add_argument("--examples-file", help='NDJSON rows {"text", "label"}')
    cc.add_argument("--text-type")
    cc.add_argument("--model", help="standard, fast or a model name")
    cc.add_argument("--threshold", type=float)
    cc.add_argument("--truncate", choices=["NONE", "START", "END"])
    cc.add_argument("--no-calibrate", action="store_true")
    _add_json(cc)
    cl_ = csub.add_parser("list", help="saved classifiers (latest versions; with NAME, all its versions)")
    cl_.add_argument("name", nargs="?")
    _add_json(cl_)
    for name in ("get", "delete"):
        cp = csub.add_parser(name, help=f"{name} a saved classifier (NAME or NAME@vN)")
        cp.add_argument("ref")
        _add_json(cp)
    for cp in (cc, cl_, *csub.choices.values()):
        cp.set_defaults(func=cmd_classifiers)

    m = sub.add_parser("models", help="models in models.toml")
    msub = m.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    ml = msub.add_parser("list", help="every model and whether it is installed")
    _add_json(ml)
    ml.set_defaults(func=cmd_models)

    k = sub.add_parser("keys", help="server API keys (admin)")
    ksub = k.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    kc = ksub.add_parser("create", help="create a key (printed once)")
    kc.add_argument("--name", required=True)
    kc.add_argument("--quota", type=int, help="token budget (default unlimited)")
    kc.add_argument("--rpm", type=int, help="requests/min (default: the server's; 0 unlimited)")
    kc.add_argument("--tpm", type=int, help="tokens/min (default: the server's; 0 unlimited)")
    kc.add_argument("--admin", action="store_true", help="may create keys and read all usage")
    kl = ksub.add_parser("list", help="keys (never their secrets)")
    ku = ksub.add_parser("update", help="change a key's quota or limits (-1 clears)")
    ku.add_argument("id")
    ku.add_argument("--quota", type=int)
    ku.add_argument("--rpm", type=int)
    ku.add_argument("--tpm", type=int)
    ku.add_argument("--reset-used", action="store_true", help="set used tokens back to 0")
    kr = ksub.add_parser("revoke", help="revoke a key")
    kr.add_argument("id")
    for kp in (kc, kl, ku, kr):
        _add_json(kp)
        kp.set_defaults(func=cmd_keys)

    u = sub.add_parser("usage", help="usage totals and groups")
    u.add_argument("--since")
    u.add_argument("--until")
    u.add_argument(
        "--group-by", default="day", choices=["day", "hour", "month", "endpoint", "model", "key_id", "none"]
    )
    u.add_argument("--endpoint")
    u.add_argument("--model")
    u.add_argument("--key-id")
    _add_json(u)
    u.set_defaults(func=cmd_usage)

    lg = sub.add_parser("logs", help="recent requests, newest first")
    lg.add_argument("--limit", type=int, default=20)
    lg.add_argument("--since")
    lg.add_argument("--endpoint")
    lg.add_argument("--status", choices=["ok", "error"])
    lg.add_argument("--key-id")
    _add_json(lg)
    lg.set_defaults(func=cmd_logs)

    s = sub.add_parser("serve", help="run the HTTP server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--no-auth", action="store_true", help="no API keys (local development only)")
    s.add_argument("--rpm", type=int, default=600, help="default requests/min per key (0: unlimited)")
    s.add_argument("--tpm", type=int, default=0, help="default tokens/min per key (0: unlimited)")
    s.add_argument(
        "--batch-wait-ms", type=float, default=2.0, help="how long a lone request waits for company"
    )
    s.add_argument("--batch-max-items", type=int, default=256, help="most inputs in one model call")
    s.add_argument("--preload", help="models to load at start, e.g. standard,fast")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)

    e = sub.add_parser("eval", help="accuracy, macro-F1, confusion matrix and reliability diagram")
    e.add_argument("data", help='JSONL rows {"text", "label"}')
    e.add_argument("--plot", help="write a reliability diagram PNG here")
    e.add_argument("--bins", type=int, default=10)
    e.add_argument("--limit", type=int, help="use the first N rows")
    e.add_argument("--no-progress", action="store_true")
    _add_labels(e)
    _add_json(e)
    e.set_defaults(func=cmd_eval)
    return p


def _version() -> str:
    from classer_local import __version__

    return f"classer-local {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"classer-local: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from classer_local.errors import ClasserError, InvalidRequestError

        if not isinstance(exc, ClasserError):
            raise
        if getattr(args, "json", False):
            _print_json(exc.to_dict())
        print(f"classer-local: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, InvalidRequestError) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
