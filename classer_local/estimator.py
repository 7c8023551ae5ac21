"""The scikit-learn estimator contract for ``Classifier``: parameters, cloning, pickling, score.

Every constructor argument is a parameter, returned exactly as given (so ``clone`` works);
``set_params`` rebuilds the classifier; fitted state ends in ``_``. Pickling drops locks and
loaded models (they are re-made on first use).
"""

from __future__ import annotations

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
    """Mixed into ``Classifier``; expects ``self._params`` (the constructor's arguments)."""

    _params: dict[str, Any]
    _estimator_type = "classifier"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given (scikit-learn: ``clone``, grid search)."""
        return dict(self._params)

    def set_params(self, **params: Any) -> Classifier:
        """Change constructor arguments; the classifier is rebuilt (fitted state is dropped)."""
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise InvalidRequestError("param_unknown", f"Unknown parameters {unknown}; known: {sorted(self._params)}.",
                                      {"unknown": unknown})
        self.__init__(**{**self._params, **params})  # type: ignore[misc]
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Labels make a classifier usable (zero-shot) even before ``fit``."""
        return bool(getattr(self, "labels", None))

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
