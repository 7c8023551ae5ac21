"""Async batch jobs: NDJSON in, NDJSON results out, streamed and resumable. ``classer_local.jobs``.

Each input line is ``{"id": ..., "text": ...}`` (or ``"image"`` / ``"file"``); each result
line is the call's ``to_dict()`` plus ``"id"`` (the line's id, or its 0-based row number
when it has none), in input order. A bad line gets ``{"id": ..., "error": {...}}`` and the
job goes on. Files under ``CLASSER_HOME/jobs/<job_id>/``::

    job.json        spec and status (created / running / completed / failed / cancelled)
    input.ndjson    the input, when copied (a path given to ``create`` is referenced)
    results.ndjson  one line per input line
    progress.json   checkpoint: input offset, rows done, results size, processed, failed
    heartbeat       touched every few seconds while running (with job.json's pid)
    cancel          present when a cancel was asked for

A chunk of results is written, flushed and fsynced before the checkpoint that covers it
is replaced atomically; a resume truncates the results to the checkpoint and seeks the
input to it, so after a crash (even ``kill -9``) no row is lost or written twice.

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
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from . import config, validation
from .classifier import Classifier, Item, Priority, Truncate
from .errors import ClasserError, ConflictError, InvalidRequestError, NotFoundError, ServerError

try:
    import fcntl
except ImportError:  # Windows: state changes are serialised in-process only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "STATUSES", "Job", "cancel", "create", "delete", "get", "list", "max_running", "resume", "start",
]

STATUSES = ("created", "running", "completed", "failed", "cancelled")
KINDS = ("classify", "tag")
ENGINES = ("local", "ray")
DEFAULT_CHUNK = 256
HEARTBEAT_S = 2.0
STALE_AFTER_S = 30.0  # a "running" job whose heartbeat is older than this is orphaned
CHECKPOINT_EVERY_S = 0.25  # an fsync + atomic replace costs ~5 ms: not after every small chunk
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")

# Jobs running in this process: job folder -> stop event.
_running: dict[str, threading.Event] = {}
_threads: dict[str, threading.Thread] = {}
_running_lock = threading.Lock()


def max_running() -> int:
    """The most jobs one process runs at once (``CLASSER_MAX_RUNNING_JOBS``, default 2)."""
    try:
        return max(1, int(os.environ.get("CLASSER_MAX_RUNNING_JOBS", "2")))
    except ValueError:
        return 2


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _root() -> Path:
    return config.subdir("jobs")


# ---------------------------------------------------------------------- small durable files
def _write_json(path: Path, data: dict[str, Any], sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class _FileLock:
    """An flock on ``<job>/.lock`` around state changes that other processes may race."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        if fcntl is not None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------- input lines
def _count_rows(path: Path) -> int:
    """Non-blank lines, streamed (a 5 GB file never sits in memory)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.isspace():
                n += 1
    return n


def _bad_line(row: int, code: str, message: str, **details: Any) -> InvalidRequestError:
    return InvalidRequestError(code, f"Line {row + 1}: {message}", {"row": row, **details})


def _parse_line(raw: bytes, row: int) -> tuple[Any, Item | ClasserError]:
    """(id, Item) for a good line, (id, error) for a bad one."""
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError:
        return row, _bad_line(row, "line_invalid_utf8", "is not valid UTF-8.")
    except json.JSONDecodeError as exc:
        return row, _bad_line(row, "line_invalid_json", f"is not valid JSON ({exc.msg}).", column=exc.colno)
    if not isinstance(obj, dict):
        return row, _bad_line(row, "line_invalid", f"must be a JSON object, got {type(obj).__name__}.")
    rid = obj.get("id", row)
    text, image, file = obj.get("text"), obj.get("image"), obj.get("file")
    try:
        if image is None and file is None:
            if text is None:
                raise _bad_line(row, "input_required", 'needs "text", "image" or "file".')
            validation.text(text)
        elif text is not None and not isinstance(text, str):
            validation.text(text)
    except InvalidRequestError as exc:
        return rid, InvalidRequestError(exc.code, exc.message if exc.message.startswith("Line ")
                                        else f"Line {row + 1}: {exc.message}", {**exc.details, "row": row})
    return rid, Item(text=text, image=image, file=file)


def _dump(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# ---------------------------------------------------------------------- Job
class Job:
    """A batch job on disk. Status properties read the files each time, so they are live.

    Example:
        >>> job = create("in.ndjson", labels=["a", "b"], priority="fast")  # doctest: +SKIP
        >>> job.start(wait=False); job.wait().status                      # doctest: +SKIP
        'completed'
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.id = self.path.name

    # -------------------------------------------------------------- files
    @property
    def _job_file(self) -> Path:
        return self.path / "job.json"

    @property
    def _progress_file(self) -> Path:
        return self.path / "progress.json"

    @property
    def results_path(self) -> Path:
        return self.path / "results.ndjson"

    def _spec(self) -> dict[str, Any]:
        try:
            return _read_json(self._job_file)
        except FileNotFoundError:
            raise NotFoundError("job_not_found", f"No job {self.id!r}.", {"job_id": self.id}) from None

    def _progress(self) -> dict[str, Any]:
        try:
            return _read_json(self._progress_file)
        except FileNotFoundError:
            return {"input_offset": 0, "rows_done": 0, "results_size": 0, "processed": 0, "failed": 0}

    @property
    def input_path(self) -> Path:
        return Path(self._spec()["input"]["path"])

    # -------------------------------------------------------------- status
    def _heartbeat_age(self) -> float | None:
        try:
            return time.time() - os.stat(self.path / "heartbeat").st_mtime
        except FileNotFoundError:
            return None

    def _orphaned(self, spec: dict[str, Any], claimed: bool = False) -> bool:
        """``claimed``: the caller holds this job's slot in ``_running`` and runs nothing yet."""
        if spec["status"] != "running":
            return False
        if str(self.path) in _running and not claimed:
            return False
        owner = spec.get("owner") or {}
        if owner.get("host") == socket.gethostname() and owner.get("pid") == os.getpid():
            return True  # marked ours, but no runner of ours is on it
        if owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", 0) or 0)):
            return True
        age = self._heartbeat_age()
        return age is None or age > STALE_AFTER_S

    def to_dict(self) -> dict[str, Any]:
        """Status as a JSON-able dict: what ``cl.jobs.get`` and the server report."""
        spec = self._spec()
        prog = self._progress()
        out = {
            "id": self.id,
            "object": "job",
            "status": spec["status"],
            "kind": spec["kind"],
            "classifier": spec.get("classifier"),
            "labels": spec.get("labels"),
            "model": spec.get("model"),
            "priority": spec.get("priority"),
            "engine": spec.get("engine") or "local",
            "processed": prog.get("processed", 0),
            "failed": prog.get("failed", 0),
            "total": spec.get("total"),
            "created_at": spec.get("created_at"),
            "started_at": spec.get("started_at"),
            "finished_at": spec.get("finished_at"),
            "error": spec.get("error"),
            "orphaned": self._orphaned(spec),
            "input": spec["input"]["path"],
            "results": str(self.results_path),
        }
        return out

    @property
    def status(self) -> str:
        return str(self._spec()["status"])

    @property
    def processed(self) -> int:
        return int(self._progress().get("processed", 0))

    @property
    def failed(self) -> int:
        return int(self._progress().get("failed", 0))

    @property
    def total(self) -> int | None:
        return self._spec().get("total")

    @property
    def created_at(self) -> str | None:
        return self._spec().get("created_at")

    @property
    def started_at(self) -> str | None:
        return self._spec().get("started_at")

    @property
    def finished_at(self) -> str | None:
        return self._spec().get("finished_at")

    @property
    def error(self) -> dict[str, Any] | None:
        return self._spec().get("error")

    @property
    def orphaned(self) -> bool:
        """Marked running, but the process running it is gone: ``start()`` resumes it."""
        return self._orphaned(self._spec())

    def __repr__(self) -> str:
        try:
            d = self.to_dict()
        except NotFoundError:
            return f"Job(id={self.id!r}, deleted)"
        return f"Job(id={self.id!r}, status={d['status']!r}, processed={d['processed']}, total={d['total']})"

    def _set(self, **changes: Any) -> dict[str, Any]:
        spec = self._spec()
        spec.update(changes)
        _write_json(self._job_file, spec)
        return spec

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
            with _FileLock(self.path / ".lock"):
                spec = self._spec()
                status = spec["status"]
                if status == "completed":
                    self._release()
                    return self
                if status == "cancelled":
                    raise ConflictError("job_cancelled", f"Job {self.id} was cancelled.", {"job_id": self.id})
                if status == "running" and not self._orphaned(spec, claimed=True):
                    raise ConflictError("job_running", f"Job {self.id} is running in another process.",
                                        {"job_id": self.id, "owner": spec.get("owner")})
                self._check_input(spec)
                (self.path / "heartbeat").touch()
                self._set(status="running", error=None, finished_at=None,
                          started_at=spec.get("started_at") or _now(),
                          owner={"pid": os.getpid(), "host": socket.gethostname()})
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

    def _check_input(self, spec: dict[str, Any]) -> None:
        for inp in spec["input"].get("files") or [spec["input"]]:  # "files": a Ray job's glob or folder
            self._check_file(inp)

    def _check_file(self, inp: dict[str, Any]) -> None:
        try:
            st = os.stat(inp["path"])
        except FileNotFoundError:
            raise NotFoundError("job_input_missing", f"The input of job {self.id} is gone: {inp['path']}.",
                                {"job_id": self.id, "input": inp["path"]}) from None
        if st.st_size != inp["size"] or st.st_mtime_ns != inp["mtime_ns"]:
            raise ConflictError(
                "job_input_changed",
                f"The input of job {self.id} changed since the job was created: {inp['path']}.",
                {"job_id": self.id, "input": inp["path"], "size": inp["size"], "now_size": st.st_size},
            )

    def wait(self, timeout: float | None = None) -> Job:
        """Block until a background run of this job in this process ends (or ``timeout``)."""
        t = _threads.get(str(self.path))
        if t is not None:
            t.join(timeout)
        return self

    def cancel(self, wait: bool = True, timeout: float = 60.0) -> Job:
        """Stop the job after its current chunk; results so far stay readable."""
        (self.path / "cancel").touch()
        stop = _running.get(str(self.path))
        if stop is not None:
            stop.set()
        with _FileLock(self.path / ".lock"):
            spec = self._spec()
            if spec["status"] in ("created", "failed") or self._orphaned(spec):
                self._set(status="cancelled", finished_at=_now())
                return self
        if wait and spec["status"] == "running":
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                spec = self._spec()
                if spec["status"] != "running" or self._orphaned(spec):
                    break
                time.sleep(0.05)
        return self

    def delete(self) -> None:
        """Remove the job's folder (cancelling it first when it runs in this process)."""
        if str(self.path) in _running:
            self.cancel()
            self.wait()
        with _FileLock(self.path / ".lock"):
            spec = self._spec()
            if spec["status"] == "running" and not self._orphaned(spec) and str(self.path) not in _running:
                raise ConflictError("job_running",
                                    f"Job {self.id} is running in another process; cancel it first.",
                                    {"job_id": self.id})
            trash = self.path.with_name(f".trash-{self.id}-{uuid.uuid4().hex[:8]}")
            os.rename(self.path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def results(self) -> Iterator[dict[str, Any]]:
        """The result lines written so far (all of them once completed), in input order."""
        size = int(self._progress().get("results_size", 0))
        try:
            fh = open(self.results_path, "rb")
        except FileNotFoundError:
            return
        with fh:
            done = 0
            while done < size:
                line = fh.readline()
                if not line:
                    break
                done += len(line)
                yield json.loads(line)

    # -------------------------------------------------------------- the runner
    def _classifier(self, spec: dict[str, Any]) -> Classifier:
        from .api import get_classifier

        return get_classifier(spec.get("labels"), descriptions=spec.get("descriptions"),
                              examples=spec.get("examples"), text_type=spec.get("text_type"),
                              priority=spec.get("priority") or "standard", model=spec.get("model"),
                              device=spec.get("device") or "auto", truncate=spec.get("truncate"),
                              classifier=spec.get("classifier"))

    def _run(self, stop: threading.Event, progress: bool) -> None:
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(beat_stop,), name=f"classer-beat-{self.id}",
                                daemon=True)
        beat.start()
        final: dict[str, Any] = {}
        try:
            final = self._process(stop, progress)
        except ClasserError as exc:
            final = {"status": "failed", "error": exc.to_dict()}
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised below
            err = ServerError("job_crashed", f"Job {self.id} stopped: {type(exc).__name__}: {exc}",
                              {"job_id": self.id, "exception": type(exc).__name__})
            final = {"status": "failed", "error": err.to_dict()}
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt / SystemExit: recorded as failed (resumable) in finally
        finally:
            beat_stop.set()
            try:
                with _FileLock(self.path / ".lock"):
                    if self._job_file.exists():
                        self._set(**final, finished_at=_now(), owner=None)
            finally:
                self._release()

    def _beat(self, done: threading.Event) -> None:
        hb = self.path / "heartbeat"
        while not done.wait(HEARTBEAT_S):
            try:
                os.utime(hb)
            except FileNotFoundError:
                return

    def _process(self, stop: threading.Event, progress: bool) -> dict[str, Any]:
        spec = self._spec()
        if spec.get("engine") == "ray":
            from . import ray_engine

            return ray_engine.process(self, stop, progress)
        clf = self._classifier(spec)
        kind, threshold = spec["kind"], spec.get("threshold")
        chunk_size = int(spec.get("chunk_size") or DEFAULT_CHUNK)
        prog = self._progress()
        total = spec.get("total")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=prog["rows_done"], unit="row", desc=self.id)
        cancel_flag = self.path / "cancel"
        try:
            with open(self.input_path, "rb") as src, open(self.results_path, "a+b") as out:
                # Anything past the checkpoint is from a run that died before recording it.
                out.truncate(prog["results_size"])
                out.seek(prog["results_size"])
                src.seek(prog["input_offset"])
                offset, rows = prog["input_offset"], prog["rows_done"]
                processed, failed = prog["processed"], prog["failed"]
                last_checkpoint = time.monotonic()
                while True:
                    if stop.is_set() or cancel_flag.exists():
                        self._checkpoint(out, offset, rows, processed, failed)
                        return {"status": "cancelled"}
                    lines: builtins.list[tuple[int, bytes]] = []
                    while len(lines) < chunk_size:
                        raw = src.readline()
                        if not raw:
                            break
                        offset += len(raw)
                        if raw.isspace():
                            continue
                        lines.append((rows, raw))
                        rows += 1
                    if not lines:
                        break
                    block, n_failed = self._score_chunk(clf, kind, threshold, lines)
                    out.write(block)
                    processed += len(lines)
                    failed += n_failed
                    if bar is not None:
                        bar.update(len(lines))
                    if time.monotonic() - last_checkpoint >= CHECKPOINT_EVERY_S:
                        self._checkpoint(out, offset, rows, processed, failed)
                        last_checkpoint = time.monotonic()
                self._checkpoint(out, offset, rows, processed, failed)
        finally:
            if bar is not None:
                bar.close()
        if total != processed:  # blank lines or an input that was appended to: report what was done
            self._set(total=processed)
        return {"status": "completed", "error": None}

    def _checkpoint(self, out: IO[bytes], offset: int, rows: int, processed: int, failed: int) -> None:
        """Make the results so far durable, then record how far they go (never the other way round)."""
        out.flush()
        os.fsync(out.fileno())
        state = {"input_offset": offset, "rows_done": rows, "results_size": out.tell(),
                 "processed": processed, "failed": failed}
        _write_json(self._progress_file, state)

    @staticmethod
    def _score_chunk(clf: Classifier, kind: str, threshold: float | None,
                     lines: builtins.list[tuple[int, bytes]]) -> tuple[bytes, int]:
        """One NDJSON block for ``(row, raw line)`` pairs, and how many are errors (Ray workers too)."""
        ids: builtins.list[Any] = []
        parsed: builtins.list[Item | ClasserError] = []
        for row, raw in lines:
            rid, item = _parse_line(raw, row)
            ids.append(rid)
            parsed.append(item)
        good = [i for i, p in enumerate(parsed) if isinstance(p, Item)]
        outcome: dict[int, dict[str, Any] | ClasserError] = {
            i: p for i, p in enumerate(parsed) if isinstance(p, ClasserError)}
        if good:
            items = [parsed[i] for i in good]
            try:
                results = Job._score(clf, kind, threshold, items)  # type: ignore[arg-type]
                for i, r in zip(good, results):
                    outcome[i] = r.to_dict()
            except ClasserError as exc:
                if isinstance(exc, ServerError):
                    raise  # the model or the machine, not one input: fail the job (resumable)
                for i in good:  # isolate the bad rows
                    try:
                        one_item: builtins.list[Item] = [parsed[i]]  # type: ignore[list-item]
                        outcome[i] = Job._score(clf, kind, threshold, one_item)[0].to_dict()
                    except ServerError:
                        raise
                    except ClasserError as one:
                        outcome[i] = one
        buf = io.BytesIO()
        n_failed = 0
        for i, rid in enumerate(ids):
            res = outcome[i]
            if isinstance(res, ClasserError):
                n_failed += 1
                err = res.to_dict()
                err["details"] = {**err["details"], "row": lines[i][0]}
                buf.write(_dump({"id": rid, "error": err}))
            else:
                buf.write(_dump({"id": rid, **res}))
        return buf.getvalue(), n_failed

    @staticmethod
    def _score(clf: Classifier, kind: str, threshold: float | None,
               items: builtins.list[Item]) -> builtins.list[Any]:
        if kind == "tag":
            return clf.tag_items(items, threshold=threshold, cache=False)
        return clf.classify_items(items, cache=False)


# ---------------------------------------------------------------------- module API
def _new_id() -> str:
    return "job_" + uuid.uuid4().hex[:24]


def _job_dir(job_id: str) -> Path:
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise InvalidRequestError("job_id_invalid", f"Invalid job id {job_id!r}.", {"job_id": str(job_id)})
    return _root() / job_id


def _copy_input(source: Any, dest: Path) -> None:
    """Write ``source`` (a file object, or an iterable of dicts / NDJSON lines) to ``dest``."""
    with open(dest, "wb") as out:
        if hasattr(source, "read"):
            while True:
                block = source.read(1 << 20)
                if not block:
                    break
                out.write(block.encode("utf-8") if isinstance(block, str) else block)
        else:
            for row in source:
                if isinstance(row, (bytes, bytearray)):
                    line = bytes(row)
                elif isinstance(row, str):
                    line = row.encode("utf-8")
                else:
                    line = json.dumps(row, ensure_ascii=False).encode("utf-8")
                out.write(line if line.endswith(b"\n") else line + b"\n")
        out.flush()
        os.fsync(out.fileno())


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
    from . import ray_engine

    ray_engine.require_ray()  # fail at create, not at start
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


def create(
    input: str | os.PathLike[str] | IO[Any] | Iterable[Mapping[str, Any]],  # noqa: A002 - the API's name
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
) -> Job:
    """A new job over an NDJSON input; ``start()`` runs it.

    ``input`` is a path (referenced in place, or copied with ``copy=True``), a binary or text
    file object, or an iterable of dicts (both copied). Give ``labels`` (plus descriptions,
    examples, ...) or a saved ``classifier`` (``"name"`` is pinned to its latest version now).
    ``kind`` is ``"classify"`` or ``"tag"``; ``threshold`` applies to tag.

    ``engine="ray"`` runs the job on a Ray cluster (``pip install 'classer-local[ray]'``;
    see ``classer_local.ray_engine``): ``address`` (``None``: a Ray on this machine,
    ``"auto"``, ``"ray://head:10001"``), ``num_workers`` actors (default: the cluster's CPUs,
    or GPUs / ``gpus_per_worker``), ``gpus_per_worker`` GPUs each, ``batch_size`` rows per
    worker call (default ``chunk_size``). Its input may also be a glob or a folder.

    Example:
        >>> job = create([{"id": 1, "text": "refund please"}], labels=["billing", "technical"],
        ...              priority="fast")   # doctest: +SKIP
        >>> job.start().processed           # doctest: +SKIP
        1
    """
    kind = str(getattr(kind, "value", kind))
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
    priority = str(getattr(priority, "value", priority) or "standard")
    truncate = getattr(truncate, "value", truncate)
    ray_opts = _engine_options(engine, address, num_workers, gpus_per_worker, batch_size)
    if classifier is not None:
        from . import store

        classifier = store.resolve(classifier)
        store.load(classifier, device=device)  # fails now, not in the runner, if its model changed
    else:
        if labels is None and not examples:
            raise InvalidRequestError("labels_required",
                                      "labels (or examples, or a saved classifier) is required.")
        # Validates labels, descriptions, examples, model and truncate without embedding anything.
        Classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                   priority=priority, model=model, device=device, truncate=truncate)
    job_id = _new_id()
    root = _root()
    tmp = root / f".tmp-{job_id}"
    tmp.mkdir()
    try:
        files: builtins.list[Path] | None = None
        if engine == "ray" and isinstance(input, (str, os.PathLike)) and not copy:
            from . import ray_engine

            files = ray_engine.expand_inputs(input)
            path, copied = (files[0] if len(files) == 1 else Path(os.path.expanduser(input))), False
        elif isinstance(input, (str, os.PathLike)):
            src = Path(input).expanduser().resolve()
            if not src.is_file():
                raise NotFoundError("job_input_missing", f"Input file not found: {src}.", {"input": str(src)})
            if copy:
                shutil.copyfile(src, tmp / "input.ndjson")
                path, copied = root / job_id / "input.ndjson", True
            else:
                path, copied = src, False
        else:
            _copy_input(input, tmp / "input.ndjson")
            path, copied = root / job_id / "input.ndjson", True
        here = [tmp / "input.ndjson" if copied else path] if files is None else files
        stats = [os.stat(f) for f in here]
        total = sum(_count_rows(f) for f in here)
        inp: dict[str, Any] = {"path": str(path), "copied": copied, "size": sum(st.st_size for st in stats),
                               "mtime_ns": max(st.st_mtime_ns for st in stats)}
        if engine == "ray":
            inp["files"] = [{"path": str(root / job_id / "input.ndjson" if copied else f), "size": st.st_size,
                             "mtime_ns": st.st_mtime_ns} for f, st in zip(here, stats)]
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
            "total": total,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "error": None,
            "owner": None,
        }
        _write_json(tmp / "job.json", spec)
        os.rename(tmp, root / job_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Job(root / job_id)


def get(job_id: str) -> Job:
    """The job ``job_id``; raises ``NotFoundError`` (``job_not_found``) when there is none.

    Example:
        >>> get(job.id).status  # doctest: +SKIP
        'running'
    """
    path = _job_dir(job_id)
    if not (path / "job.json").exists():
        raise NotFoundError("job_not_found", f"No job {job_id!r}.", {"job_id": job_id})
    return Job(path)


def list(status: str | None = None) -> builtins.list[Job]:  # noqa: A001 - cl.jobs.list()
    """Every job, newest first; ``status`` keeps only jobs in that state.

    Example:
        >>> [j.id for j in list(status="running")]  # doctest: +SKIP
        []
    """
    root = _root()
    jobs = []
    for entry in os.listdir(root):
        if entry.startswith("."):
            continue
        job = Job(root / entry)
        try:
            spec = job._spec()
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
    return get(job_id).cancel()


def delete(job_id: str) -> None:
    get(job_id).delete()
