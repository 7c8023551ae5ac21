"""Visual scores for images and document pages: one similarity per label, ready to fuse with text.

Two ways to reach labels from pixels, picked by the image backend:

* ImageNet CNN (``timm`` backend, EfficientNet-Lite0 by default) -- zero-shot through ConSE
  (Norouzi et al., 2014): the image's top-``k`` ImageNet class probabilities weight the text
  embeddings of those class names; that mean is the image's vector in the *text* model's
  space, scored by cosine against text prototypes of the labels (label name, "a photo of a
  {label}", description), both taken relative to the mean class-name vector (which every
  ConSE vector lies close to). The 1000 class-name vectors are computed once per text model
  and kept in memory and under ``config.subdir("cache")/vision``.
* CLIP (``open-clip`` backend) -- labels through CLIP's text tower, images through its image
  tower: the usual zero-shot CLIP.

Image examples (few-shot) become image-space prototypes: the mean normalised embedding of each
label's examples, centred on the mean of all examples (SimpleShot's CL2N) when two or more
labels have examples. Then ``sims = EXAMPLE_WEIGHT * example_sims + (1 - EXAMPLE_WEIGHT) *
zero_shot_sims`` for the labels that have examples; labels without examples keep their
zero-shot similarity.

Each input is a list of images (several images of one item, or the pages of one document);
its vectors are averaged (mean of normalised vectors) before scoring.

Document pages (images whose ``info`` carries ``inputs.documents.PAGE_INFO_KEY``) are letterboxed
onto a white square before the image model, which would otherwise crop a tall page to its middle.

Fusion with text happens in ``fusion`` (the only place the two meet), with the text/visual
weights below: 0.85 / 0.15 zero-shot, 0.6 / 0.4 (``FEW_SHOT_VISUAL_WEIGHT``,
``scorer.visual_weight``) once image/page examples are given; ``T_vis = scorer.temperature``.
Image-only inputs use ``visual_sims / T_vis`` alone.

Examples are read under the scorer's ``policy`` (``inputs.InputPolicy``): with ``REMOTE`` no
example string is ever a path on this machine.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .errors import InvalidRequestError
from .inputs.policy import TRUSTED, InputPolicy

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .registry import ModelSpec

__all__ = [
    "CONSE_TOP_K",
    "EXAMPLE_WEIGHT",
    "FEW_SHOT_VISUAL_WEIGHT",
    "TEXT_WEIGHT",
    "VISUAL_WEIGHT",
    "VisualScorer",
]

TEXT_WEIGHT = 0.85
"""Weight of the text logits when a document is scored from its text and its page images."""
VISUAL_WEIGHT = 0.15
"""Weight of the visual logits for documents (``TEXT_WEIGHT + VISUAL_WEIGHT == 1``). Small:
zero-shot, ImageNet classes say little about a page's kind (chance level on the evaldata
documents); see ``VisualScorer.visual_weight`` for the share once page examples are given."""
FEW_SHOT_VISUAL_WEIGHT = 0.4
"""Visual weight for documents when the scorer has image/document examples (page prototypes)."""
EXAMPLE_WEIGHT = 0.8
"""Few-shot: share of the example-prototype similarity against the zero-shot similarity."""
CONSE_TOP_K = 10
"""ConSE: how many of the top ImageNet classes make up an image's text-space vector."""

_NAME_VECTORS: dict[str, np.ndarray] = {}
_NAME_LOCK = threading.Lock()


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _example_images(example: Any, policy: InputPolicy = TRUSTED) -> list[PILImage.Image] | None:
    """An example's images: a Document's pages, a PDF/DOCX's rendered pages, or image(s).

    ``None`` for a text example: a string that ``inputs.looks_like_file`` does not take for a
    file under ``policy`` (classifiers mix text and image examples in one mapping). The kind
    (document or image) is read from the bytes, never guessed from a name.
    """
    from .inputs import Document, load_document, load_images, looks_like_file, read_source
    from .inputs.documents import sniff_kind
    from .inputs.limits import MAX_DOCUMENT_BYTES

    if isinstance(example, str) and not looks_like_file(example, policy):
        return None
    if isinstance(example, Document):
        return list(example.pages)
    if isinstance(example, (list, tuple)):  # several images of one example
        return load_images(list(example), policy=policy)
    data = read_source(example, policy=policy, max_bytes=MAX_DOCUMENT_BYTES, what="example")
    if isinstance(data, bytes) and sniff_kind(data) is not None:
        return list(load_document(data, policy=policy).pages)
    return load_images(data, policy=policy)


def _letterbox(im: PILImage.Image, crop_pct: float = 1.0) -> PILImage.Image:
    """A page centred on a white square, unsquashed; with room for the model's centre crop
    (``crop_pct``), so the crop takes only the added white and the whole page stays in view."""
    from PIL import Image

    w, h = im.size
    side = math.ceil(max(w, h) / min(max(crop_pct, 0.1), 1.0))
    if w == h == side:
        return im
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(im if im.mode == "RGB" else im.convert("RGB"), ((side - w) // 2, (side - h) // 2))
    return canvas


def _model_view(images: Sequence[PILImage.Image], crop_pct: float = 1.0) -> list[PILImage.Image]:
    """The images as the image model should see them: document pages letterboxed, photos as they are."""
    from .inputs.documents import PAGE_INFO_KEY

    return [_letterbox(im, crop_pct) if im.info.get(PAGE_INFO_KEY) else im for im in images]


class VisualScorer:
    """Label similarities for images and document pages, built once per label set.

    Args:
        labels: the label names, in output column order.
        descriptions: optional ``{label: description}``, added to the label's text prototype.
        examples: optional ``{label: [image-like or document-like, ...]}`` for few-shot: PIL
            images, ``Document``s, bytes, data URLs, URLs and (policy allowing) paths. Other
            strings are taken for text examples and skipped (``inputs.looks_like_file``).
        text_type: optional kind of input ("photo", "scanned form"...), added to the prompts.
        text_embedder: a text backend (``.encode(list[str]) -> (n, d)`` normalised); needed by
            the ImageNet (ConSE) backend, unused by CLIP.
        image_spec: the image model's ``ModelSpec`` (default: ``registry.get("image")``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        policy: what example strings may point at (``inputs.REMOTE``: never a local path).

    Example:
        >>> from classer_local import registry
        >>> from classer_local.backends import load_text
        >>> from PIL import Image
        >>> s = VisualScorer(["cat", "truck"], text_embedder=load_text(registry.get("standard")))
        >>> sims, tokens = s.score([[Image.new("RGB", (64, 64))]])
        >>> sims.shape, tokens
        ((1, 2), [49])
    """

    def __init__(
        self,
        labels: Sequence[str],
        descriptions: Mapping[str, str] | None = None,
        examples: Mapping[str, Sequence[Any]] | None = None,
        text_type: str | None = None,
        text_embedder: Any = None,
        image_spec: ModelSpec | None = None,
        device: str | None = "auto",
        *,
        policy: InputPolicy = TRUSTED,
    ) -> None:
        from . import registry
        from .backends import load_image

        self.policy = policy
        self.labels = [str(x) for x in labels]
        if not self.labels:
            raise InvalidRequestError("labels_empty", "At least one label is required.", {})
        self.spec = image_spec or registry.get("image")
        self.backend = load_image(self.spec, device)
        self.is_clip = hasattr(self.backend, "encode_texts")
        self.text_embedder = text_embedder
        if not self.is_clip and text_embedder is None:
            raise InvalidRequestError(
                "text_embedder_required",
                f"Image model {self.spec.name!r} scores labels through a text model; pass text_embedder.",
                {"model": self.spec.name},
            )
        self.top_k = int(self.spec.options.get("conse_top_k", CONSE_TOP_K))
        descriptions = dict(descriptions or {})

        # text prototypes, one per label, in the space images are projected to
        prompts: list[str] = []
        owner: list[int] = []
        for i, label in enumerate(self.labels):
            texts = [label, f"a photo of a {label}"]
            if text_type:
                texts.append(f"{text_type}: {label}")
            if descriptions.get(label):
                texts.append(f"{label}: {descriptions[label]}")
            prompts += texts
            owner += [i] * len(texts)
        vecs = self._encode_text(prompts)
        protos = np.zeros((len(self.labels), vecs.shape[1]), dtype=np.float32)
        np.add.at(protos, np.array(owner), vecs)
        # ConSE vectors all lie near the mean class-name vector (hubness); score both sides
        # relative to it. CLIP spaces are used as they are.
        self.name_mean_ = np.zeros(vecs.shape[1], dtype=np.float32)
        if not self.is_clip:
            self.name_mean_ = self._class_name_vectors().mean(0)
        self.text_prototypes_ = _normalize(_normalize(protos) - self.name_mean_)

        # image prototypes from examples
        self.example_prototypes_: np.ndarray | None = None
        self.has_examples_ = np.zeros(len(self.labels), dtype=bool)
        self.center_: np.ndarray | None = None
        if examples:
            unknown = sorted(set(map(str, examples)) - set(self.labels))
            if unknown:
                raise InvalidRequestError(
                    "example_label_unknown", f"Examples name labels that are not in labels: {unknown}.",
                    {"labels": unknown},
                )
            ex_items: list[list[PILImage.Image]] = []
            ex_owner: list[int] = []
            for label, items in examples.items():
                i = self.labels.index(str(label))
                for item in items:
                    imgs = _example_images(item, policy)
                    if imgs:  # None: a text example, the text classifier's business
                        ex_items.append(imgs)
                        ex_owner.append(i)
            per_label: dict[int, list[np.ndarray]] = {}
            if ex_items:
                ex_vecs, _ = self._embed(ex_items)
                for i, v in zip(ex_owner, ex_vecs):
                    per_label.setdefault(i, []).append(v)
            if per_label:
                all_vecs = np.concatenate([np.stack(v) for v in per_label.values()])
                self.center_ = all_vecs.mean(0) if len(per_label) >= 2 else np.zeros(all_vecs.shape[1], np.float32)
                dim = all_vecs.shape[1]
                ex = np.zeros((len(self.labels), dim), dtype=np.float32)
                for i, vs in per_label.items():
                    ex[i] = _normalize(np.stack(vs) - self.center_).mean(0)
                    self.has_examples_[i] = True
                self.example_prototypes_ = _normalize(ex)

    # -- public ------------------------------------------------------------------------------
    @property
    def temperature(self) -> float:
        """Softmax temperature of these similarities (fitted per model, zero- or few-shot)."""
        cal = self.spec.calibration
        base = float(cal.get("temperature", 0.05))
        if self.has_examples_.any():
            return float(cal.get("temperature_few_shot", base))
        return base

    @property
    def visual_weight(self) -> float:
        """Share of the visual logits when fused with text: ``VISUAL_WEIGHT`` zero-shot,
        ``FEW_SHOT_VISUAL_WEIGHT`` once examples exist (the text share is ``1 -`` this)."""
        return FEW_SHOT_VISUAL_WEIGHT if self.has_examples_.any() else VISUAL_WEIGHT

    @property
    def tokens_per_image(self) -> int:
        return int(getattr(self.backend, "tokens_per_image", 0))

    def score(self, items: Sequence[Sequence[PILImage.Image]]) -> tuple[np.ndarray, list[int]]:
        """(n, L) similarities for n inputs, each a list of images, and each input's visual tokens.

        Example:
            >>> sims, tokens = scorer.score([[img1], [page1, page2]])  # doctest: +SKIP
        """
        if not items:
            return np.zeros((0, len(self.labels)), dtype=np.float32), []
        for k, imgs in enumerate(items):
            if not imgs:
                raise InvalidRequestError("images_empty", f"Input {k} has no images.", {"index": k})
        img_vecs, label_vecs = self._embed(items)
        sims = _normalize(label_vecs - self.name_mean_) @ self.text_prototypes_.T
        if self.example_prototypes_ is not None:
            assert self.center_ is not None
            ex_sims = _normalize(img_vecs - self.center_) @ self.example_prototypes_.T
            mask = self.has_examples_[None, :]
            sims = np.where(mask, EXAMPLE_WEIGHT * ex_sims + (1 - EXAMPLE_WEIGHT) * sims, sims)
        tokens = [self.tokens_per_image * len(imgs) for imgs in items]
        return sims.astype(np.float32), tokens

    # -- internals ---------------------------------------------------------------------------
    def _encode_text(self, texts: list[str]) -> np.ndarray:
        if self.is_clip:
            return _normalize(self.backend.encode_texts(texts))
        return _normalize(self.text_embedder.encode(texts))

    def _embed(self, items: Sequence[Sequence[PILImage.Image]]) -> tuple[np.ndarray, np.ndarray]:
        """Per item: the pooled image-space vector and the pooled vector in the label space."""
        crop_pct = float(getattr(self.backend, "crop_pct", 1.0))
        flat = _model_view([im for imgs in items for im in imgs], crop_pct)
        owner = np.repeat(np.arange(len(items)), [len(imgs) for imgs in items])
        if self.is_clip:
            feats = self.backend.encode_images(flat)
            label_space = feats
        else:
            feats, probs = self.backend.encode_with_probs(flat)
            label_space = self._conse(probs)
        return _pool(feats, owner, len(items)), _pool(label_space, owner, len(items))

    def _conse(self, probs: np.ndarray) -> np.ndarray:
        names = self._class_name_vectors()
        k = min(self.top_k, probs.shape[1])
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
        w = np.take_along_axis(probs, top, axis=1)
        w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
        return _normalize(np.einsum("nk,nkd->nd", w, names[top]))

    def _class_name_vectors(self) -> np.ndarray:
        class_names = list(self.backend.class_names)
        tspec = getattr(self.text_embedder, "spec", None)
        digest = hashlib.sha256("\n".join(class_names).encode()).hexdigest()[:12]
        model_id = getattr(tspec, "model_id", None)
        key = f"{model_id or id(self.text_embedder)}:{digest}"
        hit = _NAME_VECTORS.get(key)
        if hit is not None:
            return hit
        with _NAME_LOCK:
            hit = _NAME_VECTORS.get(key)
            if hit is not None:
                return hit
            path = None
            if model_id:
                safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in model_id)
                path = config.subdir("cache") / "vision" / f"class-names-{safe}-{digest}.npy"
                if path.is_file():
                    try:
                        vecs = np.load(path)
                        if vecs.shape[0] == len(class_names):
                            _NAME_VECTORS[key] = vecs
                            return vecs
                    except (OSError, ValueError):
                        pass
            vecs = _normalize(self.text_embedder.encode(class_names))
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    with open(tmp, "wb") as fh:
                        np.save(fh, vecs)
                    os.replace(tmp, path)
                except OSError:
                    pass  # a read-only cache only costs a recompute
            _NAME_VECTORS[key] = vecs
            return vecs


def _pool(vecs: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
    np.add.at(out, owner, _normalize(vecs))
    return _normalize(out)
