"""Where classer_local keeps its files, and which device it runs on.

Everything lives under ``CLASSER_HOME`` (default ``~/.cache/classer_local``):
``cache/`` (request cache), ``classifiers/`` (saved classifiers), ``jobs/``
(batch jobs) and ``usage.sqlite3`` (usage and request logs). Hub downloads are
switched off before any model library is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# No code path of ours downloads weights; make sure the libraries we call agree.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def home() -> Path:
    """The root folder of classer_local's state (``CLASSER_HOME``)."""
    raw = os.environ.get("CLASSER_HOME") or os.path.join("~", ".cache", "classer_local")
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path | None:
    """``CLASSER_MODELS_DIR``: a folder holding model folders by name (e.g. open_clip weights)."""
    raw = os.environ.get("CLASSER_MODELS_DIR")
    return Path(raw).expanduser() if raw else None


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` picks CUDA when torch sees a GPU, else CPU; anything else passes through.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    device = device or os.environ.get("CLASSER_DEVICE") or "auto"
    if device != "auto":
        return device
    if "torch" not in sys.modules and not _nvidia_driver():
        return "cpu"  # no GPU driver, so no CUDA: importing torch (seconds) to ask would change nothing
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _nvidia_driver() -> bool:
    """Whether an NVIDIA kernel driver may be present: True off Linux, where this cannot be told."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia/version") or any(Path("/dev").glob("nvidia[0-9]*"))


def env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() not in {"0", "false", "no", "off", ""}
