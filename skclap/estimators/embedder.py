"""CLAPEmbedder: audio or text in, CLAP embeddings out (a scikit-learn transformer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ..inputs import as_items, as_texts
from ._base import CLAPEstimatorBase

__all__ = ["CLAPEmbedder"]

MODALITIES = ("audio", "text")
#: What runs the model: its torch modules, or its ONNX export through onnxruntime (no torch imported).
ENGINES = ("torch", "onnxruntime")


class CLAPEmbedder(TransformerMixin, CLAPEstimatorBase):
    """Embed audio (or text) with a CLAP model.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
        A registered checkpoint name, a checkpoint directory or ``.pth`` file, or a model object.
        Loaded on first use, not at construction. With ``engine="onnxruntime"``: the folder
        ``skclap export MODEL OUT --format onnx`` wrote.
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
    engine : {"torch", "onnxruntime"}, default="torch"
        What runs the model. "onnxruntime" runs an ONNX export on the CPU without importing torch
        (:mod:`skclap.onnx_engine`): the same windows, padding and pooling, embeddings equal to the
        torch model's within 1e-4; ``device`` "auto" or "cpu", ``precision`` None or "fp32".

    Attributes
    ----------
    embedding_dim_ : int
        Width of the embeddings (set by ``fit``).

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPEmbedder
    >>> waves = np.random.default_rng(0).standard_normal((3, 16000)).astype("float32")  # 1 s at 16 kHz
    >>> emb = CLAPEmbedder(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
    >>> emb.fit_transform(waves).shape
    (3, 64)
    >>> CLAPEmbedder(model="preset:tiny", modality="text", device="cpu").fit_transform(["a dog barks"]).shape
    (1, 64)
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        modality: str = "audio",
        sample_rate: int | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
        engine: str = "torch",
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
        self.engine = engine

    _text_hint = "to embed texts, use CLAPEmbedder(modality='text')"

    _parameter_constraints: dict = {
        **CLAPEstimatorBase._parameter_constraints,
        "modality": [StrOptions(set(MODALITIES))],
        "normalize": ["boolean"],
        "engine": [StrOptions(set(ENGINES))],
    }

    def _encoder(self) -> Any:
        if self.engine == "onnxruntime":
            from ..onnx_engine import OnnxEncoder

            return OnnxEncoder(self.model, **self._runtime_settings())
        return super()._encoder()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> CLAPEmbedder:
        """Validate ``X`` and load the model; CLAP is pretrained, so nothing is learnt."""
        if self.modality == "text":
            as_texts(X)
        else:
            as_items(X, text_hint=self._text_hint)
        self.embedding_dim_ = self._clap().config.proj_dim
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit`` then ``transform``, reading ``X`` once: an iterator (a generator,
        ``Path(...).glob("*.wav")``) is read into a list first, since ``fit`` would spend it."""
        if isinstance(X, Iterator):
            X = as_texts(X) if self.modality == "text" else as_items(X, text_hint=self._text_hint)
        return super().fit_transform(X, y, **fit_params)

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings of ``X``, shape ``(n_items, embedding_dim)``, float32. CLAP is pretrained, so this
        works without ``fit`` too (the parameters are validated here then)."""
        if not hasattr(self, "embedding_dim_"):
            self._validate_params()
        if self.modality == "text":
            return self._embed_text(as_texts(X), normalize=self.normalize)
        return self._embed_audio(X, normalize=self.normalize)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``clap0 ... clap{d-1}`` (``clap_text0 ...`` for text); needs ``fit`` (which learns the width)."""
        check_is_fitted(self, "embedding_dim_")
        dim = self.embedding_dim_
        prefix = "clap" if self.modality == "audio" else "clap_text"
        return np.asarray([f"{prefix}{i}" for i in range(dim)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
