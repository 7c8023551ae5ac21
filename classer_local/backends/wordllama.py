"""WordLlama static embeddings: the ``fast`` tier (tens of thousands of texts/s on CPU).

Static token embeddings are averaged, so there is no window to split: every token counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..registry import ModelSpec
from . import l2_normalize
from ._windows import MAX_TEXT_TOKENS, check_truncate, windows


class WordLlamaEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        from wordllama import WordLlama

        self.spec = spec
        self.device = "cpu"  # numpy model: runs on the CPU whatever the device
        path = Path(spec.weights_path())
        # The package ships its tokenizer under tokenizers/ but looks in tokenizer/ unless pointed here.
        self.model = WordLlama.load(cache_dir=path, disable_download=True, dim=spec.dim)
        # Our own copy of the tokenizer without padding: we pool straight from token ids, so a
        # batch is never padded to its longest text, and counting tokens costs no second pass.
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(self.model.tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.table = np.asarray(self.model.embedding, dtype=np.float32)
        self.max_tokens = 0
        self.batch_size = spec.batch_size

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._ids(texts)] if texts else []

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        """Mean of the static token vectors of each text (what ``WordLlama.embed`` computes), normalised."""
        check_truncate(truncate)
        texts = list(texts)
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        tokens: list[int] = []
        for start in range(0, len(texts), 4096):
            ids = self._ids(texts[start : start + 4096])
            lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
            if lengths.max(initial=0) > MAX_TEXT_TOKENS:  # the only limit: static vectors have no window
                i = int(np.argmax(lengths > MAX_TEXT_TOKENS))
                windows(range(int(lengths[i])), 0, None, start + i)
            tokens.extend(int(n) for n in lengths)
            if not lengths.sum():
                continue
            flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
            np.clip(flat, 0, len(self.table) - 1, out=flat)
            nonempty = lengths > 0
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])[nonempty]
            sums = np.add.reduceat(self.table[flat], offsets, axis=0)
            out[start : start + len(ids)][nonempty] = sums / lengths[nonempty, None]
        return l2_normalize(out), tokens
