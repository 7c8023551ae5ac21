"""Request cache and embedding cache on diskcache (SQLite: safe across threads and
processes, and a killed process leaves it consistent).

Keys are SHA-256 hashes of the canonical JSON of a request, including the model id
and version, so a different model never answers from another's entries.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import numpy as np

from . import config

_CACHES: dict[str, Any] = {}
_LOCK = threading.Lock()
SIZE_LIMIT = 2**30  # 1 GiB per cache folder; diskcache evicts least-recently-stored


def _open(name: str) -> Any:
    folder = str(config.subdir("cache") / name)
    cache = _CACHES.get(folder)
    if cache is None:
        with _LOCK:
            cache = _CACHES.get(folder)
            if cache is None:
                import diskcache

                cache = diskcache.Cache(folder, size_limit=SIZE_LIMIT, timeout=60)
                _CACHES[folder] = cache
    return cache


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def request_key(payload: dict[str, Any]) -> str:
    """SHA-256 of the canonical request.

    Example:
        >>> request_key({"a": 1, "b": 2}) == request_key({"b": 2, "a": 1})
        True
    """
    # surrogatepass: any Python string hashes (a lone surrogate is refused by validation, not here).
    return hashlib.sha256(canonical(payload).encode("utf-8", "surrogatepass")).hexdigest()


def get_result(key: str) -> tuple[dict[str, Any], float] | None:
    """The stored result dict and its age in seconds, or None."""
    hit = _open("requests").get(key)
    if hit is None:
        return None
    stored_at, data = hit
    return data, max(0.0, time.time() - stored_at)


def put_result(key: str, data: dict[str, Any]) -> None:
    _open("requests").set(key, (time.time(), data))


def get_vectors(model_id: str, texts: list[str]) -> dict[str, np.ndarray]:
    """Cached embeddings of label texts (names, descriptions, examples) for ``model_id``."""
    cache = _open("embeddings")
    found = {}
    for t in texts:
        v = cache.get(_vec_key(model_id, t))
        if v is not None:
            found[t] = np.frombuffer(v, dtype=np.float32)
    return found


def put_vectors(model_id: str, vectors: dict[str, np.ndarray]) -> None:
    cache = _open("embeddings")
    with cache.transact():
        for t, v in vectors.items():
            cache.set(_vec_key(model_id, t), np.asarray(v, dtype=np.float32).tobytes())


def _vec_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


def clear() -> None:
    """Empty both caches (``classer-local cache clear``)."""
    for name in ("requests", "embeddings"):
        _open(name).clear()


def close_all() -> None:
    with _LOCK:
        for cache in _CACHES.values():
            cache.close()
        _CACHES.clear()
