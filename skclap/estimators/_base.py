"""What the estimators share: input validation, model resolution, device choice, embedding calls.

Estimators hold only their parameters; the model is resolved lazily (on first use) into a private
attribute, and models loaded from a name or a directory are kept in a small process-wide cache so
that clones made by ``cross_val_score``/``GridSearchCV`` do not load them again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from ..audio import check_sample_rate
from ..cache import DiskCache, MemoryCache, get_cache
from ..checkpoints import resolve_model
from ..devices import PRECISIONS, resolve_device
from ..inference import embed_audio, embed_text, normalize_rows
from ..inputs import as_items, as_texts, check_targets, is_label_lists
from ..models.clap import ClapLike
from ..vocabulary import check_label_words

__all__ = ["CLAPEstimatorBase", "as_items", "as_texts", "check_targets", "is_label_lists", "resolve_device", "resolve_model"]

# Input validation lives in skclap.inputs; the estimators import it from here as well.


class CLAPEstimatorBase(BaseEstimator):
    """Common machinery. Subclasses declare the parameters; this class only reads them.

    ``_parameter_constraints`` (scikit-learn's declarative validation, checked by ``_fit_context``
    at ``fit``) holds the parameters every estimator shares; subclasses add theirs.
    """

    _parameter_constraints: dict = {
        "model": [str, os.PathLike, torch.nn.Module],
        "sample_rate": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS)), None],
        "cache": ["boolean", StrOptions({"memory"}), str, os.PathLike, MemoryCache, DiskCache],
        "progress": ["boolean"],
    }

    #: Said when audio input reads as text (:func:`skclap.inputs.as_items`): where text goes instead.
    _text_hint: str | None = None

    model: Any
    device: Any
    precision: str | None
    batch_size: int
    sample_rate: int | None
    cache: Any
    progress: bool

    def _validate_params(self) -> None:
        check_sample_rate(self.sample_rate)  # first: a rate in kHz (16, 44.1) is refused naming the rate in Hz
        super()._validate_params()

    def _clap(self) -> ClapLike:
        model = getattr(self, "_model", None)
        if model is None or model.device != resolve_device(self.device):
            model = resolve_model(self.model, self.device)
            self._model = model
        return model

    def _embed_audio(self, X: Any, normalize: bool = True) -> np.ndarray:
        model = self._clap()
        emb = embed_audio(
            model,
            as_items(X, text_hint=self._text_hint),
            sample_rate=self.sample_rate,
            batch_size=self.batch_size,
            cache=get_cache(self.cache),
            progress=self.progress,
            precision=getattr(self, "precision", None),
        )
        return normalize_rows(emb) if normalize else emb

    def _embed_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        emb = embed_text(self._clap(), texts, batch_size=max(self.batch_size, 64), progress=self.progress)
        return normalize_rows(emb) if normalize else emb

    def _check_label_words(self, wordings: Mapping[Any, Sequence[str]]) -> None:
        """Warn about labels the model cannot read (:func:`skclap.vocabulary.check_label_words`)."""
        check_label_words(self._clap(), wordings, getattr(self, "_reported_as", type(self).__name__))

    def _logit_scale(self) -> float:
        return float(self._clap().logit_scale.detach().exp().cpu())

    def __sklearn_clone__(self) -> CLAPEstimatorBase:
        # A model given as an object is a frozen feature extractor: clones (one per fold of a
        # cross-validation, per candidate of a grid search) share it instead of deep-copying
        # hundreds of megabytes of weights. Every other parameter is cloned as usual.
        from sklearn.base import clone

        params = self.get_params(deep=False)
        shared = params.pop("model")
        fresh = {k: clone(v, safe=False) for k, v in params.items()}
        model = shared if isinstance(shared, torch.nn.Module) else clone(shared, safe=False)
        return type(self)(model=model, **fresh)

    def __getstate__(self) -> dict[str, Any]:
        # A model named by a string or path is reloaded after unpickling; an in-memory model is a
        # parameter and travels with its weights.
        state = super().__getstate__()
        state.pop("_model", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
