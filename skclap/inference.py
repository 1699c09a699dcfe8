"""Batched, cached inference by a torch model: many audio items or texts in, one embedding per item out.

The streaming loop is :mod:`skclap.batching`'s (decoding ahead on worker threads, windows from
consecutive items sharing batches, each item's windows averaged); this module gives it the model's
forward pass, in the precision asked for, and the cache identity of the model's vectors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .batching import PIPELINE_VERSION, WindowPlan, embed_items, embed_texts
from .cache import DiskCache, MemoryCache, model_fingerprint
from .devices import autocast_dtype, resolve_precision
from .int8 import int8_audio_encoder
from .models.fused import fused_audio_encoder
from .models.protocol import ClapLike
from .models.state import eval_mode

__all__ = ["audio_fingerprint", "embed_audio", "embed_text", "precision_label"]


def precision_label(model: Any, precision: str = "fp32") -> str:
    """The arithmetic an embedding is computed in (a resolved precision on the model's device):
    ``"float16-autocast"``, ``"bfloat16-autocast"``, ``"int8-static-<calibration digest>"``,
    ``"float32"``, or ``"float32-tf32"`` on a CUDA device whose matrix units round float32 inputs to TF32."""
    if precision == "int8":
        calibration = getattr(model, "int8_calibration", None)
        if calibration is None:
            raise ValueError(
                "precision='int8' needs the model calibrated on audio it will hear: model = skclap.int8.calibrate_int8(model, clips)"
            )
        return f"int8-static-{calibration.digest}"
    if precision in ("fp16", "bf16"):
        return {"fp16": "float16-autocast", "bf16": "bfloat16-autocast"}[precision]
    dtype = str(model.logit_scale.dtype).replace("torch.", "")
    if model.device.type == "cuda" and dtype == "float32" and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
        return "float32-tf32"
    return dtype


def audio_fingerprint(model: Any, precision: str = "float32") -> str:
    """The cache identity of a model's audio embeddings: its audio tower's weights, every setting
    that changes an embedding (front-end, windows, tower; :meth:`audio_settings`) and the precision."""
    settings = json.dumps(model.audio_settings(), sort_keys=True, default=str)
    return model_fingerprint(model.audio_encoder, f"{PIPELINE_VERSION}|{settings}|{precision}")


@torch.inference_mode()
def embed_audio(
    model: ClapLike,
    items: Sequence[Any],
    *,
    sample_rate: int | None = None,
    batch_size: int = 32,
    cache: MemoryCache | DiskCache | None = None,
    progress: bool = True,
    workers: int = 2,
    precision: str | None = None,
    on_error: Callable[[int, Exception], None] | None = None,
    window_sink: Callable[[int, np.ndarray], None] | None = None,
    windowing: Callable[[int, Any], np.ndarray | Iterable[np.ndarray]] | None = None,
) -> np.ndarray:
    """Embed audio items (paths, waveforms, ``(array, rate)`` pairs...) -> ``(n, proj_dim)`` float32.

    Vectors are the mean of the item's window embeddings, before L2 normalisation; a model whose
    ``quiet_window_db`` is set leaves out the windows that much quieter than the item's loudest.

    - ``precision``: None (fp16 autocast on CUDA, fp32 elsewhere), ``"auto"`` (also bf16 on a CPU
      with native bf16), ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` (a model calibrated by
      :func:`skclap.int8.calibrate_int8`); see :func:`skclap.devices.resolve_precision`.
    - ``workers``: threads decoding and resampling ahead of the model.
    - ``on_error(i, exc)``: when given, an item that cannot be read is reported to it and skipped
      (its row is NaN) instead of raising.
    - ``window_sink(i, windows)``: when given, receives each item's window embeddings
      ``(n_windows, proj_dim)`` (cache hits have none: pass ``cache=None`` with it).
    - ``windowing(i, item)``: when given, returns item ``i``'s windows ``(n_windows, window_samples)``
      (or an iterable of such blocks) in place of the model's own loading and windowing (a published protocol's; no cache with it).
      Items are windowed in order when ``workers`` is 1.
    """
    if windowing is not None and cache is not None:
        raise ValueError("the embedding cache keys the model's own windowing: pass cache=None with windowing")
    mode = resolve_precision(precision, model.device)
    half = autocast_dtype(mode)
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None

    def encode(waves: np.ndarray) -> np.ndarray:
        nonlocal forward
        if forward is None:  # built on the first batch: a fully cached call builds nothing
            forward = int8_audio_encoder(model) if mode == "int8" else fused_audio_encoder(model)
        batch = torch.from_numpy(waves).to(model.device)
        with torch.autocast(model.device.type, dtype=half or torch.float32, enabled=half is not None):
            return forward(batch).float().cpu().numpy()

    with eval_mode(model):
        return embed_items(
            items,
            encode,
            model.config.proj_dim,
            WindowPlan.of(model),
            cache=cache,
            fingerprint=lambda: audio_fingerprint(model, precision_label(model, mode)),
            sample_rate=sample_rate,
            batch_size=batch_size,
            progress=progress,
            workers=workers,
            on_error=on_error,
            window_sink=window_sink,
            windowing=windowing,
        )


@torch.inference_mode()
def embed_text(model: ClapLike, texts: Sequence[str], *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Embed texts -> ``(n, proj_dim)`` float32 (before L2 normalisation). Batches group similar lengths."""
    with eval_mode(model):
        return embed_texts(
            texts,
            lambda batch: model.encode_text(batch).float().cpu().numpy(),
            model.config.proj_dim,
            batch_size=batch_size,
            progress=progress,
        )
