"""The local engine: the job's input read in chunks and scored in this process's model thread.

It reads ``chunk_size`` non-blank lines at a time from the checkpoint's byte offset, scores
them with ``lines.score_chunk`` and yields one block per chunk; ``engine.process`` writes and
checkpoints them. Usage rows (one per scoring call) carry the job owner's key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..classifier import Classifier
from . import engine
from .engine import Block
from .files import Checkpoint, JobFiles
from .lines import score_chunk

__all__ = ["LocalEngine", "process"]


class LocalEngine:
    """Chunks of the one input file, scored here, in order."""

    def blocks(self, job: JobFiles, spec: dict[str, Any], clf: Classifier, start: Checkpoint) -> Iterator[Block]:
        kind, threshold = spec["kind"], spec.get("threshold")
        chunk_size = int(spec.get("chunk_size") or engine.DEFAULT_CHUNK)
        allow_paths = bool(spec.get("allow_paths", True))
        owner = spec.get("owner") if isinstance(spec.get("owner"), str) else None
        offset, row = start.input_offset, start.rows_done
        with open(Path(spec["input"]["path"]), "rb") as src:
            src.seek(offset)
            while True:
                lines: list[tuple[int, bytes]] = []
                while len(lines) < chunk_size:
                    raw = src.readline()
                    if not raw:
                        break
                    offset += len(raw)
                    if raw.isspace():
                        continue
                    lines.append((row + len(lines), raw))
                if not lines:
                    return
                chunk = score_chunk(clf, kind, threshold, lines, allow_paths=allow_paths, key_id=owner,
                                    adapt=bool(spec.get("adapt", False)), language=spec.get("language"))
                yield Block(row0=row, chunk=chunk, input_offset=offset)
                row += len(lines)



def process(job: JobFiles, stop: threading.Event, progress: bool) -> dict[str, Any]:
    """Run ``job`` here from its checkpoint; returns its final status (``Job.start`` calls this)."""
    return engine.process(LocalEngine(), job, stop, progress)
