"""A job's folder on disk: its spec, checkpoint, heartbeat and cancel flag, and the lock around them.

Files under ``CLASSER_HOME/jobs/<job_id>/``::

    job.json        spec and status (created / running / completed / failed / cancelled)
    input.ndjson    the input, when copied (a path given to ``create`` is referenced)
    results.ndjson  one line per input line
    progress.json   checkpoint: input offset, rows done, results size, processed, failed
    heartbeat       touched every few seconds while running (with job.json's ``runner`` pid)
    cancel          present when a cancel was asked for
    .lock           flock taken around status changes that other processes may race

A chunk of results is written, flushed and fsynced before the checkpoint that covers it is
replaced atomically (``Checkpoint.save``), so the checkpoint never points past durable results.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .. import config, durable
from ..errors import ConflictError, InvalidRequestError, NotFoundError

__all__ = [
    "HEARTBEAT_S", "STALE_AFTER_S", "STATUSES", "Checkpoint", "JobFiles", "copy_input", "count_rows",
    "job_dir", "new_id", "now", "root",
]

STATUSES = ("created", "running", "completed", "failed", "cancelled")
HEARTBEAT_S = 2.0
STALE_AFTER_S = 30.0  # a "running" job whose heartbeat is older than this is orphaned
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def root() -> Path:
    return config.subdir("jobs")


def new_id() -> str:
    return "job_" + uuid.uuid4().hex[:24]


def job_dir(job_id: str) -> Path:
    """The folder of ``job_id``; refuses ids that could name anything outside the jobs folder."""
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise InvalidRequestError("job_id_invalid", f"Invalid job id {job_id!r}.", {"job_id": str(job_id)[:200]})
    return root() / job_id


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def this_runner() -> dict[str, Any]:
    """Who runs a job: recorded in ``job.json`` so another process can tell when it died."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


@dataclass
class Checkpoint:
    """How far a job got: results up to ``results_size`` bytes cover input rows up to ``rows_done``.

    ``input_offset`` is the byte offset of the next unread line of a one-file input (the local
    engine seeks to it; the Ray engine skips ``rows_done`` rows instead and leaves it at 0).
    """

    input_offset: int = 0
    rows_done: int = 0
    results_size: int = 0
    processed: int = 0
    failed: int = 0

    def save(self, path: Path, out: IO[bytes]) -> None:
        """Make ``out`` durable, then record this checkpoint (never the other way round)."""
        out.flush()
        os.fsync(out.fileno())
        self.results_size = out.tell()
        durable.write_json(path, asdict(self))


def count_rows(path: str | os.PathLike[str]) -> int:
    """Non-blank lines, streamed (a 5 GB file never sits in memory)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.isspace():
                n += 1
    return n


def copy_input(source: Any, dest: Path) -> None:
    """Write ``source`` (a file object, or an iterable of dicts / NDJSON lines) to ``dest``, fsynced.

    Text that UTF-8 cannot encode (a lone surrogate) is written as its ``\\uXXXX`` escape, so
    its row, not ``create``, reports it.
    """
    with open(dest, "wb") as out:
        if hasattr(source, "read"):
            while True:
                block = source.read(1 << 20)
                if not block:
                    break
                out.write(block.encode("utf-8", "backslashreplace") if isinstance(block, str) else block)
        else:
            rows: Iterable[Any] = source
            for row in rows:
                if isinstance(row, (bytes, bytearray)):
                    line = bytes(row)
                else:
                    # A lone surrogate ("\ud800") becomes its JSON escape: the job reports it on its row.
                    text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)
                    line = text.encode("utf-8", "backslashreplace")
                out.write(line if line.endswith(b"\n") else line + b"\n")
        out.flush()
        os.fsync(out.fileno())


class JobFiles:
    """The files of one job folder. Every read goes to disk, so what it returns is live."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.id = self.path.name
        self.job_file = self.path / "job.json"
        self.progress_file = self.path / "progress.json"
        self.results_path = self.path / "results.ndjson"
        self.heartbeat_path = self.path / "heartbeat"
        self.cancel_path = self.path / "cancel"

    # -------------------------------------------------------------- state
    def spec(self) -> dict[str, Any]:
        """``job.json``; ``NotFoundError`` (``job_not_found``) once the job is deleted."""
        try:
            spec = durable.read_json(self.job_file)
        except FileNotFoundError:
            raise NotFoundError("job_not_found", f"No job {self.id!r}.", {"job_id": self.id}) from None
        if not isinstance(spec, dict) or "status" not in spec:
            raise ValueError(f"{self.job_file} is not a job spec")
        return spec

    def progress(self) -> Checkpoint:
        try:
            state = durable.read_json(self.progress_file)
        except FileNotFoundError:
            return Checkpoint()
        return Checkpoint(**{k: int(state.get(k, 0)) for k in Checkpoint.__dataclass_fields__})

    def update(self, **changes: Any) -> dict[str, Any]:
        """Change fields of ``job.json`` (hold ``lock()`` when another process may race)."""
        spec = self.spec()
        spec.update(changes)
        durable.write_json(self.job_file, spec)
        return spec

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The job's lock; ``NotFoundError`` when the job is deleted while we wait for it."""
        held = durable.locked(self.path / ".lock")
        try:
            held.__enter__()
        except FileNotFoundError:
            raise NotFoundError("job_not_found", f"No job {self.id!r}.", {"job_id": self.id}) from None
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    def checkpoint(self, out: IO[bytes], cp: Checkpoint) -> None:
        cp.save(self.progress_file, out)

    # -------------------------------------------------------------- liveness
    def heartbeat_age(self) -> float | None:
        try:
            return time.time() - os.stat(self.heartbeat_path).st_mtime
        except FileNotFoundError:
            return None

    def beat(self, done: threading.Event) -> None:
        """Touch the heartbeat every ``HEARTBEAT_S`` until ``done`` (run in a thread)."""
        while not done.wait(HEARTBEAT_S):
            try:
                os.utime(self.heartbeat_path)
            except FileNotFoundError:
                return

    def orphaned(self, spec: dict[str, Any], *, running_here: bool) -> bool:
        """Marked running, but nobody runs it: its process is gone or its heartbeat is stale.

        ``running_here``: this process holds the job's slot (a runner of ours is on it, or is
        about to be).
        """
        if spec["status"] != "running":
            return False
        if running_here:
            return False
        runner = spec.get("runner")
        if runner is None and isinstance(spec.get("owner"), dict):  # job.json before "owner" meant the key
            runner = spec["owner"]
        runner = runner or {}
        if runner.get("host") == socket.gethostname():
            if runner.get("pid") == os.getpid():
                return True  # marked ours, but no runner of ours is on it
            if not pid_alive(int(runner.get("pid", 0) or 0)):
                return True
        age = self.heartbeat_age()
        return age is None or age > STALE_AFTER_S

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    # -------------------------------------------------------------- input and results
    def check_input(self, spec: dict[str, Any]) -> None:
        """Refuse to run over an input that is gone or changed since ``create`` (rows would shift)."""
        for inp in spec["input"].get("files") or [spec["input"]]:  # "files": a Ray job's glob or folder
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

    def results(self) -> Iterator[dict[str, Any]]:
        """The result lines covered by the checkpoint, in input order."""
        size = self.progress().results_size
        try:
            with open(self.results_path, "rb") as fh:
                done = 0
                while done < size:
                    line = fh.readline()
                    if not line:
                        break
                    done += len(line)
                    yield json.loads(line)
        except FileNotFoundError:  # not started yet, or deleted
            return
