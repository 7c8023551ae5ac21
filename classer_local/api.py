"""Module-level ``classify``/``tag`` and their batch forms, over a cache of ``Classifier``s.

A call with the same labels, descriptions, examples and model reuses the same
``Classifier`` (and so its prototypes): a 200-label call does not re-embed 200 labels.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from . import cache as cache_mod
from . import validation
from .classifier import Classifier, Item, Priority, Truncate, examples_fingerprint
from .results import ClassifyResult, TagResult

_MAX_CLASSIFIERS = 32
_classifiers: OrderedDict[str, Classifier] = OrderedDict()
_lock = threading.Lock()


def get_classifier(
    labels: Sequence[str] | None = None,
    *,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    device: str = "auto",
    truncate: Truncate | str | None = None,
    classifier: str | None = None,
) -> Classifier:
    """The ``Classifier`` for these arguments, built once and kept in a small LRU.

    ``classifier="name"`` or ``"name@v2"`` loads a saved classifier instead of ``labels``.
    """
    if classifier is not None:
        from . import store

        return store.load(classifier, device=device)
    key = cache_mod.request_key({
        "labels": list(labels) if labels is not None and not isinstance(labels, str) else labels,
        "descriptions": dict(descriptions or {}),
        "examples": examples_fingerprint(examples) if isinstance(examples, Mapping) else examples,
        "text_type": text_type, "priority": getattr(priority, "value", priority), "model": model,
        "device": device, "truncate": getattr(truncate, "value", truncate),
    })
    with _lock:
        clf = _classifiers.get(key)
        if clf is not None:
            _classifiers.move_to_end(key)
            return clf
    clf = Classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                     priority=priority, model=model, device=device, truncate=truncate)
    with _lock:
        _classifiers[key] = clf
        while len(_classifiers) > _MAX_CLASSIFIERS:
            _classifiers.popitem(last=False)
    return clf


def classify(
    text: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    image: Any = None,
    file: Any = None,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    cache: bool = True,
    truncate: Truncate | str | None = None,
    classifier: str | None = None,
    device: str = "auto",
) -> ClassifyResult:
    """Pick the one best label for a text, image(s) or document.

    Example:
        >>> import classer_local as cl
        >>> r = cl.classify(text="I can't log in to my account",
        ...                 labels=["billing", "technical", "sales"])  # doctest: +SKIP
        >>> r.label, r.confidence                                      # doctest: +SKIP
        ('technical', 0.94)
    """
    clf = get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                         priority=priority, model=model, device=device, truncate=truncate, classifier=classifier)
    return clf.classify(text, image=image, file=file, cache=cache)


def tag(
    text: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    image: Any = None,
    file: Any = None,
    threshold: float = 0.5,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    cache: bool = True,
    truncate: Truncate | str | None = None,
    classifier: str | None = None,
    device: str = "auto",
) -> TagResult:
    """Every label whose calibrated confidence reaches ``threshold``, best first.

    Example:
        >>> t = cl.tag(text="Breaking: Tech stocks surge amid AI boom",
        ...            labels=["politics", "technology", "finance", "sports"])   # doctest: +SKIP
        >>> [x.label for x in t.labels]                                         # doctest: +SKIP
        ['technology', 'finance']
    """
    clf = get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                         priority=priority, model=model, device=device, truncate=truncate, classifier=classifier)
    return clf.tag(text, image=image, file=file, threshold=threshold, cache=cache)


def _batch_items(texts: Sequence[Any] | None, images: Sequence[Any] | None, files: Sequence[Any] | None) -> list[Item]:
    given = [(n, v) for n, v in (("texts", texts), ("images", images), ("files", files)) if v is not None]
    if not given:
        raise validation.InvalidRequestError("input_required", "texts, images or files is required.")
    sizes = {n: len(validation.batch(v, n)) for n, v in given}
    if len(set(sizes.values())) > 1:
        raise validation.InvalidRequestError(
            "batch_length_mismatch", f"texts, images and files must have the same length, got {sizes}.", sizes)
    n = next(iter(sizes.values()))
    return [Item(texts[i] if texts is not None else None,
                 images[i] if images is not None else None,
                 files[i] if files is not None else None) for i in range(n)]


def classify_batch(
    texts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    *,
    images: Sequence[Any] | None = None,
    files: Sequence[Any] | None = None,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    cache: bool = True,
    truncate: Truncate | str | None = None,
    classifier: str | None = None,
    device: str = "auto",
) -> list[ClassifyResult]:
    """``classify`` over up to 1,000 inputs at once, one result each, same order.

    Example:
        >>> rs = cl.classify_batch(texts=["refund please", "app crashes"],
        ...                        labels=["billing", "technical"])   # doctest: +SKIP
        >>> [r.label for r in rs]                                      # doctest: +SKIP
        ['billing', 'technical']
    """
    items = _batch_items(texts, images, files)
    clf = get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                         priority=priority, model=model, device=device, truncate=truncate, classifier=classifier)
    return clf.classify_items(items, cache=cache)


def tag_batch(
    texts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    *,
    images: Sequence[Any] | None = None,
    files: Sequence[Any] | None = None,
    threshold: float = 0.5,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    model: str | None = None,
    cache: bool = True,
    truncate: Truncate | str | None = None,
    classifier: str | None = None,
    device: str = "auto",
) -> list[TagResult]:
    """``tag`` over up to 1,000 inputs at once, one result each, same order."""
    items = _batch_items(texts, images, files)
    clf = get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                         priority=priority, model=model, device=device, truncate=truncate, classifier=classifier)
    return clf.tag_items(items, threshold=threshold, cache=cache)
