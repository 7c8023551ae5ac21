"""Durable small files: atomic JSON writes with fsync, JSON reads, and an inter-process file lock.

Jobs (``classer_local.jobs``) and saved classifiers (``classer_local.store``) keep their state
in small JSON files that other processes read while one writes. A writer never leaves a torn
file: it writes a temporary sibling, fsyncs it, renames it over the target (``os.replace`` is
atomic on POSIX and Windows) and, when asked, fsyncs the folder so the rename itself survives
a power cut. JSON is written strictly (``allow_nan=False``): a NaN would make the file
unreadable to every strict reader.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(d / "state.json", {"rows": 3})
    >>> read_json(d / "state.json")
    {'rows': 3}
    >>> with locked(d / ".lock"):
    ...     write_json(d / "state.json", {"rows": 4})
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: locks serialise this process's threads only
    fcntl = None  # type: ignore[assignment]

__all__ = ["fsync_dir", "locked", "read_json", "write_bytes", "write_json"]

# Without fcntl, one in-process lock per lock-file path stands in for flock.
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (not atomic: for files nobody reads yet)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | os.PathLike[str], data: Any, *, sync: bool = True, sync_dir: bool = False,
               default: Callable[[Any], Any] | None = None) -> None:
    """Replace ``path`` with ``data`` as strict JSON, atomically: readers see the old or the new file.

    ``sync`` fsyncs the file before the rename (skip it only for state that may be lost);
    ``sync_dir`` also fsyncs the folder after it. Raises ``ValueError`` for NaN or infinity.
    """
    target = Path(path)
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=default)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        fsync_dir(target.parent)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; ``FileNotFoundError`` when there is none."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@contextmanager
def locked(path: str | os.PathLike[str], *, create_parent: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created when missing) until the block ends.

    Between processes this is ``flock``. A lock file can be swapped away while we wait for it
    (its folder renamed to be deleted, or replaced): then the lock is taken again on the file
    now at ``path``, so two holders never hold two different files. ``create_parent`` makes the
    folder when it is missing; otherwise a missing folder raises ``FileNotFoundError``.
    """
    lock_path = Path(path)
    if fcntl is None:
        if create_parent:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        elif not lock_path.parent.is_dir():
            raise FileNotFoundError(str(lock_path.parent))
        with _local_locks_guard:
            lock = _local_locks.setdefault(str(lock_path.resolve()), threading.Lock())
        with lock:
            yield
        return
    while True:
        if create_parent:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if create_parent:
                continue  # the folder went away between mkdir and open
            raise
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        if not create_parent and not lock_path.parent.is_dir():
            raise FileNotFoundError(str(lock_path.parent))
    try:
        yield
    finally:
        os.close(fd)  # releases the flock
