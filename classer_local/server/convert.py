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
from ..inputs import REMOTE, PixelBudget, image_pixels, load_document, load_images, read_source
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
        glossary=body.glossary,
        ocr=body.ocr,
    )


def _at(exc: ClasserError, index: int | None) -> ClasserError:
    if index is not None:
        exc.details.setdefault("index", index)
    return exc


def _raw_images(value: Any, index: int | None) -> list[bytes] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidRequestError("image_invalid", "image must not be an empty list.", {"index": index})
    try:
        return [read_source(v, policy=REMOTE, max_bytes=MAX_IMAGE_BYTES, what="image") for v in values]
    except ClasserError as exc:
        raise _at(exc, index) from None


def _pixels(raw: list[bytes], index: int | None) -> int:
    """The pixels decoding ``raw`` will cost, read from the headers only."""
    try:
        return image_pixels(raw, policy=REMOTE)
    except ClasserError as exc:
        raise _at(exc, index) from None


def _items(rows: list[tuple[Any, Any, Any]], indexed: bool) -> list[Item]:
    """(text, image, file) per input -> Items, under ``REMOTE`` and one pixel budget for the request.

    Images are decoded here (the model thread then only embeds them); a file is read once to
    check it and goes on as its bytes, since the request cache keys a file by its content.
    """
    where = [i if indexed else None for i in range(len(rows))]
    raws = [_raw_images(image, w) for (_, image, _), w in zip(rows, where)]
    budget = PixelBudget()  # eleven huge images in eleven items are still one request
    budget.spend(sum(_pixels(r, w) for r, w in zip(raws, where) if r is not None), "images")
    out = []
    for (text, image, file), raw, w in zip(rows, raws, where):
        try:
            images = None if raw is None else load_images(raw, policy=REMOTE)
            data = None
            if file is not None:
                data = read_source(file, policy=REMOTE, max_bytes=MAX_DOCUMENT_BYTES, what="file")
                load_document(data, policy=REMOTE, budget=budget)
        except ClasserError as exc:
            raise _at(exc, w) from None
        item = Item(text, images if isinstance(image, list) or images is None else images[0], data)
        if item.image is None and item.file is None or (indexed and item.text is not None):
            validation.text(item.text, w)
        out.append(item)
    return out


def single_item(body: ClassifyRequest) -> Item:
    """The one input of ``/v1/classify`` or ``/v1/tag``. Blocking: run it in a worker thread."""
    return _items([(body.text, body.image, body.file)], indexed=False)[0]


def batch(body: BatchRequest) -> list[Item]:
    """The inputs of a batch route (shape rules of ``api.batch_items``). Blocking: a worker thread."""
    items = batch_items(body.texts, body.images, body.files)
    return _items([(it.text, it.image, it.file) for it in items], indexed=True)


def has_media(body: Any) -> bool:
    """Whether converting ``body`` reads images or files (worth a worker thread)."""
    return any(getattr(body, n, None) is not None for n in ("image", "file", "images", "files"))
