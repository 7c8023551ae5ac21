"""The scikit-learn estimator contract for ``Classifier``: parameters, cloning, pickling, score.

Every constructor argument is a parameter, stored by ``__init__`` under its own name exactly as
given and nothing else (so ``clone`` works and construction never fails); what the parameters
define and what is fitted end in ``_`` and are made on first use; ``set_params`` drops them.
Pickling drops locks and loaded models (they are re-made on first use).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidRequestError

if TYPE_CHECKING:
    from .classifier import Classifier


_NOT_FITTED: type | None = None


def not_fitted() -> InvalidRequestError:
    """``labels_required``: an ``InvalidRequestError`` that is also scikit-learn's ``NotFittedError``."""
    global _NOT_FITTED
    if _NOT_FITTED is None:
        from sklearn.exceptions import NotFittedError

        class ClassifierNotFittedError(InvalidRequestError, NotFittedError):
            """No labels yet: pass labels or call fit()."""

        _NOT_FITTED = ClassifierNotFittedError
    return _NOT_FITTED("labels_required", "This classifier has no labels: pass labels or call fit().")


class EstimatorMixin:
    """Mixed into ``Classifier``, whose ``__init__`` stores each argument under its own name."""

    _estimator_type = "classifier"
    labels_: list[str]

    @classmethod
    def _param_names(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given (scikit-learn: ``clone``, grid search)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Classifier:
        """Change constructor arguments; they are checked, and the classifier rebuilt, on next use."""
        known = sorted(self._param_names())
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidRequestError("param_unknown", f"Unknown parameters {unknown}; known: {known}.",
                                      {"unknown": unknown})
        for name, value in params.items():
            setattr(self, name, value)
        self._forget()
        return self

    def _forget(self) -> None:
        """Drop the settings and fitted state, made again from the parameters on next use: every
        attribute ending in ``_`` and every private one the class gives a default (``_built``, ...)."""
        for name in [k for k in vars(self) if k.endswith("_") or hasattr(type(self), k)]:
            delattr(self, name)

    def __sklearn_is_fitted__(self) -> bool:
        """Labels make a classifier usable (zero-shot) even before ``fit``."""
        return bool(self.labels_)

    def __repr__(self) -> str:
        """The parameters that differ from their defaults, as scikit-learn writes an estimator."""
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if repr(v) != repr(defaults[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_visual"] = None  # rebuilt on first image (holds a loaded image model)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        tags = Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_label=True))
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    def score(self, X: Sequence[str], y: Sequence[str]) -> float:
        """Accuracy of ``predict(X)`` against ``y`` (scikit-learn's classifier score)."""
        return float(np.mean(self.predict(X) == np.asarray(y, dtype=object)))
