"""CLAPPromptTuner: zero-shot prompts whose context words are learnt from a few labelled clips (CoOp)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval

from ..checkpoints import trainable
from ..inputs import as_items, check_targets, class_codes
from ..prompt_tuning import tune_context
from ..prompting import check_label_prompts, label_wordings
from ._base import CLAPEstimatorBase
from ._scoring import ClassVectorScores

__all__ = ["CLAPPromptTuner"]


class CLAPPromptTuner(ClassVectorScores, ClassifierMixin, CLAPEstimatorBase):
    """Prompt tuning (CoOp, Zhou et al. 2022): the class prompts' context words become vectors learnt
    from labelled clips, with the whole model frozen.

    ``fit`` embeds the clips once (cached), then trains the context shared by every class prompt
    (``"[v1] [v2] ... [vm] dog barking."``) on the cross-entropy of CLAP's scaled cosine similarity,
    pulled towards the hand-written prompt's embedding by ``regularization`` (KgCoOp). Only the text
    tower runs at each step. Prediction is the zero-shot rule with the tuned class embeddings.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
        Any backend whose text tower takes input embeddings (all of skclap's).
    labels : sequence, optional
        The class names, in any order (``classes_`` holds them sorted). Default: the unique values of ``y``.
    context : str or int, default="this is a sound of {}."
        A template: the context is initialised with the embeddings of its words before ``{}`` (the
        words after it stay fixed). An integer: that many context vectors, initialised at random.
    label_prompts : mapping, optional
        Text for a label (a string or a list of strings, averaged), as in
        :class:`~skclap.CLAPZeroShotClassifier`.
    steps : int, default=200
        Full-batch Adam steps.
    lr : float, default=2e-3
    regularization : float, default=0.0
        Weight of the mean squared distance between each class's tuned prompt embedding and its
        embedding with the initial context; 0 is plain CoOp.
    random_state : int, optional
        Seeds a random initial context (``context`` an integer); None means 0, so that results never
        depend on global random state. A template context involves no randomness.
    sample_rate, batch_size, device, precision, cache, progress
        As in :class:`~skclap.CLAPEmbedder`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    context_ : ndarray of shape (n_context, hidden) — the learnt context vectors.
    class_embeddings_ : ndarray of shape (n_classes, dim) — normalised, with the learnt context.
    initial_class_embeddings_ : ndarray of shape (n_classes, dim) — with the initial context.
    logit_scale_ : float
    history_ : list of float — the training loss at each step.

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPPromptTuner
    >>> waves = np.random.default_rng(0).standard_normal((4, 16000)).astype("float32")
    >>> tuner = CLAPPromptTuner(model="preset:tiny", steps=5, sample_rate=16000, progress=False, device="cpu")
    >>> tuner.fit(waves, ["dog barking", "rain", "dog barking", "rain"]).context_.shape[0]  # "this is a sound of"
    5
    >>> tuner.predict(waves).shape
    (4,)
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        labels: Sequence[Any] | None = None,
        context: str | int = "this is a sound of {}.",
        label_prompts: Mapping[Any, Any] | None = None,
        steps: int = 200,
        lr: float = 2e-3,
        regularization: float = 0.0,
        random_state: int | None = None,
        sample_rate: int | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.labels = labels
        self.context = context
        self.label_prompts = label_prompts
        self.steps = steps
        self.lr = lr
        self.regularization = regularization
        self.random_state = random_state
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.progress = progress

    _parameter_constraints: dict = {
        **CLAPEstimatorBase._parameter_constraints,
        "labels": ["array-like", None],
        "context": [str, Interval(Integral, 1, None, closed="left")],
        "label_prompts": [Mapping, None],
        "steps": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "regularization": [Interval(Real, 0, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> CLAPPromptTuner:
        items = as_items(X)
        y = check_targets(y, len(items), type(self).__name__)
        classes, codes = class_codes(y, self.labels, type(self).__name__)
        check_label_prompts(self.label_prompts, classes.tolist())
        wordings = [label_wordings(c, self.label_prompts) for c in classes.tolist()]
        self._check_label_words(dict(zip(classes.tolist(), wordings)))
        audio = self._embed_audio(items, normalize=True)
        result = tune_context(
            trainable(self._clap(), type(self).__name__),
            audio,
            codes,
            wordings,
            self.context,
            steps=self.steps,
            lr=self.lr,
            regularization=self.regularization,
            seed=0 if self.random_state is None else self.random_state,
        )
        self.classes_ = classes
        self.context_ = result.context
        self.class_embeddings_ = result.class_embeddings
        self.initial_class_embeddings_ = result.initial_embeddings
        self.history_ = result.history
        self.logit_scale_ = self._logit_scale()
        return self
