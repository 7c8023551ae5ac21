"""Label prototypes: which texts stand for a label, and their weighted, normalised mean.

Name (a quarter of it in the ``text_type`` template when one is given), the description,
and the description's phrases (split at commas, colons, "and", "or") count equally: the
phrases cover a label's several senses better than one sentence. Chosen on the training
splits of five datasets (benchmarks/accuracy.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .registry import ModelSpec

TYPED_SHARE = 0.25
_PHRASE_SPLIT = re.compile(r"[,:;]| and | or ")


def description_phrases(description: str) -> list[str]:
    """Split a description into its phrases.

    Example:
        >>> description_phrases("News about markets, trade and stocks.")
        ['News about markets', 'trade', 'stocks']
    """
    parts = (p.strip(" .") for p in _PHRASE_SPLIT.split(description))
    return [p for p in parts if len(p) > 2]


def label_texts(spec: ModelSpec, label: str, description: str | None = None,
                text_type: str | None = None) -> list[tuple[str, float]]:
    """The texts (and weights) whose embeddings make ``label``'s prior prototype.

    Example:
        >>> from classer_local.registry import get
        >>> [t for t, _ in label_texts(get("standard"), "billing", "Payments, refunds")]
        ['billing', 'Payments, refunds', 'Payments', 'refunds']
    """
    prompt = spec.prompt
    name = prompt.get("name_template", "{label}").format(label=label)
    out = [(name, 1.0)]
    if text_type:
        typed = prompt.get("typed_template", "{text_type} about {label}").format(label=label, text_type=text_type)
        out = [(name, 1.0 - TYPED_SHARE), (typed, TYPED_SHARE)]
    if description:
        out.append((prompt.get("description_template", "{description}").format(
            label=label, description=description, text_type=text_type or ""), 1.0))
        phrases = description_phrases(description)
        if len(phrases) > 1:
            out.extend((ph, 1.0 / len(phrases)) for ph in phrases)
    return out


@dataclass(frozen=True)
class Prototypes:
    """Each label's prototype, and the parts it is made of (for passage-level document scoring)."""

    vectors: np.ndarray  # (L, d), L2-normalised
    components: np.ndarray  # (P, d): every label text's vector
    component_weights: np.ndarray  # (L, P): each label's normalised weights over the parts


def build(spec: ModelSpec, labels: Sequence[str], descriptions: Mapping[str, str], text_type: str | None,
          embed: Callable[[list[str]], np.ndarray]) -> Prototypes:
    """Embed every label's texts once (``embed`` goes through the embedding cache) and pool them."""
    from .backends import l2_normalize

    per_label = [label_texts(spec, lb, descriptions.get(lb), text_type) for lb in labels]
    flat = [t for pairs in per_label for t, _ in pairs]
    vecs = embed(flat)
    weights = np.zeros((len(labels), len(flat)), dtype=np.float32)
    i = 0
    for j, pairs in enumerate(per_label):
        for _, wt in pairs:
            weights[j, i] = wt
            i += 1
    protos = l2_normalize(weights @ vecs)
    return Prototypes(protos, vecs, weights / weights.sum(axis=1, keepdims=True))
