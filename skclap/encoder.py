"""One way from a model to normalised vectors, for every consumer: the estimators, collections,
search, serving, scores, evaluation and the trainer's validation.

An :class:`Encoder` owns the runtime settings with one meaning everywhere — ``device``, ``precision``,
``batch_size``, ``cache``, ``progress`` — and resolves its model once. A new runtime (another
engine, a data-parallel pool) plugs in here and every consumer gets it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from .batching import normalize_rows
from .cache import DiskCache, MemoryCache, get_cache, memory_cache
from .checkpoints import clear_model_cache, resolve_model
from .devices import INFERENCE_PRECISIONS, PRECISIONS, resolve_precision
from .inference import audio_fingerprint, embed_audio, embed_text, precision_label

__all__ = ["RUNTIME_DEFAULTS", "Encoder", "add_runtime_arguments", "clear_caches", "precision_of_label"]

#: The runtime settings and their defaults, the same in every estimator, function and command.
RUNTIME_DEFAULTS: dict[str, Any] = {"device": "auto", "precision": None, "batch_size": 32, "cache": True, "progress": False}


class Encoder:
    """Audio items and texts -> L2-normalised embeddings ``(n, dim)`` float32, by one model.

    - ``model``: a registered name, a checkpoint path, or a model (anything implementing
      :class:`~skclap.models.protocol.ClapModelProtocol`, used where it is: never moved or changed);
    - ``device``: ``"auto"`` or None (a given model's own device; for a name, CUDA, then MPS, then
      CPU) or a device;
    - ``precision``: None (fp16 autocast on CUDA, float32 elsewhere), ``"auto"`` (also bf16 on a CPU
      with native bf16), ``"fp32"``, ``"bf16"``, ``"fp16"``, or ``"int8"`` (the audio tower of a model
      calibrated by :func:`skclap.int8.calibrate_int8`, on a CPU);
    - ``batch_size``: audio windows, or texts, per pass through the model; results do not depend on it;
    - ``cache``: True (the process-wide memory cache), a directory (a disk cache), a cache object, or
      False; audio vectors only;
    - ``progress``: a progress bar on long runs; ``sample_rate``: the rate of bare arrays.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str | torch.device | None = RUNTIME_DEFAULTS["device"],
        precision: str | None = RUNTIME_DEFAULTS["precision"],
        batch_size: int = RUNTIME_DEFAULTS["batch_size"],
        cache: Any = RUNTIME_DEFAULTS["cache"],
        progress: bool = RUNTIME_DEFAULTS["progress"],
        sample_rate: int | None = None,
        workers: int = 2,
    ) -> None:
        if precision is not None and precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS} or None; got {precision!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.model = resolve_model(model, device)
        self.precision = resolve_precision(precision, self.model.device)
        self.batch_size = int(batch_size)
        self.cache: MemoryCache | DiskCache | None = get_cache(cache)
        self.progress = bool(progress)
        self.sample_rate = sample_rate
        self.workers = workers

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dim(self) -> int:
        return int(self.model.config.proj_dim)

    @property
    def logit_scale(self) -> float:
        """The model's temperature, exponentiated: what cosines are multiplied by to make logits."""
        return float(self.model.logit_scale.detach().exp().cpu())

    @property
    def precision_label(self) -> str:
        """The arithmetic the audio vectors are computed in (recorded beside stored vectors)."""
        return precision_label(self.model, self.precision)

    @property
    def audio_fingerprint(self) -> str:
        """The identity of this encoder's audio vectors: weights, preprocessing and precision."""
        return audio_fingerprint(self.model, self.precision_label)

    def audio(
        self,
        items: Sequence[Any],
        *,
        normalize: bool = True,
        sample_rate: int | None = None,
        on_error: Callable[[int, Exception], None] | None = None,
        window_sink: Callable[[int, np.ndarray], None] | None = None,
        windowing: Callable[[int, Any], np.ndarray | Iterable[np.ndarray]] | None = None,
    ) -> np.ndarray:
        """One vector per audio item (paths, arrays, ``(array, rate)`` pairs, ...): the mean of its
        windows' embeddings (:func:`skclap.inference.embed_audio`: ``on_error`` skips unreadable
        items, leaving NaN rows; ``window_sink`` receives each item's window embeddings;
        ``windowing(i, item)`` makes an item's windows in place of the model's own, uncached)."""
        emb = embed_audio(
            self.model,
            items,
            sample_rate=sample_rate if sample_rate is not None else self.sample_rate,
            batch_size=self.batch_size,
            cache=None if window_sink is not None or windowing is not None else self.cache,
            progress=self.progress,
            workers=self.workers,
            precision=self.precision,
            on_error=on_error,
            window_sink=window_sink,
            windowing=windowing,
        )
        return normalize_rows(emb) if normalize else emb

    def text(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """One vector per text."""
        emb = embed_text(self.model, list(texts), batch_size=self.batch_size, progress=self.progress)
        return normalize_rows(emb) if normalize else emb

    def __repr__(self) -> str:
        cache = type(self.cache).__name__ if self.cache is not None else None
        return f"Encoder({self.model!r}, device={str(self.device)!r}, precision={self.precision!r}, batch_size={self.batch_size}, cache={cache})"


#: The precision whose vectors :func:`skclap.inference.precision_label` names (fp32 for the rest).
_LABELLED = {"float16-autocast": "fp16", "bfloat16-autocast": "bf16", "float32": "fp32", "float32-tf32": "fp32"}


def precision_of_label(label: str | None) -> str | None:
    """The precision setting that computes vectors labelled ``label`` (None: unknown)."""
    return _LABELLED.get(label) if label else None


def clear_caches() -> None:
    """Forget what the process keeps between calls: the loaded models (ONNX exports included) and
    the memory cache of audio vectors (a disk cache stays: delete its directory)."""
    clear_model_cache()
    memory_cache().clear()
    onnx = sys.modules.get("skclap.onnx_engine")  # loaded only where the ONNX engine ran
    if onnx is not None:
        onnx.clear_loaded()


#: The runtime options a command can take, and the Encoder setting each one sets.
RUNTIME_OPTIONS = ("batch_size", "precision", "device", "progress")


def add_runtime_arguments(p: argparse.ArgumentParser, options: Sequence[str] = RUNTIME_OPTIONS, *, int8: bool = False) -> None:
    """The runtime options of every command, with one meaning and one default: ``--batch-size``
    (windows or texts per pass), ``--precision``, ``--device``, ``--no-progress``; ``options``:
    those the command takes (:data:`RUNTIME_OPTIONS`). ``int8``: ``--precision`` also takes int8,
    with ``--calibration`` and ``--float-layers`` (:func:`skclap.int8.calibrate_int8`'s)."""
    unknown = set(options) - set(RUNTIME_OPTIONS)
    if unknown:
        raise ValueError(f"unknown runtime options {sorted(unknown)}; choose from {RUNTIME_OPTIONS}")
    if "batch_size" in options:
        p.add_argument(
            "--batch-size", type=int, default=RUNTIME_DEFAULTS["batch_size"], help="windows (or texts) per pass through the model"
        )
    if "precision" in options:
        p.add_argument(
            "--precision",
            choices=INFERENCE_PRECISIONS if int8 else PRECISIONS,
            default=RUNTIME_DEFAULTS["precision"],
            help="default: fp16 on CUDA, fp32 elsewhere; auto: also bf16 on a CPU with native bf16"
            + ("; int8: the CNN14 audio tower in int8 on a CPU, calibrated on --calibration" if int8 else ""),
        )
        if int8:
            p.add_argument("--calibration", help="with --precision int8: audio the model will hear (a folder, a manifest or a list file)")
            p.add_argument("--float-layers", type=int, help="with --precision int8: leading convolutions kept float32 (default 4)")
    if "device" in options:
        p.add_argument(
            "--device", default=RUNTIME_DEFAULTS["device"], help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:1, ..."
        )
    if "progress" in options:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
