"""Module-level ``classify``/``tag`` and their batch forms, over the pool of ``Classifier``s.

A call with the same labels, descriptions, examples and model reuses the same
``Classifier`` (``pool``), so a 200-label call does not re-embed 200 labels. Every call
scores through ``service`` (cache, usage row, latency), as the server's routes do; ``route``
says which classifier scores which input (``language="auto"``), for the server as well.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import service, validation
from .classifier import Classifier, Item
from .errors import ClasserError
from .language import LANGUAGES, Language
from .options import ClassifierOptions, Priority, Truncate, value
from .results import ClassifyResult, TagResult

__all__ = ["MULTILINGUAL_MODEL", "Route", "batch_items", "check_language", "classify", "classify_batch",
           "gather", "get_classifier", "route", "score_routed", "tag", "tag_batch"]


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
    glossary: bool = True,
    ocr: bool = False,
) -> Classifier:
    """The ``Classifier`` for these arguments, built once and kept in a small LRU.

    ``classifier="name"`` or ``"name@v2"`` loads a saved classifier instead of ``labels``
    (giving both is the typed error ``classifier_and_labels``).
    """
    return ClassifierOptions(labels, descriptions, examples, text_type, priority, model, truncate,
                             classifier, image_model, glossary, ocr).build(device=device, allow_paths=allow_paths)


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


def check_language(language: Language | str | None) -> str | None:
    """``language`` as a plain value (``None`` or one of ``language.LANGUAGES``), else the typed
    error ``language_invalid``: the one check of the library, the CLI and the server."""
    language = value(language)
    if language is not None and language not in LANGUAGES:
        raise validation.InvalidRequestError("language_invalid", f"language must be 'auto' or None, got {language!r}.",
                                             {"language": str(language)[:20]})
    return language


@dataclass(frozen=True)
class Route:
    """Some of a call's inputs (``indices`` into it, ascending) and the classifier that scores them."""

    clf: Classifier
    indices: list[int]
    items: list[Item]


def route(clf: Classifier, items: Sequence[Item], language: Language | str | None) -> list[Route]:
    """Which classifier scores which inputs; the library's verbs and the server's routes both ask here.

    ``language="auto"``: texts and documents detected as not English (``classer_local.language``)
    go to ``MULTILINGUAL_MODEL`` with ``clf``'s labels, descriptions, examples and options, when
    that model is installed and ``clf`` reads English only (a saved classifier keeps its own
    model). An input with an image is never routed. A document's language is read from the start
    of its text (``inputs.document_text``, nothing rendered), joined to the input's text as the
    classifier joins them; a scan has no text and stays on ``clf``. Each document is read once
    here and its bytes go on in its ``Item``, so a file object or a URL is not read again.
    """
    language = check_language(language)
    whole = [Route(clf, list(range(len(items))), list(items))]
    if language is None:
        return whole
    from . import language as lang
    from . import registry

    if clf.ref_ is not None or clf.spec_.options.get("multilingual") or not registry.get(MULTILINGUAL_MODEL).installed():
        return whole
    items = list(items)
    foreign: list[int] = []
    for i, it in enumerate(items):
        if it.image is not None:
            continue
        text = it.text if isinstance(it.text, str) else None
        if it.file is not None:
            from .inputs import Document, document_text, read_source
            from .inputs.limits import MAX_DOCUMENT_BYTES

            data = it.file if isinstance(it.file, Document) else read_source(
                it.file, policy=clf.policy_, max_bytes=MAX_DOCUMENT_BYTES, what="document")
            items[i] = Item(it.text, it.image, data)
            text = "\n".join(t for t in (text, document_text(data, max_chars=lang.SAMPLE_CHARS)) if t)
        if text and not lang.is_english(text):
            foreign.append(i)
    if not foreign:
        return [Route(clf, whole[0].indices, items)]
    multilingual = get_classifier(clf.labels_, descriptions=clf.descriptions_, examples=clf.examples_,
                                  text_type=clf.text_type_, model=MULTILINGUAL_MODEL, device=clf.device,
                                  truncate=clf.truncate_, image_model=clf.image_model,
                                  allow_paths=clf.allow_paths)  # a server's examples stay non-paths
    rest = sorted(set(range(len(items))) - set(foreign))
    pairs = ((clf, rest), (multilingual, foreign))
    return [Route(c, idx, [items[i] for i in idx]) for c, idx in pairs if idx]


def gather(routes: Sequence[Route], scored: Sequence[service.Scored]) -> service.Scored:
    """One ``Scored`` for the whole call from each route's, answers and keys back in input order."""
    if len(scored) == 1:
        return scored[0]
    n = sum(len(r.indices) for r in routes)
    results: list[Any] = [None] * n
    keys: list[str | None] = [None] * n
    for r, s in zip(routes, scored):
        for j, i in enumerate(r.indices):
            results[i], keys[i] = s.results[j], s.keys[j]
    return service.Scored(results, keys, sum(s.hits for s in scored), sum(s.tokens for s in scored),
                          sum(s.visual_tokens for s in scored), max(s.latency_ms for s in scored))


def score_routed(clf: Classifier, items: list[Item], op: str, language: str | None, *, endpoint: str,
           **kw: Any) -> list[Any]:
    """``service.score`` over each of ``route``'s groups (one usage row each); a routing error (a
    bad ``language``, an unreadable document) gets its usage row here."""
    clf._setup()  # as in service.score: a bad parameter fails before any usage row
    t0 = time.perf_counter()
    try:
        routes = route(clf, items, language)
    except ClasserError as exc:
        service.failed(clf, len(items), t0, endpoint, exc)
        raise
    scored = [service.score(r.clf, r.items, op, endpoint=endpoint, **kw) for r in routes]
    return gather(routes, scored).results


def _options(labels: Any, descriptions: Any, examples: Any, text_type: Any, priority: Any, model: Any,
             truncate: Any, classifier: Any, device: str, image_model: str | None = None,
             glossary: bool = True, ocr: bool = False) -> Classifier:
    return get_classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                          priority=priority, model=model, device=device, truncate=truncate, classifier=classifier,
                          image_model=image_model, glossary=glossary, ocr=ocr)


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
    glossary: bool = True,
    ocr: bool = False,
) -> ClassifyResult:
    """Pick the one best label for a text, image(s) or document.

    ``model`` names the text model (or, for images, an image model); ``image_model`` names the
    image model explicitly. A result's ``model`` is the model that answered and ``visual_model``
    the image model that read its pictures. ``language="auto"``: a text or document detected as
    not English (``classer_local.language``) is scored by the multilingual model
    (``use-multilingual``, the ``[multilingual]`` extra) when it is installed; images stay on
    ``model`` (``route``). A label given without a description borrows the built-in glossary's
    (``classer_local.glossary``: "technical" reads as a technical problem); ``glossary=False``
    scores the bare names. ``ocr=True`` also reads the words in images (a photo of a receipt, a
    screenshot; the ``[ocr]`` extra) and scores them with the picture, as a document's text is;
    a result's ``ocr_tokens`` counts them. Scanned PDFs are read whatever ``ocr`` says.

    Example:
        >>> import classer_local as cl
        >>> r = cl.classify(text="I can't log in to my account",
        ...                 labels=["billing", "technical", "sales"])  # doctest: +SKIP
        >>> r.label                                                    # doctest: +SKIP
        'technical'
    """
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model, glossary, ocr)
    return score_routed(clf, [Item(text, image, file)], "classify", language, cache=cache, endpoint="classify")[0]


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
    glossary: bool = True,
    ocr: bool = False,
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
                   image_model, glossary, ocr)
    return score_routed(clf, [Item(text, image, file)], "tag", language, threshold=threshold, cache=cache, endpoint="tag")[0]


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
    glossary: bool = True,
    ocr: bool = False,
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
                   image_model, glossary, ocr)
    return score_routed(clf, items, "classify", language, cache=cache, endpoint="classify_batch", adapt=adapt)


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
    glossary: bool = True,
    ocr: bool = False,
) -> list[TagResult]:
    """``tag`` over up to 1,000 inputs at once, one result each, same order (``adapt`` as in
    ``classify_batch``)."""
    items = batch_items(texts, images, files)
    clf = _options(labels, descriptions, examples, text_type, priority, model, truncate, classifier, device,
                   image_model, glossary, ocr)
    return score_routed(clf, items, "tag", language, threshold=threshold, cache=cache, endpoint="tag_batch", adapt=adapt)
