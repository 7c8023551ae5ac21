"""Batch jobs on a Ray cluster (Ray Data), with the local engine's results. ``classer_local.ray_engine``.

``cl.jobs.create(..., engine="ray")`` runs here; everything else about the job (its folder,
``job.json`` status, ``progress.json`` checkpoints, ``results.ndjson``, cancel, resume) is
the local engine's. How a run goes::

    driver   build the classifier once -> get_state() -> ray.put (shipped once)
             index the input(s): ranges of ``batch_size`` lines (path, byte span, first row)
    workers  map_batches(_Scorer, concurrency=N, num_gpus=G): each actor runs
             Classifier.from_state once (one model load per actor), reads its ranges and
             scores them with the local engine's own parsing and scoring (jobs._parse_line,
             Job._score_chunk) -> one NDJSON block per range
    driver   iterates the blocks in input order (preserve_order), appends them to
             results.ndjson and checkpoints, exactly as the local engine does

Workers read the input by path, so on a multi-node cluster it must be on storage every
node mounts at the same path (NFS, a shared volume); a local Ray needs nothing. Ray is
imported only when a Ray job runs: without it, ``require_ray()`` raises
``ServerError("dependency_missing")``.

Example:
    >>> import classer_local as cl
    >>> job = cl.jobs.create("data/*.ndjson", classifier="support-tickets@v2",
    ...                      engine="ray", address="auto")   # doctest: +SKIP
    >>> job.start().status                                    # doctest: +SKIP
    'completed'
"""

from __future__ import annotations

import glob
import io
import json
import os
import threading
import time
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClasserError, ConflictError, NotFoundError, ServerError

if TYPE_CHECKING:
    from .jobs import Job

__all__ = ["INPUT_SUFFIXES", "expand_inputs", "plan", "process", "require_ray"]

INPUT_SUFFIXES = (".ndjson", ".jsonl", ".json")  # the files a folder input contributes
MAX_RESTARTS = 4  # a lost actor is restarted (then its unfinished batches retried) this many times
MAX_TASK_RETRIES = 4
MAX_BLOCKS = 20_000  # dataset blocks for the range index: small enough for Ray's bookkeeping
_INSTALL = "pip install 'classer-local[ray]'"
_context_lock = threading.Lock()


def require_ray() -> Any:
    """The ``ray`` module, or ``ServerError("dependency_missing")`` saying how to install it.

    Example:
        >>> ray = require_ray()   # doctest: +SKIP
    """
    try:
        import ray
        import ray.data  # the [data] extra, not only ray core
    except ImportError as exc:
        raise ServerError(
            "dependency_missing",
            f"engine='ray' needs Ray Data, which is not installed: {_INSTALL}.",
            {"package": "ray[data]", "install": _INSTALL, "reason": str(exc)},
        ) from None
    return ray


# ---------------------------------------------------------------------- inputs
def expand_inputs(source: str | os.PathLike[str]) -> list[Path]:
    """The files a Ray job reads: one file, a folder's NDJSON files, or a glob; sorted by name.

    Rows are numbered across the files in that order (a line without ``"id"`` gets its
    global row number, as in a one-file job).

    Example:
        >>> expand_inputs("data/part-*.ndjson")   # doctest: +SKIP
        [PosixPath('/data/part-000.ndjson'), PosixPath('/data/part-001.ndjson')]
    """
    raw = os.path.expanduser(os.fspath(source))
    path = Path(raw)
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = [p for p in path.iterdir()
                 if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in INPUT_SUFFIXES]
    elif glob.has_magic(raw):
        files = [Path(p) for p in glob.glob(raw, recursive=True) if os.path.isfile(p)]
    else:
        files = []
    if not files:
        what = "folder holds no " + "/".join(INPUT_SUFFIXES) + " files" if path.is_dir() else "matches no file"
        raise NotFoundError("job_input_missing", f"Input {raw} {what}.", {"input": raw})
    return sorted({p.resolve() for p in files}, key=str)


def plan(files: list[str], batch_size: int, skip_rows: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Index the input: ranges of ``batch_size`` non-blank lines, and the row count.

    Each range is ``{"path", "start", "end", "row0", "n", "skip"}`` (a byte span of one
    file, its first global row, its rows, rows to skip when resuming). The driver reads
    lines only to find their ends; workers read and parse them. Ranges wholly before
    ``skip_rows`` are left out.
    """
    ranges: list[dict[str, Any]] = []
    row = 0
    for path in files:
        with open(path, "rb") as fh:
            offset = start = 0
            row0, n = row, 0
            for raw in fh:
                offset += len(raw)
                if raw.isspace():
                    continue
                n += 1
                row += 1
                if n == batch_size:
                    ranges.append({"path": path, "start": start, "end": offset, "row0": row0, "n": n})
                    start, row0, n = offset, row, 0
            if n:
                ranges.append({"path": path, "start": start, "end": offset, "row0": row0, "n": n})
    todo = []
    for r in ranges:
        if r["row0"] + r["n"] <= skip_rows:
            continue
        r["skip"] = max(0, skip_rows - r["row0"])
        todo.append(r)
    return todo, row


# ---------------------------------------------------------------------- workers
class _Scorer:
    """A Ray Data actor: the job's classifier, rebuilt once from its state, scoring ranges."""

    def __init__(self, state: list[Any], kind: str, threshold: float | None, device: str) -> None:
        import ray

        from . import usagelog
        from .classifier import Classifier

        config, arrays = ray.get(state[0])
        usagelog.set_enabled(False)  # the driver records usage, once, in the job's CLASSER_HOME
        self.clf = Classifier.from_state(config, arrays, device=device)
        self.clf.embedder  # noqa: B018 - load the model now: once per actor, not on the first batch
        self.kind, self.threshold = kind, threshold

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from .jobs import Job

        out: dict[str, list[Any]] = {k: [] for k in ("row0", "n", "failed", "tokens", "visual_tokens",
                                                      "ms", "block")}
        for i in range(len(batch["row0"])):
            lines = _read_range(str(batch["path"][i]), int(batch["start"][i]), int(batch["end"][i]),
                                int(batch["row0"][i]), int(batch["n"][i]))
            lines = lines[int(batch["skip"][i]):]
            t0 = time.perf_counter()
            block, n_failed = Job._score_chunk(self.clf, self.kind, self.threshold, lines)
            ms = (time.perf_counter() - t0) * 1000
            tokens = vtokens = 0
            for line in block.splitlines():
                rec = json.loads(line)
                tokens += int(rec.get("tokens") or 0)
                vtokens += int(rec.get("visual_tokens") or 0)
            for key, value in (("row0", lines[0][0]), ("n", len(lines)), ("failed", n_failed),
                               ("tokens", tokens), ("visual_tokens", vtokens), ("ms", ms), ("block", block)):
                out[key].append(value)
        return out


def _read_range(path: str, start: int, end: int, row0: int, n: int) -> list[tuple[int, bytes]]:
    """(row, raw line) for the non-blank lines of a byte span, split as the local engine's readline."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines: list[tuple[int, bytes]] = []
    for raw in io.BytesIO(data):
        if not raw.isspace():
            lines.append((row0 + len(lines), raw))
    if len(lines) != n or len(data) != end - start:
        raise ConflictError("job_input_changed", f"The input changed while the job ran: {path}.",
                            {"input": path})
    return lines


# ---------------------------------------------------------------------- driver
def _connect(address: str | None) -> Any:
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        if address is None and not os.environ.get("RAY_ADDRESS"):
            ray.init(include_dashboard=False, logging_level="WARNING")  # a Ray on this machine
        else:
            ray.init(address=address, logging_level="WARNING")
    except Exception as exc:  # noqa: BLE001 - any failure to reach the cluster is the same to the caller
        raise ServerError("ray_unavailable", f"Could not start or reach Ray at {address or 'local'}: {exc}",
                          {"address": address, "exception": type(exc).__name__}) from None
    return ray


def _workers(ray: Any, num_workers: int | None, gpus_per_worker: float) -> int:
    if num_workers:
        return int(num_workers)
    res = ray.cluster_resources()
    if gpus_per_worker > 0:
        return max(1, int(res.get("GPU", 0) // gpus_per_worker))
    return max(1, int(res.get("CPU", 1)))


def _unwrap(exc: BaseException) -> ClasserError | None:
    """The ClasserError a worker raised, from inside Ray's wrappers."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ClasserError):
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def process(job: Job, stop: threading.Event, progress: bool) -> dict[str, Any]:
    """Run ``job`` on Ray (``Job.start`` calls this for ``engine="ray"``); returns the final status.

    Resumes from the job's checkpoint like the local engine: results past it are cut,
    rows before it are not read again.
    """
    from . import usagelog

    spec = job._spec()
    ray = _connect(spec.get("address"))
    clf = job._classifier(spec)
    kind, threshold = spec["kind"], spec.get("threshold")
    batch_size = int(spec.get("batch_size") or spec.get("chunk_size") or 256)
    gpus = float(spec.get("gpus_per_worker") or 0)
    files = [f["path"] for f in spec["input"].get("files") or [spec["input"]]]
    prog = job._progress()
    processed, failed = prog["processed"], prog["failed"]
    ranges, rows_total = plan(files, batch_size, skip_rows=prog["rows_done"])
    workers = _workers(ray, spec.get("num_workers"), gpus)
    state_ref = ray.put(clf.get_state())  # shipped once; every actor gets the same object
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.get("total"), initial=prog["rows_done"], unit="row", desc=job.id)
    cancel_flag = job.path / "cancel"
    expected = prog["rows_done"]
    try:
        with open(job.results_path, "a+b") as out:
            out.truncate(prog["results_size"])
            out.seek(prog["results_size"])
            last_checkpoint = time.monotonic()
            if ranges:
                blocks = _blocks(ray, ranges, workers, gpus, state_ref, kind, threshold,
                                 spec.get("device") or "auto")
                try:
                    for rec in blocks:
                        if stop.is_set() or cancel_flag.exists():
                            job._checkpoint(out, 0, expected, processed, failed)
                            return {"status": "cancelled"}
                        row0, n = int(rec["row0"]), int(rec["n"])
                        if row0 != expected:  # never write a row twice or leave a gap
                            raise ServerError("job_rows_out_of_order",
                                              f"Ray returned rows from {row0}, expected {expected}.",
                                              {"job_id": job.id, "row": row0, "expected": expected})
                        out.write(rec["block"])
                        expected += n
                        processed += n
                        failed += int(rec["failed"])
                        if n > int(rec["failed"]):
                            usagelog.record(endpoint=f"{kind}_batch", model=clf.spec.name,
                                            labels=len(clf.labels), items=n - int(rec["failed"]),
                                            tokens=int(rec["tokens"]), visual_tokens=int(rec["visual_tokens"]),
                                            latency_ms=float(rec["ms"]))
                        if bar is not None:
                            bar.update(n)
                        if time.monotonic() - last_checkpoint >= _checkpoint_every():
                            job._checkpoint(out, 0, expected, processed, failed)
                            last_checkpoint = time.monotonic()
                finally:
                    blocks.close()
            job._checkpoint(out, 0, expected, processed, failed)
    finally:
        if bar is not None:
            bar.close()
    if expected != rows_total:
        raise ServerError("job_rows_missing", f"Ray returned {expected} of {rows_total} rows.",
                          {"job_id": job.id, "rows": expected, "expected": rows_total})
    if spec.get("total") != processed:
        job._set(total=processed)
    return {"status": "completed", "error": None}


def _ray_version(ray: Any) -> tuple[int, int]:
    try:
        major, minor = ray.__version__.split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, ValueError):
        return (0, 0)


def _checkpoint_every() -> float:
    from .jobs import CHECKPOINT_EVERY_S

    return CHECKPOINT_EVERY_S


def _blocks(ray: Any, ranges: list[dict[str, Any]], workers: int, gpus: float, state_ref: Any, kind: str,
            threshold: float | None, device: str) -> Generator[dict[str, Any], None, None]:
    """The scored blocks, one per range, in input order; worker errors come out typed."""
    from ray.data import ActorPoolStrategy, DataContext

    extra: dict[str, Any] = {"num_gpus": gpus} if gpus > 0 else {}
    if _ray_version(ray) < (2, 64):
        # Bounded, so a batch that kills its worker every time fails the job instead of looping;
        # Ray Data >= 2.64 drops these options and restarts and retries without bound.
        extra.update(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)

    with _context_lock:  # the context is process-wide; the dataset keeps a copy of it
        ctx = DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        try:
            ds = ray.data.from_items(ranges, override_num_blocks=min(len(ranges), MAX_BLOCKS))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # max_restarts as a remote arg
                ds = ds.map_batches(
                    _Scorer, batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=workers),
                    num_cpus=1,
                    # Nested, so the actor borrows the driver's one copy instead of owning an argument.
                    fn_constructor_kwargs={"state": [state_ref], "kind": kind, "threshold": threshold,
                                           "device": device},
                    **extra,
                )
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
    try:
        yield from ds.iter_rows()
    except ClasserError:
        raise
    except Exception as exc:
        typed = _unwrap(exc)
        if typed is not None:
            raise typed from None
        raise ServerError("ray_failed", f"The Ray job failed: {type(exc).__name__}: {exc}",
                          {"exception": type(exc).__name__}) from exc

