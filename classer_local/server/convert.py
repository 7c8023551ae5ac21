"""The one request -> ``Item`` conversion of the server (single inputs and batches).

Over HTTP nothing is ever a path on this machine: every ``image``/``file`` string goes
through ``inputs.read_source(..., policy=REMOTE)`` (base64, a ``data:`` URL, or an http(s)
URL when the server allows URLs), and the classifier is built with ``allow_paths=False``
so no example string is read as a file either. Images and documents are decoded here, in a
worker thread and under one pixel budget per request, so a hostile input is refused (or
read) before it reaches the single model thread.
"""

from __future__ import annotations

from typing import Any

from .. import validation
from ..api import batch_items
from ..classifier import Item
from ..errors import ClasserError, InvalidRequestError
from ..inputs import REMOTE, PixelBudget, load_document, load_images, read_source
from ..inputs.limits import MAX_DOCUMENT_BYTES, MAX_IMAGE_BYTES
from ..options import ClassifierOptions
from .schemas import BatchRequest, ClassifyRequest, Options


def check_strings(value: Any) -> None:
    """Refuse strings that cannot be UTF-8 (lone surrogates from JSON escapes), before they reach a model."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                "unicode_invalid", "The request holds a string that is not valid Unicode (a lone surrogate)."
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_strings(k)
            check_strings(v)
    elif isinstance(value, list):
        for v in value:
            check_strings(v)


def options(body: Options) -> ClassifierOptions:
    """The request's ``ClassifierOptions`` (the labels-or-classifier rule is its ``validate``)."""
    return ClassifierOptions(
        labels=body.labels,
        descriptions=body.descriptions,
        examples=body.examples,
        text_type=body.text_type,
        priority=body.priority or "standard",
        model=body.model,
        truncate=body.truncate,
        classifier=body.classifier,
    )


def _at(exc: ClasserError, index: int | None) -> ClasserError:
    if index is not None:
        exc.details.setdefault("index", index)
    return exc


def _image(value: Any, index: int | None, budget: PixelBudget) -> Any:
    """An ``image`` field (one string or a list) as decoded RGB images, read under ``REMOTE``."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidRequestError("image_invalid", "image must not be an empty list.", {"index": index})
    try:
        raw = [read_source(v, policy=REMOTE, max_bytes=MAX_IMAGE_BYTES, what="image") for v in values]
        images = load_images(raw, policy=REMOTE, budget=budget)
    except ClasserError as exc:
        raise _at(exc, index) from None
    return images if isinstance(value, list) else images[0]


def _file(value: Any, index: int | None, budget: PixelBudget) -> Any:
    """A ``file`` field as its bytes, read under ``REMOTE`` and checked by reading it once here.

    The bytes (not the ``Document``) go on: the request cache keys a file by its content.
    """
    if value is None:
        return None
    try:
        data = read_source(value, policy=REMOTE, max_bytes=MAX_DOCUMENT_BYTES, what="file")
        load_document(data, policy=REMOTE, budget=budget)
    except ClasserError as exc:
        raise _at(exc, index) from None
    return data


def single_item(body: ClassifyRequest) -> Item:
    """The one input of ``/v1/classify`` or ``/v1/tag``. Blocking: run it in a worker thread."""
    budget = PixelBudget()
    item = Item(body.text, _image(body.image, None, budget), _file(body.file, None, budget))
    if item.image is None and item.file is None:
        validation.text(item.text)
    return item


def batch(body: BatchRequest) -> list[Item]:
    """The inputs of a batch route (shape rules of ``api.batch_items``). Blocking: a worker thread."""
    items = batch_items(body.texts, body.images, body.files)
    budget = PixelBudget()  # one per request: eleven huge images in eleven items are still one request
    out = []
    for i, it in enumerate(items):
        item = Item(it.text, _image(it.image, i, budget), _file(it.file, i, budget))
        if item.image is None and item.file is None or item.text is not None:
            validation.text(item.text, i)
        out.append(item)
    return out


def has_media(body: Any) -> bool:
    """Whether converting ``body`` reads images or files (worth a worker thread)."""
    return any(getattr(body, n, None) is not None for n in ("image", "file", "images", "files"))
