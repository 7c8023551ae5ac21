"""WordLlama static embeddings: the ``fast`` tier (tens of thousands of texts/s on CPU).

Static token embeddings are averaged, so there is no window to split: every token counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..registry import ModelSpec
from . import l2_normalize
from ._windows import check_truncate, windows


class WordLlamaEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        from wordllama import WordLlama

        self.spec = spec
        self.device = "cpu"  # numpy model: runs on the CPU whatever the device
        path = Path(spec.weights_path())
        # The package ships its tokenizer under tokenizers/ but looks in tokenizer/ unless pointed here.
        self.model = WordLlama.load(cache_dir=path, disable_download=True, dim=spec.dim)
        self.tokenizer = self.model.tokenizer
        self.max_tokens = 0
        self.batch_size = spec.batch_size

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        check_truncate(truncate)
        texts = list(texts)
        tokens = self.count_tokens(texts)
        for i, n in enumerate(tokens):
            windows(range(n), 0, None, i)  # only the 1M-token limit applies
        if not texts:
            return np.zeros((0, self.spec.dim), dtype=np.float32), tokens
        vecs = self.model.embed(texts, norm=True, batch_size=self.batch_size)
        return l2_normalize(vecs), tokens
