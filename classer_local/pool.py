"""A small process-wide LRU of ad-hoc classifiers, keyed on everything that defines them.

A call with the same labels, descriptions, examples and model reuses the same ``Classifier``
(and so its prototypes): a 200-label call does not re-embed 200 labels.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from . import cache as cache_mod
from .classifier import Classifier
from .options import ClassifierOptions, value
from .request_cache import examples_fingerprint

MAX_CLASSIFIERS = 256  # a server with many clients keeps one per label set; prototypes are small
_classifiers: OrderedDict[str, Classifier] = OrderedDict()
_lock = threading.Lock()


def get_classifier(options: ClassifierOptions, *, device: str = "auto", allow_paths: bool = True) -> Classifier:
    """The ``Classifier`` for ``options``; saved classifiers (``name`` or ``name@v2``) come from the store."""
    if options.classifier is not None:
        from . import store

        return store.load(options.classifier, device=device, allow_paths=allow_paths)
    o = options
    key = cache_mod.request_key({
        "labels": list(o.labels) if o.labels is not None and not isinstance(o.labels, str) else o.labels,
        "descriptions": dict(o.descriptions or {}),
        "examples": examples_fingerprint(o.examples, allow_paths) if isinstance(o.examples, Mapping) else o.examples,
        "text_type": o.text_type, "priority": value(o.priority), "model": o.model,
        "device": device, "truncate": value(o.truncate), "allow_paths": allow_paths, "image_model": o.image_model,
        "glossary": o.glossary, "ocr": o.ocr,
    })
    with _lock:
        clf = _classifiers.get(key)
        if clf is not None:
            _classifiers.move_to_end(key)
            return clf
    clf = Classifier(o.labels, descriptions=o.descriptions, examples=o.examples, text_type=o.text_type,
                     priority=o.priority or "standard", model=o.model, image_model=o.image_model, device=device,
                     truncate=o.truncate, allow_paths=allow_paths, glossary=o.glossary,
                     ocr=o.ocr)
    clf._setup()  # a bad label set raises its typed error here and is never pooled
    with _lock:
        _classifiers[key] = clf
        while len(_classifiers) > MAX_CLASSIFIERS:
            _classifiers.popitem(last=False)
    return clf


def clear() -> None:
    """Forget every pooled classifier (tests, model reloads)."""
    with _lock:
        _classifiers.clear()
