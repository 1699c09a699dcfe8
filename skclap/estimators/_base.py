"""What the estimators share: input validation, model resolution, device choice, embedding calls.

Estimators hold only their parameters; every embedding goes through an :class:`~skclap.Encoder`
built from them, and models loaded from a name or a directory are kept in a small process-wide cache
so that clones made by ``cross_val_score``/``GridSearchCV`` do not load them again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ..audio import check_sample_rate
from ..cache import DiskCache, MemoryCache
from ..devices import INFERENCE_PRECISIONS
from ..inputs import as_items
from ..vocabulary import check_label_words

if TYPE_CHECKING:
    from ..encoder import Encoder
    from ..models.protocol import ClapLike

__all__ = ["CLAPEstimatorBase"]


class _ModelObject(HasMethods):
    """A model object (:class:`~skclap.models.protocol.ClapModelProtocol`, or an ONNX export loaded
    by :func:`skclap.onnx_engine.load_onnx`), checked without importing torch for a name or a path: the protocol's module imports torch, and an object that meets it has
    loaded torch already."""

    def __init__(self) -> None:
        super().__init__([])

    def is_satisfied_by(self, val: Any) -> bool:
        onnx = sys.modules.get("skclap.onnx_engine")
        if onnx is not None and isinstance(val, onnx.OnnxCLAP):
            return True
        if "torch" not in sys.modules:
            return False
        from ..models.protocol import ClapModelProtocol

        return isinstance(val, ClapModelProtocol)

    def __str__(self) -> str:
        return "a model object (skclap.models.ClapModelProtocol, or an skclap.onnx_engine.OnnxCLAP)"


class _TorchDevice(HasMethods):
    """A ``torch.device``, checked without importing torch (one exists only where torch is loaded)."""

    def __init__(self) -> None:
        super().__init__([])

    def is_satisfied_by(self, val: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(val, torch.device)

    def __str__(self) -> str:
        return "a torch.device"


class CLAPEstimatorBase(BaseEstimator):
    """Common machinery. Subclasses declare the parameters; this class only reads them.

    ``_parameter_constraints`` (scikit-learn's declarative validation, checked by ``_fit_context``
    at ``fit``) holds the parameters every estimator shares; subclasses add theirs.
    """

    _parameter_constraints: dict = {
        "model": [str, os.PathLike, _ModelObject()],
        "sample_rate": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, _TorchDevice()],
        "precision": [StrOptions(set(INFERENCE_PRECISIONS)), None],
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

    def _encoder(self) -> Encoder:
        """The estimator's runtime settings over its model (resolved again on each call: a named
        model comes from the process's model cache, a given one is used where it is)."""
        from ..encoder import Encoder  # here: the encoder imports torch, which the ONNX engine does without

        return Encoder(self._runtime_model(), **self._runtime_settings())

    def _runtime_settings(self) -> dict[str, Any]:
        """The settings an encoder takes, as this estimator's parameters give them."""
        return {
            "device": self.device,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "cache": self.cache,
            "progress": self.progress,
            "sample_rate": self.sample_rate,
        }

    def _runtime_model(self) -> Any:
        """The model embeddings are made with: the ``model`` parameter."""
        return self.model

    def _clap(self) -> ClapLike:
        return self._encoder().model

    def _embed_audio(self, X: Any, normalize: bool = True) -> np.ndarray:
        return self._encoder().audio(as_items(X, text_hint=self._text_hint), normalize=normalize)

    def _embed_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        return self._encoder().text(texts, normalize=normalize)

    def _check_label_words(self, wordings: Mapping[Any, Sequence[str]]) -> None:
        """Warn about labels the model cannot read (:func:`skclap.vocabulary.check_label_words`)."""
        check_label_words(self._clap(), wordings, type(self).__name__)

    def _logit_scale(self) -> float:
        return self._encoder().logit_scale

    def __sklearn_clone__(self) -> CLAPEstimatorBase:
        # A model given as an object is a frozen feature extractor: clones (one per fold of a
        # cross-validation, per candidate of a grid search) share it instead of deep-copying
        # hundreds of megabytes of weights. Every other parameter is cloned as usual.
        from sklearn.base import clone

        params = self.get_params(deep=False)
        shared = params.pop("model")
        fresh = {k: clone(v, safe=False) for k, v in params.items()}
        model = clone(shared, safe=False) if isinstance(shared, (str, os.PathLike)) else shared
        return type(self)(model=model, **fresh)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
