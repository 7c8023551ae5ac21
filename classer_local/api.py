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


MULTILINGUAL_MODEL = "use-multilingual"


def _non_english(clf: Classifier, items: Sequence[Item], language: str | None) -> list[int]:
    """With ``language="auto"``: the plain texts detected as not English, when the multilingual
    model is installed and ``clf`` reads English only (a saved classifier keeps its own model)."""
    if language is None:
        return []
    if language != "auto":
        raise validation.InvalidRequestError("language_invalid", f"language must be 'auto' or None, got {language!r}.",
                                             {"language": str(language)[:20]})
    from . import language as lang
    from . import registry

    if clf.ref is not None or clf.spec.options.get("multilingual") or not registry.get(MULTILINGUAL_MODEL).installed():
        return []
    return [i for i, it in enumerate(items)
            if isinstance(it.text, str) and it.file is None and it.image is None and not lang.is_english(it.text)]


def _score(clf: Classifier, items: list[Item], op: str, language: str | None, **kw: Any) -> list[Any]:
    """``service.score``, with non-English texts scored by the multilingual model (``language``):
    the same labels, descriptions, examples and options on ``MULTILINGUAL_MODEL``."""
    foreign = _non_english(clf, items, language)
    if not foreign:
        return service.score(clf, items, op, **kw).results
    multilingual = get_classifier(clf.labels, descriptions=clf.descriptions, examples=clf.examples,
                                  text_type=clf.text_type, model=MULTILINGUAL_MODEL, device=clf.device,
                                  truncate=clf.truncate, image_model=clf.image_model)
    out: list[Any] = [None] * len(items)
    rest = sorted(set(range(len(items))) - set(foreign))
    for idx, scorer in ((rest, clf), (foreign, multilingual)):
        if idx:
            for i, r in zip(idx, service.score(scorer, [items[i] for i in idx], op, **kw).results):
                out[i] = r
    return out


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
    language: str | None = None,
) -> ClassifyResult:
    """Pick the one best label for a text, image(s) or document.

    ``model`` names the text model (or, for images, an image model); ``image_model`` names the
    image model explicitly. A result's ``model`` is the model that answered and ``visual_model``
    the image model that read its pictures. ``language="auto"``: a text detected as not English
    (``classer_local.language``) is scored by the multilingual model (``use-multilingual``, the
    ``[multilingual]`` extra) when it is installed; documents and images stay on ``model``.

    Example:
        >>> import classer_local as cl
        >>> r = cl.classify(text="I can't log in to my account",
        ...                 labels=["billing", "technical", "sales"])  # doctest: +SKIP
        >>> r.label                                                    # doctest: +SKIP
        'technical'
    """
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return _score(clf, [Item(text, image, file)], "classify", language, cache=cache, endpoint="classify")[0]


def tag(
    text: str | None = None,
    labels: Sequence[str] | None = None,
    *,
    image: Any = None,
    file: Any = None,
    threshold: float | None = None,
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
    language: str | None = None,
) -> TagResult:
    """Every label whose calibrated confidence reaches ``threshold``, best first.

    ``threshold=None``: the classifier's own (a saved classifier's, or per-label thresholds fitted
    from at least 5 examples of a label), else 0.5.

    Example:
        >>> t = cl.tag(text="Breaking: Tech stocks surge amid AI boom",
        ...            labels=["politics", "technology", "finance", "sports"])   # doctest: +SKIP
        >>> [x.label for x in t.labels]                                         # doctest: +SKIP
        ['technology', 'finance']
    """
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return _score(clf, [Item(text, image, file)], "tag", language, threshold=threshold, cache=cache, endpoint="tag")[0]


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
    language: str | None = None,
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
    return _score(clf, items, "classify", language, cache=cache, endpoint="classify_batch", adapt=adapt)


def tag_batch(
    texts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    *,
    images: Sequence[Any] | None = None,
    files: Sequence[Any] | None = None,
    threshold: float | None = None,
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
    language: str | None = None,
) -> list[TagResult]:
    """``tag`` over up to 1,000 inputs at once, one result each, same order (``adapt`` as in
    ``classify_batch``)."""
    items = batch_items(texts, images, files)
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model)
    return _score(clf, items, "tag", language, threshold=threshold, cache=cache, endpoint="tag_batch", adapt=adapt)
