"""CLAPEmbedder: audio or text in, CLAP embeddings out (a scikit-learn transformer)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import TransformerMixin

from ._base import CLAPEstimatorBase, as_items, as_texts

__all__ = ["CLAPEmbedder"]

MODALITIES = ("audio", "text")


class CLAPEmbedder(TransformerMixin, CLAPEstimatorBase):
    """Embed audio (or text) with a CLAP model.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
        A registered checkpoint name, a checkpoint directory or ``.pth`` file, or a model object.
        Loaded on first use, not at construction.
    modality : {"audio", "text"}, default="audio"
        What ``X`` holds. Audio: file paths, 1-D waveforms, a 2-D array with one waveform per row,
        ``(array, rate)`` pairs, or a pandas Series / one-column DataFrame of those. Text: strings.
    sample_rate : int, optional
        Rate of raw waveforms in ``X`` (files carry their own). Resampled to the model's rate.
    normalize : bool, default=True
        L2-normalise the embeddings (cosine geometry, as CLAP is trained).
    batch_size : int, default=32
        Model windows (audio) per forward pass.
    device : str, default="auto"
        "auto" picks CUDA when available, else CPU.
    precision : {None, "auto", "fp32", "bf16", "fp16"}, default=None
        Arithmetic of the audio encoder. None: float16 autocast on CUDA, float32 on a CPU; "auto"
        also takes bfloat16 on a CPU with native bf16. Part of the embedding cache's key.
    cache : bool or path, default=True
        Reuse audio embeddings: True keeps them in memory for the process (shared by clones), a
        directory path stores them on disk (shared by processes), False recomputes.
    progress : bool, default=True
        Show a progress bar for work that takes more than two seconds.

    Attributes
    ----------
    embedding_dim_ : int
        Width of the embeddings (set by ``fit``, or on first ``transform``).
    """

    def __init__(
        self,
        model: Any = "msclap-2022",
        modality: str = "audio",
        sample_rate: int | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.modality = modality
        self.sample_rate = sample_rate
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.progress = progress

    def _check_params(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}; got {self.modality!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {self.batch_size!r}")

    def fit(self, X: Any, y: Any = None) -> CLAPEmbedder:
        """Validate ``X`` and load the model; CLAP is pretrained, so nothing is learnt."""
        self._check_params()
        if self.modality == "text":
            as_texts(X)
        else:
            as_items(X)
        self.embedding_dim_ = self._clap().config.proj_dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings of ``X``, shape ``(n_items, embedding_dim)``, float32."""
        self._check_params()
        if self.modality == "text":
            out = self._embed_text(as_texts(X), normalize=self.normalize)
        else:
            out = self._embed_audio(X, normalize=self.normalize)
        self.embedding_dim_ = out.shape[1]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``clap0 ... clap{d-1}`` (``clap_text0 ...`` for text)."""
        dim = getattr(self, "embedding_dim_", None)
        if dim is None:
            dim = self._clap().config.proj_dim
        prefix = "clap" if self.modality == "audio" else "clap_text"
        return np.asarray([f"{prefix}{i}" for i in range(dim)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
