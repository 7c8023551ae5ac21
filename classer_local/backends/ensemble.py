"""Several text encoders read as one (``backend = "ensemble"`` in models.toml).

Each member's L2-normalised vector is scaled by the square root of its weight and the parts are
concatenated. The weights sum to 1, so the result is unit length and the cosine of two such
vectors is the weighted mean of the members' cosines: a label prototype scores a text by every
member at once, and example heads fitted on the vectors see every part.

    [models.NAME]
    backend = "ensemble"
    members = ["minilm-l6-labelmatch", "all-minilm-l6-v2", "use-multilingual"]
    member_weights = [0.5, 0.4, 0.1]     # optional; equal weights by default
    dim = 1280                           # the members' dims summed

The first member is the primary: its token counts are the ensemble's (usage, window checks),
its window is the ensemble's, and fine-tuning (``fit(tune=True)``) tunes it while the other
members stay as they are (``with_primary``). Members are text models of their own entries,
loaded (and cached) as they would be alone; an ensemble cannot hold an ensemble, nor a member
with query/document prefixes (the ensemble does not know which one a text is).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import ModelSpec, ensemble_members
from . import load_text


class EnsembleEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        specs, weights = ensemble_members(spec)
        self.spec = spec
        self.members: list[Any] = [load_text(m, device) for m in specs]
        self.weights = np.asarray(weights, dtype=np.float32)
        self._scales = np.sqrt(self.weights)
        self.device = self.members[0].device
        self.batch_size = spec.batch_size

    @property
    def primary(self) -> Any:
        """The first member: the one ``fit(tune=True)`` tunes."""
        return self.members[0]

    @property
    def max_tokens(self) -> int:
        return int(getattr(self.primary, "max_tokens", 0) or 0)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.primary, "tokenizer", None)

    def with_primary(self, primary: Any) -> EnsembleEmbedder:
        """A copy whose primary is ``primary`` (a tuned copy of it); the other members are shared."""
        out = copy.copy(self)
        out.members = [primary, *self.members[1:]]
        if hasattr(primary, "tune_digest"):
            out.tune_digest = primary.tune_digest
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return list(self.primary.count_tokens(texts))

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        texts = list(texts)
        first, tokens = self.primary.encode_with_tokens(texts, truncate)  # refuses first, before other work
        parts = [np.asarray(first, dtype=np.float32) * self._scales[0]]
        for member, scale in zip(self.members[1:], self._scales[1:]):
            parts.append(np.asarray(member.encode(texts, truncate), dtype=np.float32) * scale)
        return np.ascontiguousarray(np.concatenate(parts, axis=1)), tokens
