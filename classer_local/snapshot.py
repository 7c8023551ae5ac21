"""A fitted classifier as (JSON-able config, arrays), and back: what ``store`` saves and loads.

The arrays are the label prototypes (and their parts, for document passages), the example
heads, and a tuned encoder's LoRA delta (``tuning``); the config holds everything else. A
restored classifier never re-encodes: it scores exactly as the one that was saved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cache as cache_mod
from .heads import ExampleHeads
from .inputs import looks_like_file

if TYPE_CHECKING:
    from .classifier import Classifier


def get_state(clf: Classifier) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    clf.build()
    config: dict[str, Any] = {
        "labels": clf.labels_, "descriptions": clf.descriptions_, "text_type": clf.text_type_,
        "model": clf.spec_.name, "priority": clf.priority_, "threshold": clf.threshold,
        "truncate": clf.truncate_, "glossary": clf.glossary, "glossary_labels": sorted(clf.glossary_labels_),
        "ocr": clf.ocr,
        **(clf.heads_.config() if clf.heads_ is not None else {}),
        "tag_platt": list(clf.tag_platt_) if clf.tag_platt_ else None,
        "tag_thresholds": None if clf.tag_thresholds_ is None else [
            float(t) if np.isfinite(t) else None for t in clf.tag_thresholds_],
        "visual_examples": {k: [x for x in v if not isinstance(x, str) or looks_like_file(x, clf.policy_)]
                            for k, v in clf.examples_.items()},
        # The text examples too, so a saved classifier can be tuned or refitted later (store.tune).
        "text_examples": {k: [x for x in v if isinstance(x, str) and not looks_like_file(x, clf.policy_)]
                          for k, v in clf.examples_.items()},
    }
    if clf.image_model:
        config["image_model"] = clf.image_model
    arrays = {"prototypes": clf.prototypes_, "components": clf.components_,
              "component_weights": clf.component_weights_}
    if clf.heads_ is not None:
        arrays.update(clf.heads_.arrays())
    if clf.tuned_ is not None:
        config["tune"] = clf.tuned_.metadata()
        arrays.update(clf.tuned_.to_arrays())
    return config, arrays


def from_state(cls: type[Classifier], config: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
               device: str = "auto", ref: str | None = None, allow_paths: bool = True) -> Classifier:
    clf = cls(config["labels"], descriptions=config.get("descriptions"), text_type=config.get("text_type"),
              model=config["model"], image_model=config.get("image_model"),
              priority=config.get("priority", "standard"), device=device,
              threshold=config.get("threshold"), truncate=config.get("truncate"), allow_paths=allow_paths,
              # "descriptions" already holds what the glossary gave when it was saved: a later
              # glossary must not change a saved classifier.
              glossary=False, ocr=config.get("ocr") is True)
    clf._setup()  # a config naming a model models.toml lacks fails here, before its arrays are used
    clf.glossary_labels_ = frozenset(config.get("glossary_labels") or ())  # the regime it was saved in
    clf.examples_ = {k: v for k, v in (config.get("visual_examples") or {}).items() if v}
    clf.ref_ = ref
    digest = hashlib.sha256(cache_mod.canonical(dict(config)).encode())
    for name in sorted(arrays):
        digest.update(name.encode() + np.ascontiguousarray(arrays[name]).tobytes())
    clf.state_id_ = "state:" + digest.hexdigest()
    if config.get("tune"):
        from .tuning import TunedDelta

        clf.tuned_ = TunedDelta.from_arrays(config["tune"], arrays)
    clf.prototypes_ = np.asarray(arrays["prototypes"], dtype=np.float32)
    clf.components_ = np.asarray(arrays.get("components", clf.prototypes_), dtype=np.float32)
    clf.component_weights_ = np.asarray(
        arrays.get("component_weights", np.eye(len(clf.labels_), dtype=np.float32)), dtype=np.float32)
    clf.heads_ = ExampleHeads.from_arrays(len(clf.labels_), config, arrays)
    platt = config.get("tag_platt")
    clf.tag_platt_ = (float(platt[0]), float(platt[1])) if platt else None
    fitted = config.get("tag_thresholds")
    clf.tag_thresholds_ = None if fitted is None else np.array([np.nan if t is None else t for t in fitted])
    clf._tag_calibrated = True
    clf._built = True
    return clf
