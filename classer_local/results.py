"""The result types: one per call, frozen, with the hosted API's wire format in ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


def _shallow(result: Any) -> dict[str, Any]:
    """The wire dict: like ``asdict`` but without its deep copies (hot in batch jobs)."""
    data = {f: getattr(result, f) for f in result.__dataclass_fields__ if f != "cache_age_s"}
    data["scores"] = dict(data["scores"])
    if "labels" in data:
        data["labels"] = [{"label": x.label, "confidence": x.confidence} for x in data["labels"]]
    return data


@dataclass(frozen=True)
class LabelScore:
    label: str
    confidence: float


@dataclass(frozen=True)
class ClassifyResult:
    """One label (softmax over all labels); ``scores`` holds every label's confidence, summing to 1.

    Example:
        >>> r = ClassifyResult(label="a", confidence=0.9, scores={"a": 0.9, "b": 0.1})
        >>> r.to_dict()["label"]
        'a'
    """

    label: str
    confidence: float
    scores: dict[str, float]
    tokens: int = 0
    visual_tokens: int = 0
    latency_ms: float = 0.0
    cached: bool = False
    model: str = ""
    request_id: str = ""
    visual_model: str | None = None
    ocr_tokens: int = 0
    cache_age_s: float = field(default=0.0, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _shallow(self)

    def with_meta(self, **changes: Any) -> ClassifyResult:
        return replace(self, **changes)


@dataclass(frozen=True)
class TagResult:
    """Every label above ``threshold``, best first; ``scores`` holds every label's confidence."""

    labels: list[LabelScore]
    scores: dict[str, float]
    threshold: float
    tokens: int = 0
    visual_tokens: int = 0
    latency_ms: float = 0.0
    cached: bool = False
    model: str = ""
    request_id: str = ""
    visual_model: str | None = None
    ocr_tokens: int = 0
    cache_age_s: float = field(default=0.0, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _shallow(self)

    def with_meta(self, **changes: Any) -> TagResult:
        return replace(self, **changes)

    @property
    def label_names(self) -> list[str]:
        return [x.label for x in self.labels]


def result_from_dict(data: dict[str, Any]) -> ClassifyResult | TagResult:
    """Inverse of ``to_dict`` (the request cache stores dicts)."""
    data = {k: v for k, v in data.items() if k != "cache_age_s"}
    if "labels" in data and "threshold" in data:
        labels = [LabelScore(**x) for x in data["labels"]]
        return TagResult(**{**data, "labels": labels})
    return ClassifyResult(**data)


@dataclass(frozen=True)
class CohereClassification:
    id: str
    input: str
    prediction: str
    confidence: float
    predictions: list[str]
    confidences: list[float]
    labels: dict[str, dict[str, float]]
    classification_type: str = "single-label"


@dataclass(frozen=True)
class CohereResponse:
    id: str
    classifications: list[CohereClassification]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
