"""Request and response models of the HTTP API (pydantic): what the OpenAPI document shows.

Option values are not spelt here: ``Priority``/``Truncate`` are derived from
``classer_local.options`` and ``Language`` from ``classer_local.language``, so the server, the
library and the CLI accept the same words.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from ..language import LANGUAGES
from ..options import PRIORITIES, TRUNCATES
from .errors import error_statuses
from .keys import MAX_LIMIT

# Literal[("a", "b")] is Literal["a", "b"]: the tuples of the enums' values, spelt once.
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
Truncate = Literal[TRUNCATES]  # type: ignore[valid-type]
# A string here, checked by ``api.check_language`` in the route: a value outside the enum is the
# library's own 400 ``language_invalid``, not a generic ``request_invalid``.
Language = Annotated[str, WithJsonSchema({"type": "string", "enum": list(LANGUAGES)})]
ImageField = str | list[str]
JobKind = Literal["classify", "tag"]
JobStatus = Literal["created", "running", "completed", "failed", "cancelled"]
UsageGroup = Literal["day", "hour", "month", "endpoint", "model", "key_id"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Options(_Body):
    """What defines the classifier of one scoring request (``ClassifierOptions`` over HTTP)."""

    labels: list[str] | None = Field(None, description="1 to 200 labels; or give `classifier`.")
    descriptions: dict[str, str] | None = None
    examples: dict[str, list[str]] | None = Field(
        None, description="Texts or data: URLs per label; never a path on the server."
    )
    text_type: str | None = Field(None, description='What the inputs are, e.g. "support ticket".')
    priority: Priority | None = Field(None, description="standard (default) or fast.")
    model: str | None = Field(None, description="A model name from `GET /v1/models`; overrides priority.")
    cache: bool = True
    truncate: Truncate | None = None
    classifier: str | None = Field(None, description='A saved classifier, "name" or "name@v2".')
    language: Language | None = Field(
        None, description='"auto": inputs detected as not English are scored by the multilingual model.'
    )
    glossary: StrictBool = Field(True, description="Labels without a description borrow the built-in glossary's.")
    ocr: StrictBool = Field(False, description="Also read the words in images (the server's ocr extra).")


class ClassifyRequest(Options):
    text: str | None = None
    image: ImageField | None = Field(None, description="base64, a data: URL or an http(s) URL; or a list.")
    file: str | None = Field(None, description="A PDF or DOCX as base64, a data: URL or an http(s) URL.")


class TagRequest(ClassifyRequest):
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class BatchRequest(Options):
    texts: list[str] | None = None
    images: list[ImageField | None] | None = None
    files: list[str | None] | None = None


class TagBatchRequest(BatchRequest):
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class CohereExample(BaseModel):
    text: str
    label: str


class CohereRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputs: list[str]
    examples: list[CohereExample]
    truncate: Truncate | None = "END"
    model: str | None = None
    priority: Priority | None = None


class KeyCreateRequest(_Body):
    name: str = Field(..., min_length=1, max_length=100)
    quota: int | None = Field(None, ge=0, le=MAX_LIMIT, description="Token budget; null for unlimited.")
    rpm: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Requests per minute; null for the server default, 0 unlimited."
    )
    tpm: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description="Tokens per minute; null for the server default, 0 unlimited."
    )
    admin: bool = False


class ClassifierCreateRequest(_Body):
    name: str
    labels: list[str] | None = None
    descriptions: dict[str, str] | None = None
    examples: dict[str, list[str]] | None = None
    text_type: str | None = None
    model: str | None = None
    priority: Priority | None = None
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False,
                                    description="None: per-label thresholds fitted from the examples, else 0.5.")
    truncate: Truncate | None = None
    glossary: StrictBool = Field(True, description="Labels without a description borrow the built-in glossary's.")
    calibrate: bool = True
    shared: bool = Field(False, description="Readable (not deletable) by every key of this server.")


class LabelScoreOut(BaseModel):
    label: str
    confidence: float


class _ResultMeta(BaseModel):
    """What every result carries besides its answer (``results.ClassifyResult``/``TagResult``)."""

    scores: dict[str, float]
    tokens: int
    visual_tokens: int
    latency_ms: float
    cached: bool
    model: str
    request_id: str
    visual_model: str | None = None
    ocr_tokens: int = 0


class ClassifyResponse(_ResultMeta):
    label: str
    confidence: float


class TagResponse(_ResultMeta):
    labels: list[LabelScoreOut]
    threshold: float


class ErrorBody(BaseModel):
    error: str
    code: str
    message: str
    details: dict[str, Any]
    docs_url: str


ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in error_statuses()}
"""The ``responses=`` of every route: each status of the one table in ``server.errors``."""
