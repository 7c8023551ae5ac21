"""CLIP-style models through open_clip, from weights the user puts on this machine.

No CLIP weights ship on PyPI, so the models.toml entries point at a folder
(``models-dir:<folder>`` under ``$CLASSER_MODELS_DIR``, or ``local-dir:/abs/path``) holding
``open_clip_config.json`` and ``open_clip_model.safetensors`` (the layout of open_clip's
Hugging Face repositories). open_clip reads both through its ``local-dir:`` schema, offline.

Visual tokens: the number of patches the image tower sees, ``(image_size / patch_size) ** 2``
(the class token is not counted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ModelNotInstalledError
from ..registry import ModelSpec
from . import l2_normalize

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["OpenCLIPEmbedder"]


class OpenCLIPEmbedder:
    """An open_clip model: image and text towers into one normalised space.

    Example:
        >>> spec = ModelSpec("my-clip", "image", "open-clip", "local-dir:/models/clip", dim=512)  # doctest: +SKIP
        >>> m = OpenCLIPEmbedder(spec, "cpu")  # doctest: +SKIP
        >>> m.encode_texts(["a photo of a cat"]).shape  # doctest: +SKIP
        (1, 512)
    """

    def __init__(self, spec: ModelSpec, device: str) -> None:
        try:
            import open_clip
            import torch
        except ImportError as e:
            raise ModelNotInstalledError(
                "dependency_missing", "CLIP models need open_clip: pip install 'classer-local[vision]'.",
                {"package": "open-clip-torch"},
            ) from e
        path = spec.weights_path()
        if not (path / "open_clip_config.json").is_file():
            raise ModelNotInstalledError(
                "model_not_installed",
                f"{path} has no open_clip_config.json. Install with: {spec.install or 'see models.toml'}",
                {"model": spec.name, "weights": spec.weights, "install": spec.install},
            )
        self.spec = spec
        self.device = device
        self._torch = torch
        ident = f"local-dir:{path}"
        model, _, preprocess = open_clip.create_model_and_transforms(ident, device=device)
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(ident)
        self.batch_size = spec.batch_size
        grid = getattr(getattr(model, "visual", None), "grid_size", None)
        if grid is None:
            size = getattr(model.visual, "image_size", 224)
            size = size[0] if isinstance(size, (tuple, list)) else size
            grid = (size // 16, size // 16)
        self.tokens_per_image = int(grid[0]) * int(grid[1])
        with torch.inference_mode():
            probe = self.encode_texts(["a"])
        self.dim = int(probe.shape[1])

    def encode_images(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        """(n, d) float32 L2-normalised image-tower embeddings."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                x = torch.stack([self.preprocess(im.convert("RGB")) for im in batch]).to(self.device)
                out.append(self.model.encode_image(x).float().cpu().numpy())
        if not out:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return l2_normalize(np.concatenate(out))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 L2-normalised text-tower embeddings (texts cut to the context length)."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        if not out:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return l2_normalize(np.concatenate(out))

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        """The text tower under the text-embedder name, so CLIP can stand in where one is expected."""
        return self.encode_texts(texts)

    def visual_tokens(self, n_images: int) -> int:
        return self.tokens_per_image * n_images
