"""CLAPZeroShotClassifier: classify audio from class names and prompt templates alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils._param_validation import Interval, StrOptions

from ..inputs import as_items, check_targets, class_index, is_label_lists, resolve_classes
from ..metrics import mean_average_precision
from ..prompting import TEMPLATE_POOL, check_label_prompts, check_templates, label_wordings, prompt_vectors, prompts_for, select_templates
from ._base import CLAPEstimatorBase
from ._scoring import ClassVectorScores

__all__ = ["CLAPZeroShotClassifier"]


class CLAPZeroShotClassifier(ClassVectorScores, ClassifierMixin, CLAPEstimatorBase):
    """Zero-shot audio classification: the class whose prompt embedding is most similar wins.

    Each class name is written into every template (``"this is a sound of {}."``), the prompts are
    embedded, normalised and averaged per class (prompt ensembling). No training audio is needed:
    ``fit`` takes the class names from ``labels`` or from ``y`` and embeds the prompts once.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
    labels : sequence, optional
        The class names, in any order: ``classes_`` holds them sorted, as every scikit-learn
        classifier does. Default: the unique values of ``y`` in ``fit``. With ``y`` as an indicator
        matrix, the names of its columns, in their order.
    templates : str, sequence of str or "auto", optional
        Prompt templates with one ``{}`` each; default the paper's ``"this is a sound of {}."``.
        ``"auto"``: when ``fit`` gets labelled clips, choose the ensemble of :data:`TEMPLATE_POOL`
        that scores best on them (:func:`skclap.prompting.select_templates`); without labels, the default.
    label_prompts : mapping, optional
        Text to put in the templates for a label (a string or a list of strings, averaged), e.g.
        ``{"dog_bark": "dog barking"}``. Other labels are used as written, ``_`` read as a space.
    multilabel : {"auto", True, False}, default="auto"
        Tag sets (FSD50K style): ``y`` as a binary indicator matrix or a list of label lists.
        ``predict`` then returns an indicator matrix and ``score`` the mean average precision.
    threshold : float, optional
        Multi-label decision threshold on ``predict_proba``; default ``1 / n_classes`` (tags more
        likely than uniform).
    sample_rate, batch_size, device, precision, cache, progress
        As in :class:`~skclap.CLAPEmbedder`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    prompts_ : list of list of str — the prompts of each class.
    class_embeddings_ : ndarray of shape (n_classes, dim) — their normalised mean embeddings.
    multilabel_ : bool
    logit_scale_ : float — the model's temperature, used by ``predict_proba``.
    templates_ : list of str — the templates used (the chosen ones with ``templates="auto"``).
    template_scores_ : dict — with ``"auto"`` and labels: each pool template's score alone.
    template_cv_score_ : float or None — with ``"auto"`` and labels: the cross-validated score of
        the selection procedure (None when a class has fewer than two clips, or for tag sets).

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPZeroShotClassifier
    >>> waves = np.random.default_rng(0).standard_normal((3, 16000)).astype("float32")
    >>> clf = CLAPZeroShotClassifier(model="preset:tiny", labels=["dog barking", "rain"], sample_rate=16000,
    ...                              progress=False, device="cpu").fit()
    >>> clf.prompts_[0]
    ['this is a sound of dog barking.']
    >>> clf.predict_proba(waves).shape
    (3, 2)
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        labels: Sequence[Any] | None = None,
        templates: str | Sequence[str] | None = None,
        label_prompts: Mapping[Any, Any] | None = None,
        multilabel: Any = "auto",
        threshold: float | None = None,
        sample_rate: int | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.labels = labels
        self.templates = templates
        self.label_prompts = label_prompts
        self.multilabel = multilabel
        self.threshold = threshold
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.progress = progress

    _parameter_constraints: dict = {
        **CLAPEstimatorBase._parameter_constraints,
        "labels": ["array-like", None],
        "templates": [StrOptions({"auto"}), str, "array-like", None],
        "label_prompts": [Mapping, None],
        "multilabel": [StrOptions({"auto"}), "boolean"],
        "threshold": [Interval(Real, 0, 1, closed="both"), None],
    }

    # ------------------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any = None, y: Any = None) -> CLAPZeroShotClassifier:
        """Take the classes from ``labels`` or ``y`` and embed their prompts. ``X`` is not used for
        learning (it is only checked against ``y``)."""
        if X is not None:
            X = as_items(X)  # read once: an iterator would be spent by the next use
            if y is not None:
                y = check_targets(y, len(X), type(self).__name__)
        classes, multilabel = resolve_classes(y, self.labels, type(self).__name__, multilabel=self.multilabel)
        templates = check_templates(self.templates)
        for name in ("template_scores_", "template_cv_score_"):  # from an earlier fit
            self.__dict__.pop(name, None)
        check_label_prompts(self.label_prompts, classes.tolist())
        self._check_label_words({c: label_wordings(c, self.label_prompts) for c in classes.tolist()})
        if self.templates == "auto" and X is not None and y is not None:
            templates = self._select_templates(X, y, classes, multilabel)
        prompts = prompts_for(classes.tolist(), templates, self.label_prompts)
        self.class_embeddings_ = prompt_vectors(self._prompt_texts, prompts)
        self.templates_ = list(templates)
        self.classes_ = classes
        self.prompts_ = prompts
        self.multilabel_ = multilabel
        self.logit_scale_ = self._logit_scale()
        return self

    def _prompt_texts(self, texts: list[str]) -> np.ndarray:
        return self._embed_text(texts, normalize=True)

    def _select_templates(self, X: Any, y: Any, classes: np.ndarray, multilabel: bool) -> list[str]:
        """``templates="auto"`` with labelled clips: the ensemble of :data:`~skclap.prompting.TEMPLATE_POOL`
        that scores best on them (accuracy, or mAP for tag sets); see :func:`skclap.prompting.select_templates`."""
        audio = self._embed_audio(X, normalize=True)
        if multilabel:
            target = self._indicator(y)
        else:
            target = class_index(classes, y)
        wordings = [label_wordings(c, self.label_prompts) for c in classes.tolist()]
        chosen = select_templates(audio, target, wordings, self._prompt_texts, multilabel, TEMPLATE_POOL)
        self.template_scores_, self.template_cv_score_ = chosen.scores, chosen.cv_score
        return chosen.templates

    # ---------------------------------------------------------------------------- inference
    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel_:
            thr = 1.0 / len(self.classes_) if self.threshold is None else float(self.threshold)
            return (proba >= thr).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; for multi-label targets the mean average precision over classes with positives."""
        if not getattr(self, "multilabel_", False):
            return super().score(X, y, sample_weight=sample_weight)
        return mean_average_precision(self._indicator(y), self._scores(X), sample_weight=sample_weight)

    def _indicator(self, y: Any) -> np.ndarray:
        if is_label_lists(y):
            return MultiLabelBinarizer(classes=list(self.classes_)).fit_transform(y)
        Y = np.asarray(y)
        if Y.ndim != 2 or Y.shape[1] != len(self.classes_):
            raise ValueError(f"y must be an indicator matrix with {len(self.classes_)} columns; got shape {Y.shape}")
        return Y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
