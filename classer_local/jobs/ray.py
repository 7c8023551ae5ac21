"""Batch jobs on a Ray cluster (Ray Data), with the local engine's results. ``classer_local.jobs.ray``.

``cl.jobs.create(..., engine="ray")`` runs here; everything else about the job (its folder,
``job.json`` status, ``progress.json`` checkpoints, ``results.ndjson``, cancel, resume) is
``engine.process``'s, as for the local engine. How a run goes::

    driver   build the classifier once -> get_state() -> ray.put (shipped once)
             index the input(s): ranges of ``batch_size`` lines (path, byte span, first row)
    workers  map_batches(_Scorer, concurrency=N, num_gpus=G): each actor runs
             Classifier.from_state once (one model load per actor), reads its ranges and
             scores them with ``lines.score_chunk``, as the local engine does
             -> one NDJSON block per range
    driver   yields the blocks in input order (preserve_order) to ``engine.process``,
             which appends and checkpoints them; usage is recorded here, once per block

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
import os
import threading
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from ..classifier import Classifier
from ..errors import ClasserError, ConflictError, NotFoundError, ServerError
from . import engine
from .engine import Block
from .files import Checkpoint, JobFiles
from .lines import Chunk, score_chunk

__all__ = ["INPUT_SUFFIXES", "RayEngine", "expand_inputs", "plan", "process", "require_ray"]

INPUT_SUFFIXES = (".ndjson", ".jsonl", ".json")  # the files a folder input contributes
MAX_RESTARTS = 4  # a lost actor is restarted (then its unfinished batches retried) this many times
MAX_TASK_RETRIES = 4
MAX_BLOCKS = 20_000  # dataset blocks for the range index: small enough for Ray's bookkeeping
_INSTALL = "pip install 'classer-local[ray]'"
_CHUNK_FIELDS = ("rows", "failed", "scored", "tokens", "visual_tokens", "ms", "data")
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

    def __init__(self, state: list[Any], kind: str, threshold: float | None, device: str,
                 allow_paths: bool = True, adapt: bool = False, language: str | None = None) -> None:
        import ray

        from .. import usagelog

        config, arrays = ray.get(state[0])
        usagelog.set_enabled(False)  # the driver records usage, once, in the job's CLASSER_HOME
        # Untrusted rows reach the classifier as bytes or URLs only (lines.parse_line), never a path.
        self.clf = Classifier.from_state(config, arrays, device=device, allow_paths=allow_paths)
        self.clf.embedder  # noqa: B018 - load the model now: once per actor, not on the first batch
        self.kind, self.threshold, self.allow_paths, self.adapt = kind, threshold, allow_paths, adapt
        self.language = language

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in ("row0", *_CHUNK_FIELDS)}
        for i in range(len(batch["row0"])):
            lines = _read_range(str(batch["path"][i]), int(batch["start"][i]), int(batch["end"][i]),
                                int(batch["row0"][i]), int(batch["n"][i]))
            lines = lines[int(batch["skip"][i]):]
            chunk = score_chunk(self.clf, self.kind, self.threshold, lines, allow_paths=self.allow_paths,
                                adapt=self.adapt, language=self.language)
            out["row0"].append(lines[0][0])
            for key in _CHUNK_FIELDS:
                out[key].append(getattr(chunk, key))
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


class RayEngine:
    """Ranges of the input(s) scored on Ray actors, yielded in input order."""

    def blocks(self, job: JobFiles, spec: dict[str, Any], clf: Classifier, start: Checkpoint) -> Iterator[Block]:
        from .. import usagelog

        ray = _connect(spec.get("address"))
        kind = spec["kind"]
        batch_size = int(spec.get("batch_size") or spec.get("chunk_size") or engine.DEFAULT_CHUNK)
        gpus = float(spec.get("gpus_per_worker") or 0)
        files = [f["path"] for f in spec["input"].get("files") or [spec["input"]]]
        ranges, rows_total = plan(files, batch_size, skip_rows=start.rows_done)
        rows = start.rows_done
        if ranges:
            state_ref = ray.put(clf.get_state())  # shipped once; every actor gets the same object
            recs = _ranges_scored(ray, ranges, _workers(ray, spec.get("num_workers"), gpus), gpus, state_ref,
                                  {"kind": kind, "threshold": spec.get("threshold"),
                                   "device": spec.get("device") or "auto",
                                   "allow_paths": bool(spec.get("allow_paths", True)),
                                   "adapt": bool(spec.get("adapt", False)),
                                   "language": spec.get("language")})
            try:
                for rec in recs:
                    chunk = Chunk(data=bytes(rec["data"]), rows=int(rec["rows"]), failed=int(rec["failed"]),
                                  scored=int(rec["scored"]), tokens=int(rec["tokens"]),
                                  visual_tokens=int(rec["visual_tokens"]), ms=float(rec["ms"]))
                    if chunk.scored:
                        usagelog.record(endpoint=f"{kind}_batch", model=clf.spec_.name, labels=len(clf.labels_),
                                        items=chunk.scored, tokens=chunk.tokens,
                                        visual_tokens=chunk.visual_tokens, latency_ms=chunk.ms,
                                        key_id=spec.get("owner"))
                    rows += chunk.rows
                    yield Block(row0=int(rec["row0"]), chunk=chunk)
            finally:
                recs.close()
        if rows != rows_total:
            raise ServerError("job_rows_missing", f"Ray returned {rows} of {rows_total} rows.",
                              {"job_id": job.id, "rows": rows, "expected": rows_total})


def process(job: JobFiles, stop: threading.Event, progress: bool) -> dict[str, Any]:
    """Run ``job`` on Ray from its checkpoint (``Job.start`` calls this for ``engine="ray"``).

    Resumes like the local engine: results past the checkpoint are cut, rows before it are
    not read again.
    """
    return engine.process(RayEngine(), job, stop, progress)


def _ray_version(ray: Any) -> tuple[int, int]:
    try:
        major, minor = ray.__version__.split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, ValueError):
        return (0, 0)


def _ranges_scored(ray: Any, ranges: list[dict[str, Any]], workers: int, gpus: float, state_ref: Any,
                   scorer_kwargs: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
    """The scored ranges, one record each, in input order; worker errors come out typed."""
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
                    fn_constructor_kwargs={"state": [state_ref], **scorer_kwargs},
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
