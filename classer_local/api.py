"""Module-level ``classify``/``tag`` and their batch forms, over the pool of ``Classifier``s.

A call with the same labels, descriptions, examples and model reuses the same
``Classifier`` (``pool``), so a 200-label call does not re-embed 200 labels. Every call
scores through ``service`` (cache, usage row, latency), as the server's routes do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import service, validation
from .classifier import Classifier, Item
from .options import ClassifierOptions, Priority, Truncate
from .results import ClassifyResult, TagResult

__all__ = ["batch_items", "classify", "classify_batch", "get_classifier", "tag", "tag_batch"]


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
    allow_paths: bool = True,
    image_model: str | None = None,
) -> Classifier:
    """The ``Classifier`` for these arguments, built once and kept in a small LRU.

    ``classifier="name"`` or ``"name@v2"`` loads a saved classifier instead of ``labels``
    (giving both is the typed error ``classifier_and_labels``).
    """
    return ClassifierOptions(labels, descriptions, examples, text_type, priority, model, truncate,
                             classifier, image_model).build(device=device, allow_paths=allow_paths)


def batch_items(texts: Sequence[Any] | None, images: Sequence[Any] | None, files: Sequence[Any] | None) -> list[Item]:
    """The one request -> Items conversion for batches: equal lengths, ≤ 1,000, typed errors."""
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


def _options(labels: Any, descriptions: Any, examples: Any, text_type: Any, priority: Any, model: Any,
             truncate: Any, classifier: Any, device: str, image_model: str | None = None) -> Classifier:
    return get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                          priority=priority, model=model, device=device, truncate=truncate, classifier=classifier,
                          image_model=image_model)


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
    image_model: str | None = None,
) -> ClassifyResult:
    """Pick the one best label for a text, image(s) or document.

    ``model`` names the text model (or, for images, an image model); ``image_model`` names the
    image model explicitly. A result's ``model`` is the model that answered and ``visual_model``
    the image model that read its pictures.

    Example:
        >>> import classer_local as cl
        >>> r = cl.classify(text="I can't log in to my account",
        ...                 labels=["billing", "technical", "sales"])  # doctest: +SKIP
        >>> r.label                                                    # doctest: +SKIP
        'technical'
    """
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return service.score(clf, [Item(text, image, file)], "classify", cache=cache, endpoint="classify").results[0]


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
    image_model: str | None = None,
) -> TagResult:
    """Every label whose calibrated confidence reaches ``threshold``, best first.

    Example:
        >>> t = cl.tag(text="Breaking: Tech stocks surge amid AI boom",
        ...            labels=["politics", "technology", "finance", "sports"])   # doctest: +SKIP
        >>> [x.label for x in t.labels]                                         # doctest: +SKIP
        ['technology', 'finance']
    """
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return service.score(clf, [Item(text, image, file)], "tag", threshold=threshold, cache=cache,
                         endpoint="tag").results[0]


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
    adapt: bool = False,
    image_model: str | None = None,
) -> list[ClassifyResult]:
    """``classify`` over up to 1,000 inputs at once, one result each, same order.

    ``adapt=True`` adapts the label prototypes to the batch's own texts (``classer_local.adapt``:
    gains on batches of a few hundred texts, does nothing below ``adapt.MIN_BATCH``, and falls
    back to the plain prototypes when the adapted answers degenerate). It bypasses the cache.

    Example:
        >>> rs = cl.classify_batch(texts=["refund please", "app crashes"],
        ...                        labels=["billing", "technical"])   # doctest: +SKIP
        >>> [r.label for r in rs]                                      # doctest: +SKIP
        ['billing', 'technical']
    """
    items = batch_items(texts, images, files)
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return service.score(clf, items, "classify", cache=cache, endpoint="classify_batch", adapt=adapt).results


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
    adapt: bool = False,
    image_model: str | None = None,
) -> list[TagResult]:
    """``tag`` over up to 1,000 inputs at once, one result each, same order (``adapt`` as in
    ``classify_batch``)."""
    items = batch_items(texts, images, files)
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return service.score(clf, items, "tag", threshold=threshold, cache=cache, endpoint="tag_batch",
                         adapt=adapt).results
