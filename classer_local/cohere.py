"""Cohere's classify, in-process: ``inputs`` + ``{text, label}`` examples in, Cohere's response shape out.

Example:
    >>> import classer_local as cl
    >>> res = cl.cohere.classify(
    ...     inputs=["Confirm your email address", "hey i need u to send some $"],
    ...     examples=[{"text": "Dermatologists don't like her!", "label": "Spam"},
    ...               {"text": "Hello, open to this?", "label": "Spam"},
    ...               {"text": "Your parcel will be delivered today", "label": "Not spam"},
    ...               {"text": "Review changes to our Terms and Conditions", "label": "Not spam"}])  # doctest: +SKIP
    >>> res.classifications[0].prediction                                                          # doctest: +SKIP
    'Not spam'
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from . import validation
from .errors import InvalidRequestError
from .results import CohereClassification, CohereResponse


def classify(
    inputs: Sequence[str],
    examples: Sequence[Mapping[str, str]],
    *,
    truncate: str | None = "END",
    model: str | None = None,
    priority: str = "standard",
    cache: bool = True,
    device: str = "auto",
    key_id: str | None = None,
    request_id: str | None = None,
    cache_namespace: str | None = None,
    allow_paths: bool = True,
) -> CohereResponse:
    """Classify ``inputs`` (≤ 96) from labelled ``examples`` (≥ 2 per label, ≤ 2,500 in all).

    ``key_id``, ``request_id`` and ``cache_namespace`` are the caller's (the server passes its
    key's): they go on the usage row and keep one key's cached answers from another's.
    """
    inputs = validation.batch(inputs, "inputs", limit=validation.COHERE_MAX_INPUTS)
    for i, text in enumerate(inputs):
        validation.text(text, i)
    if examples is None or not isinstance(examples, Sequence) or isinstance(examples, (str, bytes)):
        raise InvalidRequestError("examples_required", "examples must be a list of {text, label} objects.")
    if len(examples) > validation.COHERE_MAX_EXAMPLES:
        raise InvalidRequestError(
            "examples_too_many", f"At most {validation.COHERE_MAX_EXAMPLES} examples are allowed, got {len(examples)}.",
            {"max": validation.COHERE_MAX_EXAMPLES, "count": len(examples)})
    by_label: dict[str, list[str]] = {}
    for j, ex in enumerate(examples):
        if not isinstance(ex, Mapping) or not isinstance(ex.get("text"), str) or not isinstance(ex.get("label"), str):
            raise InvalidRequestError("example_invalid", f"Example {j} must be an object with string text and label.",
                                      {"index": j})
        if not ex["text"].strip() or not ex["label"].strip():
            raise InvalidRequestError("example_empty", f"Example {j} has an empty text or label.", {"index": j})
        by_label.setdefault(ex["label"], []).append(ex["text"])
    thin = {lb: len(v) for lb, v in by_label.items() if len(v) < validation.COHERE_MIN_EXAMPLES_PER_LABEL}
    if not by_label or thin:
        raise InvalidRequestError(
            "examples_too_few",
            f"Each label needs at least {validation.COHERE_MIN_EXAMPLES_PER_LABEL} examples; too few for {thin or 'all'}.",
            {"min_per_label": validation.COHERE_MIN_EXAMPLES_PER_LABEL, "labels": thin})
    from .options import ClassifierOptions

    clf = ClassifierOptions(list(by_label), examples=by_label, priority=priority, model=model,
                            truncate=truncate or "END").build(device=device, allow_paths=allow_paths)
    from . import service
    from .classifier import Item

    results = service.score(clf, [Item(t) for t in inputs], "classify", cache=cache, endpoint="classify_batch",
                            key_id=key_id, request_id=request_id, cache_namespace=cache_namespace).results
    out = []
    for text, r in zip(inputs, results):
        ranked = sorted(r.scores.items(), key=lambda kv: -kv[1])
        out.append(CohereClassification(
            id=str(uuid.uuid4()), input=text, prediction=r.label, confidence=r.confidence,
            predictions=[r.label], confidences=[r.confidence],
            labels={lb: {"confidence": c} for lb, c in ranked},
        ))
    tokens = sum(r.tokens for r in results if not r.cached)
    meta: dict[str, Any] = {"api_version": {"version": "1"},
                            "billed_units": {"classifications": len(inputs), "input_tokens": tokens}}
    return CohereResponse(id=str(uuid.uuid4()), classifications=out, meta=meta)
