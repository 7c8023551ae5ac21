"""What an engine is, and the one loop every engine's blocks go through.

An engine turns a job's input into scored ``Block``s, in input order, from a checkpoint on
(``Engine.blocks``). ``process`` does everything else, the same for every engine: resume
(cut results past the checkpoint), stop between blocks on cancel, refuse a gap or a repeat,
append, count, tick the progress bar, checkpoint (results fsynced before the checkpoint that
covers them), and report the final status. ``local.process`` and ``ray.process`` are this
loop over their own engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..classifier import Classifier
from ..errors import ServerError
from ..options import ClassifierOptions
from .files import Checkpoint, JobFiles
from .lines import Chunk

__all__ = ["CHECKPOINT_EVERY_S", "DEFAULT_CHUNK", "Block", "Engine", "build_classifier", "process"]

DEFAULT_CHUNK = 256
CHECKPOINT_EVERY_S = 0.25  # an fsync + atomic replace costs ~5 ms: not after every small chunk


@dataclass(frozen=True)
class Block:
    """One scored chunk: its first row, its result lines and counts, and where the input resumes after it
    (a byte offset in a one-file input; 0 for engines that resume by row)."""

    row0: int
    chunk: Chunk
    input_offset: int = 0


class Engine(Protocol):
    """Scores a job's rows from ``start`` on, yielding blocks in input order."""

    def blocks(self, job: JobFiles, spec: dict[str, Any], clf: Classifier, start: Checkpoint) -> Iterator[Block]: ...


def build_classifier(spec: dict[str, Any]) -> Classifier:
    """The classifier a job's spec describes: a saved one from the store, or one built from its labels
    (through the process-wide pool, so a job reuses the prototypes of an earlier call).

    A job created untrusted (``allow_paths`` false: the server's) gets a classifier that never
    reads a path on this machine.
    """
    opts = ClassifierOptions(labels=spec.get("labels"), descriptions=spec.get("descriptions"),
                             examples=spec.get("examples"), text_type=spec.get("text_type"),
                             priority=spec.get("priority") or "standard", model=spec.get("model"),
                             truncate=spec.get("truncate"), classifier=spec.get("classifier"),
                             glossary=spec.get("glossary", True) is not False, ocr=spec.get("ocr") is True)
    return opts.build(device=spec.get("device") or "auto", allow_paths=bool(spec.get("allow_paths", True)))


def process(engine: Engine, job: JobFiles, stop: threading.Event, progress: bool) -> dict[str, Any]:
    """Run ``job`` on ``engine`` from its checkpoint; returns the final ``{"status", ...}`` for job.json."""
    spec = job.spec()
    clf = build_classifier(spec)
    cp = job.progress()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=spec.get("total"), initial=cp.rows_done, unit="row", desc=job.id)
    try:
        with open(job.results_path, "a+b") as out:
            # Anything past the checkpoint is from a run that died before recording it.
            out.truncate(cp.results_size)
            out.seek(cp.results_size)
            blocks = engine.blocks(job, spec, clf, cp)
            last = time.monotonic()
            try:
                while True:
                    if stop.is_set() or job.cancel_requested():
                        job.checkpoint(out, cp)
                        return {"status": "cancelled"}
                    block = next(blocks, None)
                    if block is None:
                        break
                    if block.row0 != cp.rows_done:  # never write a row twice or leave a gap
                        raise ServerError("job_rows_out_of_order",
                                          f"The engine returned rows from {block.row0}, expected {cp.rows_done}.",
                                          {"job_id": job.id, "row": block.row0, "expected": cp.rows_done})
                    out.write(block.chunk.data)
                    cp.rows_done += block.chunk.rows
                    cp.processed += block.chunk.rows
                    cp.failed += block.chunk.failed
                    cp.input_offset = block.input_offset
                    if bar is not None:
                        bar.update(block.chunk.rows)
                    if time.monotonic() - last >= CHECKPOINT_EVERY_S:
                        job.checkpoint(out, cp)
                        last = time.monotonic()
            finally:
                close = getattr(blocks, "close", None)
                if close is not None:
                    close()  # a generator's cleanup (open files, a Ray dataset) runs now
            job.checkpoint(out, cp)
    finally:
        if bar is not None:
            bar.close()
    if spec.get("total") != cp.processed:  # blank lines, or an input appended to: report what was done
        job.update(total=cp.processed)
    return {"status": "completed", "error": None}
