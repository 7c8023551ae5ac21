"""Shared helpers for the benchmarks: data loading, few-shot sampling, timing.

The metrics are the library's (``classer_local.evaluate``), so ``classer-local eval`` and the
benchmarks report the same accuracy, macro-F1 and ECE; ``accuracy`` and ``macro_f1`` are
re-exported here for the scripts that import them from ``common``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from classer_local.evaluate import accuracy, macro_f1

__all__ = ["DEFAULT_DATA", "REPO", "TEXT_SETS", "Timer", "accuracy", "descriptions", "load_set", "machine",
           "json_ready", "macro_f1", "read_jsonl", "sample_few_shot"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "evaldata"

# eval file, few-shot pool file
TEXT_SETS: dict[str, tuple[str, str]] = {
    "ag_news": ("test_sample1000_seed42.jsonl", "train_first581.jsonl"),
    "sst2": ("test.jsonl", "train_sample2000_seed42.jsonl"),
    "emotion": ("test.jsonl", "train.jsonl"),
    "trec": ("test.jsonl", "train.jsonl"),
    "banking77": ("test.jsonl", "train.jsonl"),
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_set(data: Path, name: str) -> dict[str, Any]:
    folder = Path(data) / name
    eval_file, pool_file = TEXT_SETS[name]
    labels = json.loads((folder / "labels.json").read_text())
    return {
        "name": name,
        "labels": labels,
        "eval": read_jsonl(folder / eval_file),
        "pool": read_jsonl(folder / pool_file),
    }


def descriptions() -> dict[str, Any]:
    return json.loads((REPO / "benchmarks" / "descriptions.json").read_text())


def sample_few_shot(pool: list[dict[str, Any]], labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """n rows per label from the pool (SetFit's protocol: a seeded sample per label)."""
    rng = random.Random(seed)
    by: dict[str, list[str]] = {lb: [] for lb in labels}
    for row in pool:
        if row["label"] in by:
            by[row["label"]].append(row["text"])
    X, y = [], []
    for lb in labels:
        rows = by[lb]
        for t in rng.sample(rows, min(n, len(rows))):
            X.append(t)
            y.append(lb)
    return X, y


class Timer:
    def __enter__(self) -> "Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


def machine() -> str:
    import torch

    return (f"{platform.machine()} {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"torch {torch.__version__}, threads {torch.get_num_threads()}")


def json_ready(obj: Any, drop: frozenset[str] = frozenset()) -> Any:
    """``obj`` with string keys and numpy scalars as Python numbers (what ``json.dumps`` takes),
    leaving out dict entries named in ``drop``."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v, drop) for k, v in obj.items() if k not in drop}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, drop) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
