"""Text and visual evidence fused into one score: the only place the two meet.

Rows with only a picture take the visual score; rows with both mix them with the scorer's
visual weight (``vision.VISUAL_WEIGHT``, more once page/image examples exist).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import scoring


@dataclass(frozen=True)
class VisualSims:
    """Visual similarities of a batch (NaN rows: no image) and which rows also had text."""

    sims: np.ndarray
    has_text: np.ndarray


def classify(logp: np.ndarray, vis: VisualSims | None, temperature: float, visual_weight: float) -> np.ndarray:
    """Log-probabilities over labels from the text's ``logp`` and the visual similarities."""
    if vis is None:
        return logp
    has_vis = ~np.isnan(vis.sims[:, 0])
    vis_logp = scoring.log_softmax(np.nan_to_num(vis.sims).astype(np.float64) / temperature)
    both = has_vis & vis.has_text
    only_vis = has_vis & ~vis.has_text
    out = logp.copy()
    out[only_vis] = vis_logp[only_vis]
    if both.any():
        out[both] = scoring.log_softmax((1 - visual_weight) * logp[both] + visual_weight * vis_logp[both])
    return out


def tag_sims(sims: np.ndarray, vis: VisualSims | None, text_temperature: float, visual_temperature: float,
             visual_weight: float) -> np.ndarray:
    """Text similarities with the visual ones mixed in, on the text scale (through the two
    softmax temperatures), ready for the tag prior."""
    if vis is None:
        return sims
    has_vis = ~np.isnan(vis.sims[:, 0])
    vis_as_text = np.nan_to_num(vis.sims) * (text_temperature / visual_temperature)
    mixed = sims.astype(np.float64).copy()
    both = has_vis & vis.has_text
    only_vis = has_vis & ~vis.has_text
    mixed[only_vis] = vis_as_text[only_vis]
    mixed[both] = (1 - visual_weight) * sims[both] + visual_weight * vis_as_text[both]
    return mixed


def tag(X: np.ndarray, sims: np.ndarray, vis: VisualSims | None, logits: Callable[[np.ndarray, np.ndarray], np.ndarray],
        text_temperature: float, visual_temperature: float, visual_weight: float) -> np.ndarray:
    """Tag logits over the fused similarities."""
    return logits(X, tag_sims(sims, vis, text_temperature, visual_temperature, visual_weight))
