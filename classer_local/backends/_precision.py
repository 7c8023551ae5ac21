"""bfloat16 on CPUs that multiply it in hardware: ``cpu_dtype = "bfloat16"`` in models.toml.

The text transformers (``sentence_transformers``) and the image CNN (``timm_image``) run their
forward passes under ``cpu_autocast`` when their entry asks for it and the CPU has native
bfloat16 matrix units; everywhere else they run float32.
"""

from __future__ import annotations

import contextlib
import functools
import os


def switched_off(variable: str) -> bool:
    """Whether the environment variable says 0/off/false/no (the process-wide off switches)."""
    return os.environ.get(variable, "").strip().lower() in ("0", "off", "false", "no")


def bf16_wanted(kind: object, device: str) -> bool:
    """Whether ``cpu_dtype = "bfloat16"`` in models.toml applies: on a CPU whose matrix units do
    bfloat16 natively (AVX512-BF16 or AMX; elsewhere bfloat16 is emulated and slower than float32),
    unless ``CLASSER_BF16=0`` turns it off for the process (the registry refuses any other
    ``cpu_dtype`` than these two). The matrix products then read bfloat16
    and add up in float32; layer norms, softmax and pooling stay float32. Measured on MiniLM:
    1.8x the texts/s, the same accuracy on all 27 zero-shot sets (benchmarks/PRECISION.md)."""
    return kind == "bfloat16" and device == "cpu" and not switched_off("CLASSER_BF16") and native_bf16()


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware. On Linux the CPU's flags answer
    (avx512_bf16 or amx_bf16, the ones oneDNN checks), so light commands such as ``models list``
    never import torch for it; elsewhere oneDNN's own check is asked."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch build without oneDNN
        return False


def _cpu_flags() -> set[str] | None:
    """The first CPU's flags from /proc/cpuinfo (None where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_autocast(on: bool) -> contextlib.AbstractContextManager:
    """torch's bfloat16 autocast on the CPU when ``on``, else nothing."""
    if not on:
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
