"""CLAPLinearProbe: frozen CLAP audio embeddings feeding a supervised scikit-learn head."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MultiLabelBinarizer, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from ..checkpoints import resolve_model, trainable
from ..inputs import as_items, check_targets, is_label_lists
from ._base import CLAPEstimatorBase

__all__ = ["CLAPLinearProbe"]


class CLAPLinearProbe(ClassifierMixin, CLAPEstimatorBase):
    """A classifier on frozen CLAP audio embeddings (the paper's linear-probe setting).

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
    estimator : classifier, optional
        The head, cloned at fit; default standardised features into
        ``LogisticRegression(max_iter=1000)``. For multi-label
        targets a head without native multi-label support is wrapped in ``OneVsRestClassifier``.
    finetune : bool, default=False
        The paper's supervised setting: first train the audio encoder with a linear layer and
        cross-entropy on ``(X, y)`` (single-label targets), then fit ``estimator`` on the embeddings
        of the fine-tuned encoder. The shared model is not modified: a copy is trained.
    finetune_params : dict, optional
        :class:`skclap.training.TrainConfig` fields for fine-tuning (default: 5 epochs, batch 32,
        lr 1e-4, warm-up 10 steps).
    sample_rate, batch_size, device, precision, cache, progress
        As in :class:`~skclap.CLAPEmbedder`. Embeddings are cached, so cross-validation embeds
        each clip once.

    Attributes
    ----------
    estimator_ : the fitted head.
    classes_ : ndarray of shape (n_classes,)
    multilabel_ : bool
    finetuned_model_ : CLAPModel — the fine-tuned copy (``finetune=True`` only).
    finetune_history_ : list of dict — its training metrics (``finetune=True`` only).

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPLinearProbe
    >>> waves = np.random.default_rng(0).standard_normal((4, 16000)).astype("float32")
    >>> probe = CLAPLinearProbe(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
    >>> probe.fit(waves, ["a", "b", "a", "b"]).predict(waves).shape
    (4,)
    >>> probe.set_params(finetune=True, finetune__lr=3e-4).finetune_params
    {'lr': 0.0003}
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        estimator: Any = None,
        finetune: bool = False,
        finetune_params: dict[str, Any] | None = None,
        sample_rate: int | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.estimator = estimator
        self.finetune = finetune
        self.finetune_params = finetune_params
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.progress = progress

    _parameter_constraints: dict = {
        **CLAPEstimatorBase._parameter_constraints,
        "estimator": [HasMethods(["fit", "predict"]), None],
        "finetune": ["boolean"],
        "finetune_params": [dict, None],
    }

    def set_params(self, **params: Any) -> CLAPLinearProbe:
        """As scikit-learn's, and ``finetune__NAME=value`` sets one fine-tuning setting (a field of
        :class:`skclap.training.TrainConfig`) inside ``finetune_params``, so that grid searches reach it."""
        from dataclasses import fields

        from ..training import TrainConfig

        routed = {k[len("finetune__") :]: v for k, v in params.items() if k.startswith("finetune__")}
        if routed:
            known = {f.name for f in fields(TrainConfig)}
            unknown = sorted(f"finetune__{k}" for k in routed if k not in known)
            if unknown:
                raise ValueError(
                    f"Invalid parameter(s) {unknown} for estimator {type(self).__name__}: finetune__NAME takes the "
                    f"fields of skclap.training.TrainConfig ({', '.join(sorted(known))})"
                )
            self.finetune_params = {**(self.finetune_params or {}), **routed}
        rest = {k: v for k, v in params.items() if not k.startswith("finetune__")}
        return super().set_params(**rest) if rest else self

    def _head(self, multilabel: bool) -> Any:
        if self.estimator is not None:
            head = clone(self.estimator)
        else:
            head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if multilabel and not get_tags(head).classifier_tags.multi_label:
            head = OneVsRestClassifier(head)
        return head

    @_fit_context(prefer_skip_nested_validation=False)  # the head validates its own parameters
    def fit(self, X: Any, y: Any) -> CLAPLinearProbe:
        items = as_items(X)
        y = check_targets(y, len(items), type(self).__name__)
        self._binarizer = None
        if is_label_lists(y):
            self._binarizer = MultiLabelBinarizer().fit(y)
            y = self._binarizer.transform(y)
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        self.multilabel_ = kind == "multilabel-indicator"
        if self.finetune:
            self._finetune(items, y)
        emb = self._embed_audio(items)
        self.estimator_ = self._head(self.multilabel_).fit(emb, y)
        self.classes_ = self._binarizer.classes_ if self._binarizer is not None else self.estimator_.classes_
        if self.multilabel_ and self._binarizer is None:
            self.classes_ = np.arange(np.shape(y)[1])
        return self

    def _finetune(self, items: list[Any], y: Any) -> None:
        import copy

        import torch

        from ..training import SupervisedObjective, TrainConfig, Trainer

        if self.multilabel_:
            raise ValueError("finetune=True supports single-label targets; fit multi-label heads on frozen features")
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        base = trainable(resolve_model(self.model, self.device), type(self).__name__)
        model = copy.deepcopy(base)  # the shared (cached) model stays as it was
        head = torch.nn.Linear(model.config.proj_dim, len(classes))
        params: dict[str, Any] = {
            "epochs": 5,
            "batch_size": 32,
            "lr": 1e-4,
            "warmup_steps": 10,
            "progress": self.progress,
            "device": str(model.device),
        }
        params.update(self.finetune_params or {})
        params["batch_size"] = min(params["batch_size"], len(items))
        trainer = Trainer(model, TrainConfig(**params), objective=SupervisedObjective(head))
        trainer.fit((items, [int(c) for c in codes]), item_rate=self.sample_rate)
        self.finetuned_model_ = model.eval()
        self.finetune_history_ = trainer.history

    def _runtime_model(self) -> Any:
        return getattr(self, "finetuned_model_", None) or self.model

    def _features(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self._embed_audio(X)

    def predict(self, X: Any) -> np.ndarray:
        features = self._features(X)
        return self.estimator_.predict(features)

    def predict_proba(self, X: Any) -> np.ndarray:
        features = self._features(X)
        return self.estimator_.predict_proba(features)

    def decision_function(self, X: Any) -> np.ndarray:
        features = self._features(X)
        return self.estimator_.decision_function(features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
