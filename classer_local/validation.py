"""The hosted API's limits, checked before any model work. Each failure is a typed error.

Every string a caller gives (texts, labels, descriptions, text examples, ``text_type``) must be
encodable as UTF-8: a lone surrogate (``"\\ud800"``, from a JSON escape or a bad decode) is a
typed ``*_invalid`` error here, never a ``UnicodeEncodeError`` deep in a tokenizer.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidRequestError

MAX_LABELS = 200
MAX_LABEL_CHARS = 100
MAX_DESCRIPTION_CHARS = 2_000
MAX_BATCH = 1_000
DEFAULT_THRESHOLD = 0.5  # tag, when neither the call, the classifier nor its examples give one
MAX_EXAMPLES = 10_000
COHERE_MAX_INPUTS = 96
COHERE_MAX_EXAMPLES = 2_500
COHERE_MIN_EXAMPLES_PER_LABEL = 2
MAX_TEXT_TYPE_CHARS = 100
"""Characters of ``text_type`` ("support ticket", "scanned form"...): it goes into every prompt."""


def _bad(code: str, message: str, **details: Any) -> InvalidRequestError:
    return InvalidRequestError(code, message, details)


def _is_utf8(value: str) -> bool:
    """False for strings holding lone surrogates (which no model, file or JSON encoder can take)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def labels(values: Any) -> list[str]:
    """1–200 unique, non-empty label strings of at most 100 characters.

    Example:
        >>> labels(["a", "b"])
        ['a', 'b']
    """
    if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        if isinstance(values, str):
            raise _bad("labels_invalid", "labels must be a list of strings, not a single string.", labels=values)
        if values is None:
            raise _bad("labels_required", "labels is required: a list of 1 to 200 label strings.")
        raise _bad("labels_invalid", "labels must be a list of strings.", type=type(values).__name__)
    out = list(values)
    if not out:
        raise _bad("labels_empty", "At least one label is required.", min=1)
    if len(out) > MAX_LABELS:
        raise _bad("labels_too_many", f"At most {MAX_LABELS} labels are allowed, got {len(out)}.",
                   max=MAX_LABELS, count=len(out))
    seen: set[str] = set()
    for i, label in enumerate(out):
        if not isinstance(label, str):
            raise _bad("label_invalid", f"Label {i} must be a string, got {type(label).__name__}.", index=i)
        if not _is_utf8(label):
            raise _bad("label_invalid", f"Label {i} is not valid Unicode (it holds a lone surrogate).", index=i)
        if not label.strip():
            raise _bad("label_empty", f"Label {i} is empty.", index=i)
        if len(label) > MAX_LABEL_CHARS:
            raise _bad("label_too_long", f"Label {i} has {len(label)} characters; the limit is {MAX_LABEL_CHARS}.",
                       index=i, length=len(label), max=MAX_LABEL_CHARS)
        if label in seen:
            raise _bad("labels_duplicate", f"Label {label!r} appears more than once; labels must be unique.",
                       label=label)
        seen.add(label)
    return out


def descriptions(values: Mapping[str, str] | None, known: Sequence[str]) -> dict[str, str]:
    if not values:
        return {}
    if not isinstance(values, Mapping):
        raise _bad("descriptions_invalid", "descriptions must be a mapping of label -> description.")
    unknown = [k for k in values if k not in set(known)]
    if unknown:
        raise _bad("description_unknown_label", f"descriptions name labels that are not in labels: {unknown}.",
                   unknown=unknown)
    out = {}
    for k, v in values.items():
        if not isinstance(v, str):
            raise _bad("description_invalid", f"The description of {k!r} must be a string.", label=k)
        if not _is_utf8(v):
            raise _bad("description_invalid", f"The description of {k!r} is not valid Unicode (a lone surrogate).",
                       label=k)
        if len(v) > MAX_DESCRIPTION_CHARS:
            raise _bad("description_too_long",
                       f"The description of {k!r} has {len(v)} characters; the limit is {MAX_DESCRIPTION_CHARS}.",
                       label=k, length=len(v), max=MAX_DESCRIPTION_CHARS)
        if v.strip():
            out[k] = v
    return out


def examples(values: Mapping[str, Sequence[Any]] | None, known: Sequence[str]) -> dict[str, list[Any]]:
    if not values:
        return {}
    if not isinstance(values, Mapping):
        raise _bad("examples_invalid", "examples must be a mapping of label -> list of examples.")
    unknown = [k for k in values if k not in set(known)]
    if unknown:
        raise _bad("example_unknown_label", f"examples name labels that are not in labels: {unknown}.",
                   unknown=unknown)
    out: dict[str, list[Any]] = {}
    total = 0
    for k, v in values.items():
        items = [v] if isinstance(v, (str, bytes)) else list(v)
        for j, item in enumerate(items):
            if item is None or (isinstance(item, str) and not item.strip()):
                raise _bad("example_empty", f"Example {j} of {k!r} is empty.", label=k, index=j)
            if isinstance(item, str) and not _is_utf8(item):
                raise _bad("example_invalid", f"Example {j} of {k!r} is not valid Unicode (a lone surrogate).",
                           label=k, index=j)
        total += len(items)
        if items:
            out[k] = items
    if total > MAX_EXAMPLES:
        raise _bad("examples_too_many", f"At most {MAX_EXAMPLES} examples are allowed, got {total}.",
                   max=MAX_EXAMPLES, count=total)
    return out


def threshold(value: Any) -> float:
    """A number in [0, 1]; strings (``"0.5"``) and booleans are refused, not converted.

    Example:
        >>> threshold(0.5), threshold(1)
        (0.5, 1.0)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad("threshold_invalid", f"threshold must be a number in [0, 1], got {value!r}.",
                   threshold=repr(value)[:50])
    t = float(value)
    if not 0.0 <= t <= 1.0:
        raise _bad("threshold_out_of_range", f"threshold must be within [0, 1], got {t}.", threshold=t)
    return t


def glossary(value: Any) -> bool:
    """``glossary`` as a true boolean; 0/1 and strings ("false") are refused, not read as truth values.

    Example:
        >>> glossary(False)
        False
    """
    if not isinstance(value, bool):
        raise _bad("glossary_invalid", f"glossary must be true or false, got {value!r}.", glossary=repr(value)[:50])
    return value


def ocr(value: Any) -> bool:
    """``ocr`` as a true boolean, refused otherwise (as ``glossary``).

    Example:
        >>> ocr(True)
        True
    """
    if not isinstance(value, bool):
        raise _bad("ocr_invalid", f"ocr must be true or false, got {value!r}.", ocr=repr(value)[:50])
    return value


def text(value: Any, index: int | None = None) -> str:
    where = "" if index is None else f" at index {index}"
    if value is None:
        raise _bad("input_required", f"A text, image or file is required{where}.", index=index)
    if not isinstance(value, str):
        raise _bad("text_invalid", f"text{where} must be a string, got {type(value).__name__}.", index=index)
    if not _is_utf8(value):
        raise _bad("text_invalid", f"text{where} is not valid Unicode (it holds a lone surrogate).", index=index)
    if not value.strip():
        raise _bad("text_empty", f"text{where} is empty.", index=index)
    return value


def text_type(value: Any) -> str | None:
    """The kind of input ("support ticket"), stripped, or ``None``; at most 100 characters.

    Example:
        >>> text_type("  support ticket "), text_type(""), text_type(None)
        ('support ticket', None, None)
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _is_utf8(value):
        raise _bad("text_type_invalid", "text_type must be a string of valid Unicode.", type=type(value).__name__)
    value = value.strip()
    if len(value) > MAX_TEXT_TYPE_CHARS:
        raise _bad("text_type_too_long",
                   f"text_type has {len(value)} characters; the limit is {MAX_TEXT_TYPE_CHARS}.",
                   length=len(value), max=MAX_TEXT_TYPE_CHARS)
    return value or None


def batch(values: Any, name: str = "texts", limit: int = MAX_BATCH) -> list[Any]:
    if values is None or isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise _bad("batch_invalid", f"{name} must be a list.", field=name)
    out = list(values)
    if not out:
        raise _bad("batch_empty", f"{name} must hold at least one item.", field=name)
    if len(out) > limit:
        raise _bad("batch_too_large", f"At most {limit} {name} per call, got {len(out)}.",
                   field=name, max=limit, count=len(out))
    return out
