"""How a document's words are scored against labels: by its best passages, not its average.

What makes a document an invoice or a paper is local (a totals table, an abstract), and
averaging a long text's windows washes it out into its topic. So the text is cut into
sentence-sized passages (the first ``MAX_PASSAGES``); each part of a label's prototype (name,
description, each description phrase) takes its best-matching passage, and the label's score
is the weighted mean of those best matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .inputs import Document

PASSAGE_WORDS = 36  # about 48 word-piece tokens: a sentence or two
MAX_PASSAGES = 64


def passages(text: str) -> list[str]:
    """The document's text cut into sentence-sized passages (at most ``MAX_PASSAGES``).

    Example:
        >>> len(passages("word " * 100))
        3
    """
    words = text.split()
    out = [" ".join(words[k : k + PASSAGE_WORDS]) for k in range(0, len(words), PASSAGE_WORDS)]
    return out[:MAX_PASSAGES] or [text]


def passage_sims(text: str, encode: Callable[[list[str]], np.ndarray], components: np.ndarray,
                 component_weights: np.ndarray, doc: Document | None = None, **_: Any) -> np.ndarray:
    """(L,) label similarities of a document's text from its best passages.

    ``encode`` embeds input-side texts; ``components``/``component_weights`` are the label
    prototypes' parts and their weights (``prototypes.Prototypes``). ``doc`` is the read
    document (kind, pages) for scorers that use its structure.
    """
    P = encode(passages(text))
    best = (P @ components.T).max(axis=0)
    return (component_weights @ best).astype(np.float32)
