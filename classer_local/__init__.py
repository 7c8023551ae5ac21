"""classer_local: offline, embedding-based classification of text, images and documents.

Example:
    >>> import classer_local as cl
    >>> r = cl.classify(text="I can't log in to my account",
    ...                 labels=["billing", "technical", "sales"])  # doctest: +SKIP
    >>> r.label                                                     # doctest: +SKIP
    'technical'

Heavy modules (torch, the models) load on first use, so ``import classer_local`` is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "ClassifyResult",
    "ExampleWarning",
    "Item",
    "LabelScore",
    "Priority",
    "TagResult",
    "Truncate",
    "__version__",
    "classifiers",
    "classify",
    "classify_batch",
    "cohere",
    "errors",
    "jobs",
    "logs",
    "models",
    "tag",
    "tag_batch",
    "usage",
]

_LAZY = {
    "Classifier": ("classifier", "Classifier"),
    "Item": ("classifier", "Item"),
    "ExampleWarning": ("examples", "ExampleWarning"),
    "Priority": ("options", "Priority"),
    "Truncate": ("options", "Truncate"),
    "ClassifyResult": ("results", "ClassifyResult"),
    "TagResult": ("results", "TagResult"),
    "LabelScore": ("results", "LabelScore"),
    "classify": ("api", "classify"),
    "tag": ("api", "tag"),
    "classify_batch": ("api", "classify_batch"),
    "tag_batch": ("api", "tag_batch"),
    "models": ("registry", "models"),
    "usage": ("usagelog", "usage"),
    "logs": ("usagelog", "logs"),
    "cohere": ("cohere", None),
    "errors": ("errors", None),
    "classifiers": ("store", None),
    "jobs": ("jobs", None),
}

if TYPE_CHECKING:
    from . import cohere, errors
    from . import jobs as jobs
    from . import store as classifiers
    from .api import classify, classify_batch, tag, tag_batch
    from .classifier import Classifier, Item
    from .examples import ExampleWarning
    from .options import Priority, Truncate
    from .registry import models
    from .results import ClassifyResult, LabelScore, TagResult
    from .usagelog import logs, usage


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'classer_local' has no attribute {name!r}") from None
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
