"""Device and precision choice.

torch is imported where a device is made, not at the top: the precision names are read by code that
runs without torch (the ONNX engine's estimators).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "autocast_dtype",
    "cpu_has_native_bf16",
    "precision_available",
    "resolve_device",
    "resolve_precision",
    "same_device",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Inference also takes "int8": a model calibrated by :func:`skclap.int8.calibrate_int8`, on a CPU.
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when present, else Apple MPS, else CPU; an accelerator with its index."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return _indexed(torch.device("cuda"))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return _indexed(torch.device("mps"))
        return torch.device("cpu")
    return _indexed(torch.device(device))


def _indexed(device: torch.device) -> torch.device:
    """``device`` as a module's parameters report it: an accelerator with its index (``"cuda"`` is
    the current one), a CPU without one (``"cpu:0"`` is the CPU)."""
    import torch

    if device.type == "cpu":
        return torch.device("cpu")
    if device.index is None and device.type in ("cuda", "mps"):
        index = torch.cuda.current_device() if device.type == "cuda" and torch.cuda.is_available() else 0
        return torch.device(device.type, index)
    return device


def same_device(a: str | torch.device, b: str | torch.device) -> bool:
    """Whether ``a`` and ``b`` name one device (``"cuda"`` and ``"cuda:0"`` do, when 0 is current)."""
    import torch

    return _indexed(torch.device(a)) == _indexed(torch.device(b))


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 in hardware (``avx512_bf16`` or AMX) and PyTorch may use it.
    Without it, bf16 arithmetic is emulated and hundreds of times slower than float32.

    An instruction-set cap set by the user (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``) counts:
    under a cap below AVX-512 the bf16 kernels are the emulated ones, whatever the CPU has."""
    return _cpu_flags_have_bf16() and _isa_caps_allow_bf16()


def _cpu_flags_have_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


#: oneDNN's ISA names below AVX512_CORE_BF16 (its "CPU dispatcher control" page).
_ONEDNN_CAPS_WITHOUT_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_MIC", "AVX512_MIC_4OPS", "AVX512_CORE", "AVX512_CORE_VNNI"}
)


def _isa_caps_allow_bf16() -> bool:
    import torch

    # ATen reports the capability it dispatches to after applying ATEN_CPU_CAPABILITY.
    if not torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512"):
        return False
    # oneDNN (convolutions, bf16 matmuls) reads its own cap; a name not below AVX512_CORE_BF16 allows bf16.
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    return onednn.strip().upper() not in _ONEDNN_CAPS_WITHOUT_BF16


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The arithmetic for inference on ``device``: "fp32", "bf16", "fp16" or "int8".

    None (the default): fp16 autocast on CUDA, fp32 elsewhere. ``"auto"``: the fastest safe one:
    fp16 on CUDA, bf16 on a CPU with native bf16, else fp32 (never int8: it needs a calibration). An
    explicit "fp16" needs CUDA, "bf16" on a CPU needs native bf16 (emulated bf16 is never chosen),
    and "int8" a CPU.
    """
    cuda = device.type == "cuda"
    if precision is None:
        return "fp16" if cuda else "fp32"
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS} or None; got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"int8 inference runs on a CPU; this model is on {device}")
    if precision == "auto":
        if cuda:
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("fp16 autocast is for CUDA devices; on a CPU embeddings are computed in float32 (or bf16)")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise ValueError("this CPU has no native bfloat16 (avx512_bf16/AMX): bf16 would be hundreds of times slower than fp32")
    return precision


def precision_available(precision: str, device: torch.device) -> bool:
    """Whether ``device`` computes ``precision`` (fp16 autocast needs CUDA, bf16 on a CPU native bf16)."""
    try:
        resolve_precision(precision, device)
    except ValueError:
        return False
    return True


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
