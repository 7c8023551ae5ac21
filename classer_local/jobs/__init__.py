"""Async batch jobs: NDJSON in, NDJSON results out, streamed and resumable. ``classer_local.jobs``.

Each input line is ``{"id": ..., "text": ...}`` (or ``"image"`` / ``"file"``); each result
line is the call's ``to_dict()`` plus ``"id"`` (the line's id, or its 0-based row number
when it has none or an unusable one), in input order. A line that cannot be parsed, checked
or scored gets ``{"id": ..., "error": {...}}`` and the job goes on. A crash (even ``kill -9``)
loses and doubles nothing: ``start()`` resumes from the last checkpoint.

The package, by concern::

    __init__  Job and the verbs (create/get/list/start/resume/cancel/delete); who runs what here
    files     the job folder: job.json, progress.json checkpoints, heartbeat, cancel flag, lock
    lines     parse + score one chunk of lines into result lines (both engines use it)
    engine    the Engine protocol and the one progress/cancel/checkpoint loop
    local     the local engine (this process)
    ray       the Ray engine (Ray Data actors), imported only for engine="ray"

Example:
    >>> import classer_local as cl
    >>> job = cl.jobs.create("tickets.ndjson", labels=["billing", "technical"])  # doctest: +SKIP
    >>> job.start().status                                                      # doctest: +SKIP
    'completed'
    >>> next(job.results())["label"]                                            # doctest: +SKIP
    'billing'
"""

from __future__ import annotations

import builtins
import contextvars
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .. import durable, validation
from ..classifier import Classifier
from ..errors import ClasserError, ConflictError, InvalidRequestError, NotFoundError, ServerError
from ..options import ClassifierOptions, Priority, Truncate, value
from .engine import DEFAULT_CHUNK
from .files import STATUSES, JobFiles, copy_input, count_rows, job_dir, new_id, now, root, this_runner

__all__ = [
    "STATUSES", "Job", "cancel", "create", "delete", "get", "list", "max_running", "resume", "start",
]

KINDS = ("classify", "tag")
ENGINES = ("local", "ray")
MAX_OWNER_CHARS = 200

# Jobs running in this process: job folder -> stop event, and the thread of a background run.
_running: dict[str, threading.Event] = {}
_threads: dict[str, threading.Thread] = {}
_running_lock = threading.Lock()


def max_running() -> int:
    """The most jobs one process runs at once (``CLASSER_MAX_RUNNING_JOBS``, default 2)."""
    try:
        return max(1, int(os.environ.get("CLASSER_MAX_RUNNING_JOBS", "2")))
    except ValueError:
        return 2


def _engine_process(name: str) -> Any:
    """The engine's ``process(job_files, stop, progress)``; Ray's module is imported only for Ray jobs."""
    if name == "ray":
        from . import ray

        return ray.process
    from . import local

    return local.process


class Job:
    """A batch job on disk. Status properties read the files each time, so they are live.

    Example:
        >>> job = create("in.ndjson", labels=["a", "b"], priority="fast")  # doctest: +SKIP
        >>> job.start(wait=False); job.wait().status                      # doctest: +SKIP
        'completed'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.files = JobFiles(path)
        self.path = self.files.path
        self.id = self.files.id
        self.results_path = self.files.results_path

    # -------------------------------------------------------------- status
    @property
    def input_path(self) -> Path:
        return Path(self.files.spec()["input"]["path"])

    def _running_here(self) -> bool:
        return str(self.path) in _running

    def to_dict(self) -> dict[str, Any]:
        """Status as a JSON-able dict: what ``cl.jobs.get`` and the server report."""
        spec = self.files.spec()
        prog = self.files.progress()
        owner = spec.get("owner")
        return {
            "id": self.id,
            "object": "job",
            "status": spec["status"],
            "kind": spec["kind"],
            "classifier": spec.get("classifier"),
            "labels": spec.get("labels"),
            "model": spec.get("model"),
            "priority": spec.get("priority"),
            "engine": spec.get("engine") or "local",
            "owner": owner if isinstance(owner, str) else None,
            "processed": prog.processed,
            "failed": prog.failed,
            "total": spec.get("total"),
            "created_at": spec.get("created_at"),
            "started_at": spec.get("started_at"),
            "finished_at": spec.get("finished_at"),
            "error": spec.get("error"),
            "orphaned": self.files.orphaned(spec, running_here=self._running_here()),
            "input": spec["input"]["path"],
            "results": str(self.results_path),
        }

    @property
    def status(self) -> str:
        return str(self.files.spec()["status"])

    @property
    def owner(self) -> str | None:
        """The key id that created the job (the server's), or ``None`` for an in-process job."""
        owner = self.files.spec().get("owner")
        return owner if isinstance(owner, str) else None

    @property
    def processed(self) -> int:
        return self.files.progress().processed

    @property
    def failed(self) -> int:
        return self.files.progress().failed

    @property
    def total(self) -> int | None:
        return self.files.spec().get("total")

    @property
    def created_at(self) -> str | None:
        return self.files.spec().get("created_at")

    @property
    def started_at(self) -> str | None:
        return self.files.spec().get("started_at")

    @property
    def finished_at(self) -> str | None:
        return self.files.spec().get("finished_at")

    @property
    def error(self) -> dict[str, Any] | None:
        return self.files.spec().get("error")

    @property
    def orphaned(self) -> bool:
        """Marked running, but the process running it is gone: ``start()`` resumes it."""
        return self.files.orphaned(self.files.spec(), running_here=self._running_here())

    def __repr__(self) -> str:
        try:
            d = self.to_dict()
        except NotFoundError:
            return f"Job(id={self.id!r}, deleted)"
        return f"Job(id={self.id!r}, status={d['status']!r}, processed={d['processed']}, total={d['total']})"

    # -------------------------------------------------------------- verbs
    def start(self, wait: bool = True, progress: bool = False) -> Job:
        """Run (or resume) the job: in this thread with ``wait=True``, else in a background thread.

        Raises ``ConflictError``: ``too_many_running_jobs`` past ``max_running()`` in this
        process, ``job_running`` when it already runs, ``job_cancelled`` once cancelled.
        A completed job returns at once.
        """
        key = str(self.path)
        stop = threading.Event()
        with _running_lock:
            if key in _running:
                raise ConflictError("job_running", f"Job {self.id} is already running.", {"job_id": self.id})
            limit = max_running()
            if len(_running) >= limit:
                raise ConflictError(
                    "too_many_running_jobs",
                    f"{len(_running)} jobs are running in this process; the limit is {limit} "
                    "(CLASSER_MAX_RUNNING_JOBS). Wait for one to finish.",
                    {"running": len(_running), "limit": limit},
                )
            _running[key] = stop
        try:
            with self.files.lock():
                spec = self.files.spec()
                status = spec["status"]
                if status == "completed":
                    self._release()
                    return self
                if status == "cancelled":
                    raise ConflictError("job_cancelled", f"Job {self.id} was cancelled.", {"job_id": self.id})
                # We hold the slot but run nothing yet: only another process can be running it.
                if status == "running" and not self.files.orphaned(spec, running_here=False):
                    raise ConflictError("job_running", f"Job {self.id} is running in another process.",
                                        {"job_id": self.id, "runner": spec.get("runner")})
                self.files.check_input(spec)
                self.files.heartbeat_path.touch()
                owner = spec.get("owner")  # a dict here is a runner from before "owner" meant the key
                self.files.update(status="running", error=None, finished_at=None,
                                  started_at=spec.get("started_at") or now(), runner=this_runner(),
                                  owner=owner if isinstance(owner, str) else None)
        except BaseException:
            self._release()
            raise
        if wait:
            self._run(stop, progress)
        else:
            # The caller's context goes with the job (the server's API key lands on its usage rows).
            ctx = contextvars.copy_context()
            t = threading.Thread(target=ctx.run, args=(self._run, stop, progress), name=f"classer-job-{self.id}",
                                 daemon=True)
            with _running_lock:
                _threads[key] = t
            t.start()
        return self

    resume = start

    def _release(self) -> None:
        with _running_lock:
            _running.pop(str(self.path), None)
            _threads.pop(str(self.path), None)

    def wait(self, timeout: float | None = None) -> Job:
        """Block until a background run of this job in this process ends (or ``timeout``)."""
        t = _threads.get(str(self.path))
        if t is not None:
            t.join(timeout)
        return self

    def cancel(self, wait: bool = True, timeout: float = 60.0) -> Job:
        """Stop the job after its current chunk; results so far stay readable."""
        self.files.cancel_path.touch()
        stop = _running.get(str(self.path))
        if stop is not None:
            stop.set()
        with self.files.lock():
            spec = self.files.spec()
            if spec["status"] in ("created", "failed") or self.files.orphaned(spec, running_here=self._running_here()):
                self.files.update(status="cancelled", finished_at=now())
                return self
        if wait and spec["status"] == "running":
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                spec = self.files.spec()
                if spec["status"] != "running" or self.files.orphaned(spec, running_here=self._running_here()):
                    break
                time.sleep(0.05)
        return self

    def delete(self) -> None:
        """Remove the job's folder (cancelling it first when it runs in this process)."""
        if self._running_here():
            self.cancel()
            self.wait()
        with self.files.lock():
            spec = self.files.spec()
            if (spec["status"] == "running" and not self._running_here()
                    and not self.files.orphaned(spec, running_here=False)):
                raise ConflictError("job_running",
                                    f"Job {self.id} is running in another process; cancel it first.",
                                    {"job_id": self.id})
            trash = self.path.with_name(f".trash-{self.id}-{uuid.uuid4().hex[:8]}")
            os.rename(self.path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def results(self) -> Iterator[dict[str, Any]]:
        """The result lines written so far (all of them once completed), in input order."""
        return self.files.results()

    # -------------------------------------------------------------- the runner
    def _run(self, stop: threading.Event, progress: bool) -> None:
        beat_stop = threading.Event()
        beat = threading.Thread(target=self.files.beat, args=(beat_stop,), name=f"classer-beat-{self.id}",
                                daemon=True)
        beat.start()
        final: dict[str, Any] = {}
        try:
            spec = self.files.spec()
            final = _engine_process(spec.get("engine") or "local")(self.files, stop, progress)
        except ClasserError as exc:
            final = {"status": "failed", "error": exc.to_dict()}
        except BaseException as exc:  # recorded, then re-raised below
            err = ServerError("job_crashed", f"Job {self.id} stopped: {type(exc).__name__}: {exc}",
                              {"job_id": self.id, "exception": type(exc).__name__})
            final = {"status": "failed", "error": err.to_dict()}
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt / SystemExit: recorded as failed (resumable) in finally
        finally:
            beat_stop.set()
            try:
                with self.files.lock():
                    if self.files.job_file.exists():
                        self.files.update(**final, finished_at=now(), runner=None)
            except NotFoundError:
                pass  # deleted while it ran
            finally:
                self._release()


# ---------------------------------------------------------------------- module API
def _engine_options(engine: str, address: str | None, num_workers: int | None, gpus_per_worker: float,
                    batch_size: int | None) -> dict[str, Any]:
    """Validate the engine and its options; the Ray ones as stored in the spec (none for local)."""
    if engine not in ENGINES:
        raise InvalidRequestError("job_engine_invalid",
                                  f"engine must be one of {builtins.list(ENGINES)}, got {engine!r}.",
                                  {"engine": str(engine)})
    if engine == "local":
        given = {k: v for k, v in (("address", address), ("num_workers", num_workers),
                                   ("gpus_per_worker", gpus_per_worker or None), ("batch_size", batch_size))
                 if v is not None}
        if given:
            raise InvalidRequestError("job_engine_option_invalid",
                                      f"{', '.join(given)} only apply to engine='ray'.", {"options": [*given]})
        return {}
    from . import ray

    ray.require_ray()  # fail at create, not at start
    if num_workers is not None and (isinstance(num_workers, bool) or int(num_workers) != num_workers
                                    or num_workers < 1):
        raise InvalidRequestError("num_workers_invalid", "num_workers must be a positive integer.",
                                  {"num_workers": num_workers})
    if not 0 <= float(gpus_per_worker) <= 64:
        raise InvalidRequestError("gpus_per_worker_invalid", "gpus_per_worker must be within [0, 64].",
                                  {"gpus_per_worker": gpus_per_worker})
    if batch_size is not None and not 1 <= int(batch_size) <= validation.MAX_BATCH:
        raise InvalidRequestError("batch_size_invalid", f"batch_size must be within [1, {validation.MAX_BATCH}].",
                                  {"batch_size": batch_size})
    return {"address": address, "num_workers": None if num_workers is None else int(num_workers),
            "gpus_per_worker": float(gpus_per_worker), "batch_size": None if batch_size is None else int(batch_size)}


def _check_owner(owner: Any) -> str | None:
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_CHARS):
        raise InvalidRequestError("job_owner_invalid",
                                  f"owner must be a key id (1 to {MAX_OWNER_CHARS} characters) or None.", {})
    return owner


def create(
    input: str | os.PathLike[str] | IO[Any] | Iterable[Mapping[str, Any]],  # the API's name
    labels: Sequence[str] | None = None,
    *,
    kind: str = "classify",
    classifier: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    threshold: float | None = None,
    truncate: Truncate | str | None = None,
    device: str = "auto",
    copy: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    engine: str = "local",
    address: str | None = None,
    num_workers: int | None = None,
    gpus_per_worker: float = 0,
    batch_size: int | None = None,
    owner: str | None = None,
    allow_paths: bool = True,
    adapt: bool = False,
    glossary: bool = True,
    ocr: bool = False,
    language: str | None = None,
) -> Job:
    """A new job over an NDJSON input; ``start()`` runs it.

    ``input`` is a path (referenced in place, or copied with ``copy=True``), a binary or text
    file object, or an iterable of dicts (both copied). Give ``labels`` (plus descriptions,
    examples, ...) or a saved ``classifier`` (``"name"`` is pinned to its latest version now),
    not both. ``kind`` is ``"classify"`` or ``"tag"``; ``threshold`` applies to tag.

    ``owner`` records the key id that made the job (the server's). ``allow_paths=False``
    marks the job untrusted: no row's ``image``/``file`` is ever read as a path on this
    machine (such rows get a ``path_not_allowed`` error row); the server passes it.
    ``adapt=True`` adapts the label prototypes to each chunk's texts (``classer_local.adapt``;
    chunks of at least ``adapt.MIN_BATCH`` rows, with its degeneracy guard). ``glossary=False``
    scores bare label names (default: labels without a description borrow the built-in ones).
    ``ocr=True`` also reads the words in rows' images (the ``ocr`` extra). ``language="auto"``
    scores the rows read as not English with the multilingual model, as ``cl.classify`` does.

    ``engine="ray"`` runs the job on a Ray cluster (``pip install 'classer-local[ray]'``;
    see ``classer_local.jobs.ray``): ``address`` (``None``: a Ray on this machine,
    ``"auto"``, ``"ray://head:10001"``), ``num_workers`` actors (default: the cluster's CPUs,
    or GPUs / ``gpus_per_worker``), ``gpus_per_worker`` GPUs each, ``batch_size`` rows per
    worker call (default ``chunk_size``). Its input may also be a glob or a folder.

    Example:
        >>> job = create([{"id": 1, "text": "refund please"}], labels=["billing", "technical"],
        ...              priority="fast")   # doctest: +SKIP
        >>> job.start().processed           # doctest: +SKIP
        1
    """
    kind = str(value(kind))
    if kind not in KINDS:
        raise InvalidRequestError("job_kind_invalid",
                                  f"kind must be one of {builtins.list(KINDS)}, got {kind!r}.",
                                  {"kind": kind})
    if threshold is not None:
        threshold = validation.threshold(threshold)
    chunk_size = int(chunk_size)
    if not 1 <= chunk_size <= validation.MAX_BATCH:
        raise InvalidRequestError("chunk_size_invalid",
                                  f"chunk_size must be within [1, {validation.MAX_BATCH}].",
                                  {"chunk_size": chunk_size})
    owner = _check_owner(owner)
    allow_paths = bool(allow_paths)
    priority = str(value(priority) or "standard")
    truncate = value(truncate)
    glossary = validation.glossary(glossary)
    ocr = validation.ocr(ocr)
    from ..api import check_language

    language = check_language(language)
    ClassifierOptions(labels=labels, descriptions=descriptions, examples=examples, text_type=text_type,
                      priority=priority, model=model, truncate=truncate, classifier=classifier,
                      glossary=glossary, ocr=ocr).validate()
    ray_opts = _engine_options(engine, address, num_workers, gpus_per_worker, batch_size)
    if classifier is not None:
        from .. import store

        classifier = store.resolve(classifier)
        store.load(classifier, device=device)  # fails now, not in the runner, if its model changed
    else:
        # Validates labels, descriptions, examples, model and truncate without embedding anything.
        Classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type, priority=priority,
                   model=model, device=device, truncate=truncate, allow_paths=allow_paths, glossary=glossary,
                   ocr=ocr)._setup()
    job_id = new_id()
    jobs_root = root()
    tmp = jobs_root / f".tmp-{job_id}"
    tmp.mkdir()
    try:
        inp = _place_input(input, engine, copy, tmp, jobs_root / job_id)
        spec = {
            "id": job_id,
            "status": "created",
            "kind": kind,
            "classifier": classifier,
            "labels": builtins.list(labels) if labels is not None and classifier is None else None,
            "descriptions": dict(descriptions or {}) if classifier is None else None,
            "examples": ({k: builtins.list(v) for k, v in (examples or {}).items()}
                         if classifier is None else None),
            "text_type": text_type,
            "priority": priority,
            "model": model,
            "threshold": threshold,
            "truncate": truncate,
            "device": device,
            "chunk_size": chunk_size,
            "engine": engine,
            **ray_opts,
            "input": inp,
            "total": inp.pop("rows"),
            "owner": owner,
            "allow_paths": allow_paths,
            "adapt": bool(adapt),
            "glossary": glossary,
            "ocr": ocr,
            "language": language,
            "created_at": now(),
            "started_at": None,
            "finished_at": None,
            "error": None,
            "runner": None,
        }
        durable.write_json(tmp / "job.json", spec)
        os.rename(tmp, jobs_root / job_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Job(jobs_root / job_id)


def _place_input(source: Any, engine: str, copy: bool, tmp: Path, final: Path) -> dict[str, Any]:
    """Reference or copy the input into the job folder being made (``tmp``, renamed to ``final``);
    returns the spec's ``input`` record (path, copied, size, mtime, files for Ray) plus its row count."""
    files: builtins.list[Path] | None = None
    if engine == "ray" and isinstance(source, (str, os.PathLike)) and not copy:
        from . import ray

        files = ray.expand_inputs(source)
        path, copied = (files[0] if len(files) == 1 else Path(os.path.expanduser(source))), False
    elif isinstance(source, (str, os.PathLike)):
        src = Path(source).expanduser().resolve()
        if not src.is_file():
            raise NotFoundError("job_input_missing", f"Input file not found: {src}.", {"input": str(src)})
        if copy:
            shutil.copyfile(src, tmp / "input.ndjson")
            path, copied = final / "input.ndjson", True
        else:
            path, copied = src, False
    else:
        copy_input(source, tmp / "input.ndjson")
        path, copied = final / "input.ndjson", True
    here = [tmp / "input.ndjson" if copied else path] if files is None else files
    stats = [os.stat(f) for f in here]
    inp: dict[str, Any] = {"path": str(path), "copied": copied, "size": sum(st.st_size for st in stats),
                           "mtime_ns": max(st.st_mtime_ns for st in stats), "rows": sum(count_rows(f) for f in here)}
    if engine == "ray":
        inp["files"] = [{"path": str(final / "input.ndjson" if copied else f), "size": st.st_size,
                         "mtime_ns": st.st_mtime_ns} for f, st in zip(here, stats)]
    return inp


def get(job_id: str) -> Job:
    """The job ``job_id``; raises ``NotFoundError`` (``job_not_found``) when there is none.

    Example:
        >>> get(job.id).status  # doctest: +SKIP
        'running'
    """
    path = job_dir(job_id)
    if not (path / "job.json").exists():
        raise NotFoundError("job_not_found", f"No job {job_id!r}.", {"job_id": job_id})
    return Job(path)


def list(status: str | None = None) -> builtins.list[Job]:  # cl.jobs.list()
    """Every job, newest first; ``status`` keeps only jobs in that state.

    Example:
        >>> [j.id for j in list(status="running")]  # doctest: +SKIP
        []
    """
    jobs_root = root()
    jobs = []
    for entry in os.listdir(jobs_root):
        if entry.startswith("."):
            continue
        job = Job(jobs_root / entry)
        try:
            spec = job.files.spec()
        except (NotFoundError, ValueError):  # being deleted, or not a job folder
            continue
        if status is None or spec["status"] == status:
            jobs.append((spec.get("created_at") or "", job))
    return [j for _, j in sorted(jobs, key=lambda t: t[0], reverse=True)]


def start(job_id: str, wait: bool = True, progress: bool = False) -> Job:
    """``get(job_id).start(...)``."""
    return get(job_id).start(wait=wait, progress=progress)


def resume(job_id: str, wait: bool = True, progress: bool = False) -> Job:
    """Continue a failed, interrupted or orphaned job from its last checkpoint."""
    return get(job_id).start(wait=wait, progress=progress)


def cancel(job_id: str) -> Job:
    """``get(job_id).cancel()``: stop after the current chunk."""
    return get(job_id).cancel()


def delete(job_id: str) -> None:
    """``get(job_id).delete()``: remove the job and its results."""
    get(job_id).delete()
