"""A classifier's own encoder: the model's, or a copy tuned on its examples (``tune``).

``Classifier`` mixes this in. ``tune`` trains a LoRA delta (``classer_local.tuning``) on the
text examples, then rebuilds the prototypes and heads with the tuned encoder; ``embedder`` and
``vector_id`` (part of every embedding-cache and request-cache key, and of the server's
cross-classifier batching key) follow the delta, so tuned and untuned vectors never mix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InvalidRequestError

if TYPE_CHECKING:
    from .classifier import Classifier


class TunedEncoderMixin:
    tuned_: Any
    spec_: Any
    device: str

    @property
    def embedder(self) -> Any:
        """The text encoder: the model's, or this classifier's tuned copy of it (``tune``)."""
        from .backends import load_text

        base = load_text(self.spec_, self.device)
        return base if self.tuned_ is None else tuning_encoder(base, self.tuned_)

    @property
    def vector_id(self) -> str:
        """What a text's vector depends on: the model, and the tuned delta when there is one."""
        return self.spec_.model_id + ("" if self.tuned_ is None else f"+tune:{self.tuned_.digest[:16]}")

    def tune(self: Any, settings: Any = None, *, progress: bool = True, cancel: Any = None) -> Classifier:
        """Fine-tune the encoder on the text examples (LoRA, ``classer_local.tuning``), then rebuild
        the prototypes and heads with it. ``settings``: a ``tuning.TuneSettings``; ``cancel``: a
        ``threading.Event`` (raises ``TuningCancelled``). Uses the classifier's device (GPU if any)."""
        from . import tuning

        texts, owners = self.text_examples()
        if not texts:
            raise InvalidRequestError("tuning_examples_empty", "tune needs text examples: pass examples or call fit().")
        label_texts = [[t for t, _ in self.label_texts(lb)] for lb in self.labels_]
        with self._lock:
            self.tuned_ = None
            encoder = self.embedder
            # an ensemble (backends/ensemble.py) tunes its primary member; the others stay as they are
            self.tuned_ = tuning.tune(getattr(encoder, "primary", encoder), texts, owners, label_texts, settings=settings,
                                      progress=progress, cancel=cancel)
            self._built = False
            self._tag_calibrated = False
            self.build()
        return self


_TUNED: dict[tuple[int, str], Any] = {}


def tuning_encoder(base: Any, delta: Any) -> Any:
    """The base encoder with ``delta`` merged, made once per (loaded model, delta) in a process."""
    key = (id(base), delta.digest)
    hit = _TUNED.get(key)
    if hit is None:
        from .tuning import apply

        while len(_TUNED) >= 16:  # each holds its own copy of the adapted layers (~7 MB for MiniLM)
            _TUNED.pop(next(iter(_TUNED)))
        if hasattr(base, "with_primary"):  # an ensemble: the delta is its primary member's
            hit = _TUNED[key] = base.with_primary(apply(base.primary, delta))
        else:
            hit = _TUNED[key] = apply(base, delta)
    return hit
