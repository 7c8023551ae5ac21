"""The options a classification call takes, defined once: enums, and the labels/classifier rule.

The library (``api``), saved classifiers (``store``), jobs, the server and the CLI all build a
classifier from the same ``ClassifierOptions``; the server's ``Literal`` types and the CLI's
``choices`` are derived from the enums here, so an option value is spelt in one place.

Example:
    >>> ClassifierOptions(labels=["a", "b"]).validate().labels
    ['a', 'b']
    >>> PRIORITIES
    ('standard', 'fast')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequestError

if TYPE_CHECKING:
    from .classifier import Classifier


class Priority(str, Enum):
    """Model tier: ``standard`` (MiniLM) or ``fast`` (static WordLlama)."""

    STANDARD = "standard"
    FAST = "fast"


class Truncate(str, Enum):
    """What to do with texts longer than the model's window (Cohere's ``truncate``)."""

    NONE = "NONE"
    START = "START"
    END = "END"


class Op(str, Enum):
    """The two verbs: one label (softmax) or every label above a threshold (sigmoid)."""

    CLASSIFY = "classify"
    TAG = "tag"


PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
TRUNCATES: tuple[str, ...] = tuple(t.value for t in Truncate)
OPS: tuple[str, ...] = tuple(o.value for o in Op)


def value(option: Any) -> Any:
    """The plain value of an enum member (or the value itself): ``Priority.FAST`` -> ``"fast"``."""
    return option.value if isinstance(option, Enum) else option


@dataclass(frozen=True)
class ClassifierOptions:
    """What defines a classifier for one call: either ``labels`` (with descriptions, examples,
    ``text_type``) or the name of a saved ``classifier`` — never both."""

    labels: Sequence[str] | None = None
    descriptions: Mapping[str, str] | None = None
    examples: Mapping[str, Sequence[Any]] | None = None
    text_type: str | None = None
    priority: Priority | str | None = Priority.STANDARD
    model: str | None = None
    truncate: Truncate | str | None = None
    classifier: str | None = None
    image_model: str | None = None
    glossary: bool = True  # labels without a description borrow the built-in one (glossary.py)
    ocr: bool = False  # read the words in images too (the ocr extra)

    def validate(self) -> ClassifierOptions:
        """Enforce the labels-or-classifier rule with the same typed errors everywhere."""
        if self.classifier is not None and self.labels is not None:
            raise InvalidRequestError(
                "classifier_and_labels", "Give either labels or classifier, not both.",
                {"classifier": self.classifier})
        if self.classifier is not None and self.ocr is True:
            raise InvalidRequestError(
                "ocr_with_classifier", "ocr=True is an option of ad-hoc labels; a saved classifier does not take it.",
                {"classifier": self.classifier})
        if self.classifier is None and self.labels is None and not self.examples:
            raise InvalidRequestError("labels_required", "labels is required: a list of 1 to 200 label strings.")
        # Labels, descriptions, examples and text_type are validated where a classifier is set up
        # (``Classifier._setup``, on a pool miss): a pool hit was valid when it was pooled.
        if self.priority is not None and value(self.priority) not in PRIORITIES:
            raise InvalidRequestError(
                "invalid_priority", f"priority must be one of {list(PRIORITIES)}, got {value(self.priority)!r}.",
                {"priority": value(self.priority)})
        return self

    def with_(self, **changes: Any) -> ClassifierOptions:
        return replace(self, **changes)

    def build(self, *, device: str = "auto", allow_paths: bool = True) -> Classifier:
        """The classifier for these options: a saved one from the store, or an ad-hoc one from
        the process-wide LRU (so repeated calls reuse its prototypes)."""
        from .pool import get_classifier

        self.validate()
        return get_classifier(self, device=device, allow_paths=allow_paths)
