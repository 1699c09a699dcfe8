"""The resamplers that the published CLAP-score and FAD tools use, by name.

A tool's number depends on its resampler: each filter leaves different samples, and the embedding
moves with them. Each function here is the one a tool calls, from the library it calls, except
torchaudio's, whose binary builds follow torch's version one for one; its windowed-sinc resampler is
ported below, step for step (``torchaudio/functional/functional.py``: ``_get_sinc_resample_kernel``
and ``_apply_sinc_resample_kernel``), and tested against that file.

Every function takes and returns arrays of shape ``(..., samples)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["RESAMPLERS", "julius_frac", "librosa_soxr_hq", "resampy_kaiser_best", "torchaudio_kaiser_best"]

_EXTRA = "pip install 'skclap[scores]'"


def _require(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs the package {module!r}: {_EXTRA}") from None


def librosa_soxr_hq(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``librosa.resample(res_type="soxr_hq")``: what ``librosa.load(path, sr=...)`` does by default."""
    librosa = _require("librosa", "the soxr_hq resampler of librosa.load")
    return np.asarray(librosa.resample(x, orig_sr=orig_rate, target_sr=target_rate, res_type="soxr_hq"))


def julius_frac(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``julius.resample_frac`` with its defaults (24 zero crossings, rolloff 0.945): audiocraft's
    ``convert_audio``."""
    import torch

    julius = _require("julius", "audiocraft's resampler")
    return julius.resample_frac(torch.from_numpy(np.ascontiguousarray(x)), int(orig_rate), int(target_rate)).numpy()


def resampy_kaiser_best(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``resampy.resample`` with its default filter, ``kaiser_best``."""
    resampy = _require("resampy", "the resampy resampler")
    return np.asarray(resampy.resample(x, orig_rate, target_rate, filter="kaiser_best", axis=-1))


def _sinc_kaiser_kernel(
    orig: int, new: int, lowpass_filter_width: int = 64, rolloff: float = 0.9475937167399596, beta: float = 14.769656459379492
) -> Any:
    import torch

    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=None)[:, None, None] / new + idx
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    beta_t = torch.tensor(float(beta))
    window = torch.i0(beta_t * torch.sqrt(1 - (t / lowpass_filter_width) ** 2)) / torch.i0(beta_t)
    t *= math.pi
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * (base / orig)
    return kernels.to(dtype=torch.float32), width


def torchaudio_kaiser_best(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``torchaudio.transforms.Resample(orig, target, resampling_method="sinc_interp_kaiser",
    lowpass_filter_width=64, rolloff=0.9475937167399596, beta=14.769656459379492)`` (librosa's
    kaiser_best settings, as fadtk passes them) on float32 input: fadtk's resampler. The identity
    when the rates agree."""
    import torch

    if orig_rate == target_rate:
        return np.asarray(x)
    g = math.gcd(int(orig_rate), int(target_rate))
    orig, new = int(orig_rate) // g, int(target_rate) // g
    kernel, width = _sinc_kaiser_kernel(orig, new)
    wave = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    n = flat.shape[1]
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[..., : int(torch.ceil(torch.as_tensor(new * n / orig)).long())]
    return out.reshape(*shape[:-1], out.shape[-1]).numpy()


#: By name, as :mod:`skclap.score_protocols` lists them.
RESAMPLERS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "librosa-soxr_hq": librosa_soxr_hq,
    "julius": julius_frac,
    "resampy-kaiser_best": resampy_kaiser_best,
    "torchaudio-kaiser_best": torchaudio_kaiser_best,
}
