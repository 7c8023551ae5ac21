"""The request cache's keys and its two verbs: look answers up, remember fresh ones.

A key is the SHA-256 of the canonical request: the model and its calibration, the labels
(sorted), descriptions, examples (by content), options, the input (files and images by
content) and, on the server, the caller's namespace, so one key's answers are never another's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import cache as cache_mod
from .inputs import TRUSTED, InputPolicy, looks_like_file
from .request_ids import new_request_id
from .results import ClassifyResult, TagResult, result_from_dict

if TYPE_CHECKING:
    from .classifier import Classifier, Item


def request_key(clf: Classifier, item: Item, op: str, threshold: float | None = None,
                namespace: str | None = None) -> str:
    """The cache key of one input scored by ``clf``."""
    payload = {
        "op": op,
        "model": clf.spec_.scoring_id,
        "vectors": clf.vector_id,  # differs once the encoder is tuned
        "labels": sorted(clf.labels_),
        "descriptions": clf.descriptions_,
        "glossary_labels": sorted(clf.glossary_labels_),  # the regime (its temperature) they were given in
        "ocr": clf.ocr if item.image is not None else None,
        "examples": clf.ref_ or clf.state_id_ or examples_digest(clf),
        "text_type": clf.text_type_,
        "truncate": clf.truncate_,
        "tag_platt": clf.tag_platt_,
        "tag_thresholds": None if clf.tag_thresholds_ is None else [
            round(float(t), 4) if t == t else None for t in clf.tag_thresholds_],
        "threshold": (clf.threshold_ if threshold is None else threshold) if op == "tag" else None,
        "text": item.text,
        "image": fingerprint(item.image, clf.policy_),
        "file": fingerprint(item.file, clf.policy_),
    }
    if namespace is not None:
        payload["namespace"] = namespace
    if item.image is not None or item.file is not None:
        payload["image_model"] = clf.image_spec_.model_id
    return cache_mod.request_key(payload)


def cached(clf: Classifier, items: Sequence[Item], op: str, threshold: float | None = None,
           namespace: str | None = None) -> tuple[list[ClassifyResult | TagResult | None], list[str]]:
    """The cache's answers for ``items`` (None where it has none) and their keys."""
    keys = [request_key(clf, it, op, threshold, namespace) for it in items]
    out: list[ClassifyResult | TagResult | None] = []
    for k in keys:
        hit = cache_mod.get_result(k)
        out.append(None if hit is None else _from_cache(hit[0], clf.labels_, hit[1]))
    return out, keys


def remember(keys: Sequence[str | None], results: Sequence[Any], indices: Sequence[int]) -> None:
    """Store ``results[i]`` under ``keys[i]`` for each index (fresh answers only)."""
    for i in indices:
        key = keys[i]
        if key is not None:
            cache_mod.put_result(key, results[i].to_dict())


def examples_digest(clf: Classifier) -> str | None:
    """A content hash of the examples, computed once per examples object: thousands of
    examples must not be re-hashed for every input's cache key."""
    if not clf.examples_:
        return None
    memo = clf.__dict__.get("_examples_sha")
    if memo is None or memo[0] is not clf.examples_:
        sha = cache_mod.request_key(examples_fingerprint(clf.examples_, clf.policy_))
        clf.__dict__["_examples_sha"] = memo = (clf.examples_, sha)
    return memo[1]


def examples_fingerprint(examples: Mapping[str, Any], policy: InputPolicy | bool = TRUSTED) -> Any:
    """Examples as a JSON-able, content-based value (texts as they are, files by content)."""
    policy = _policy(policy)
    out = {}
    for label, values in sorted(examples.items()):
        values = [values] if isinstance(values, str) else list(values)
        if all(isinstance(v, str) and not looks_like_file(v, policy) for v in values):
            out[label] = values
        else:
            out[label] = [fingerprint(v, policy) for v in values]
    return out


def fingerprint(value: Any, policy: InputPolicy | bool = TRUSTED) -> Any:
    """A stable, content-based stand-in for an input in a cache key."""
    policy = _policy(policy)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if policy.allow_paths and looks_like_file(value, policy) and not low.startswith(("http://", "https://", "data:")):
            from .errors import ClasserError
            from .inputs import read_source
            from .inputs.limits import MAX_DOCUMENT_BYTES

            try:
                data = read_source(value, policy=policy, max_bytes=MAX_DOCUMENT_BYTES, what="file")
            except (ClasserError, OSError):  # an unreadable file fails later, with its own typed error
                return value
            return "sha256:" + hashlib.sha256(data if isinstance(data, bytes) else data.tobytes()).hexdigest()
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, (list, tuple)):
        return [fingerprint(v, policy) for v in value]
    if hasattr(value, "tobytes") and hasattr(value, "size"):  # PIL.Image
        return "sha256:" + hashlib.sha256(value.tobytes()).hexdigest() + f":{value.size}"
    if hasattr(value, "__fspath__"):
        return fingerprint(str(value), policy)
    return repr(value)


def _policy(policy: InputPolicy | bool) -> InputPolicy:
    if isinstance(policy, bool):
        from .inputs import REMOTE

        return TRUSTED if policy else REMOTE
    return policy


def _from_cache(data: dict[str, Any], labels: list[str], age: float) -> ClassifyResult | TagResult:
    # Keys sort labels, so a hit may come from a call with another label order: restore the caller's.
    data = {**data, "scores": {lb: data["scores"][lb] for lb in labels}, "cached": True,
            "request_id": new_request_id()}
    return result_from_dict(data).with_meta(cache_age_s=round(age, 3))
