"""CLAPFewShotClassifier: a linear head that starts at the zero-shot classifier and moves as far
from it as a few labelled clips justify: an anchored logistic head, or a Gaussian classifier of the
clips added to the zero-shot scores."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ..exceptions import UnknownWordsWarning
from ..inputs import as_items, check_targets, class_codes
from ..prompting import check_label_prompts, label_wordings
from ._base import CLAPEstimatorBase
from ._scoring import ClassVectorScores
from .zero_shot import CLAPZeroShotClassifier

__all__ = ["CLAPFewShotClassifier", "fit_anchored_head", "fit_gaussian_head", "fit_prior_head", "with_gaussian"]

#: The heads: a Gaussian classifier added to the zero-shot scores, and the anchored logistic head
#: fitted on the normalised or on the standardised embeddings.
SPACES = ("gaussian", "cosine", "standardized")

#: The ``alpha`` grid searched by cross-validation when ``alpha=None``.
DEFAULT_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def fit_anchored_head(
    audio: np.ndarray,
    targets: np.ndarray,
    anchor: np.ndarray,
    scale: float,
    alpha: float,
    anchor_intercept: np.ndarray | None = None,
    max_iter: int = 400,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class vectors ``W`` and intercepts ``b`` minimising the class-balanced cross-entropy of
    ``scale * (audio @ W.T + b)`` plus ``alpha / 2 * (||W - anchor||² + ||b - anchor_intercept||²)``.

    The problem is strictly convex, so L-BFGS (scipy's, float64, full batch, the gradient in
    closed form) finds its one minimum: the result depends on the data only. ``alpha`` large gives
    the anchor (the zero-shot classifier), ``alpha`` small a logistic regression on the features.
    ``start``: the weights and intercepts the search begins from (default: the anchor), such as the
    minimum for a nearby ``alpha``.
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    a = np.asarray(audio, dtype=np.float64)
    y = np.asarray(targets, dtype=np.intp)
    w0 = np.asarray(anchor, dtype=np.float64)
    n_classes, dim = w0.shape
    b0 = np.zeros(n_classes) if anchor_intercept is None else np.asarray(anchor_intercept, dtype=np.float64)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    balanced = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)[y]  # each clip's class weight
    weight = balanced / balanced.sum()  # each clip's share of the mean cross-entropy
    rows = np.arange(len(y))

    def pack(W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.ravel(W), np.ravel(b)], dtype=np.float64)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[: n_classes * dim].reshape(n_classes, dim), x[n_classes * dim :]

    def loss_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = unpack(x)
        logits = scale * (a @ W.T + b)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        dW, db = W - w0, b - b0
        loss = -(weight * log_p[rows, y]).sum() + 0.5 * alpha * ((dW**2).sum() + (db**2).sum())
        g = np.exp(log_p)  # d(cross-entropy)/d(logits): softmax minus the one-hot target, weighted
        g[rows, y] -= 1.0
        g *= (scale * weight)[:, None]
        return loss, pack(g.T @ a + alpha * dW, g.sum(axis=0) + alpha * db)

    x0 = pack(w0, b0) if start is None else pack(*start)
    # The products are small: BLAS threads would only wait on each other (and on torch's).
    with threadpool_limits(1, user_api="blas"):
        found = minimize(loss_and_grad, x0, jac=True, method="L-BFGS-B", options=dict(maxiter=max_iter, gtol=1e-7, ftol=1e-13))
    W, b = unpack(found.x)
    return W.copy(), b.copy()


def fit_gaussian_head(audio: np.ndarray, targets: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The linear scores ``audio @ P.T + b`` of a Gaussian classifier of the clips: one mean per
    class, one covariance shared by the classes (linear discriminant analysis).

    The covariance of the clips around their class means is shrunk towards a multiple of the
    identity by Ledoit-Wolf (few clips, many dimensions) and scaled to unit mean variance, so that
    the scores' size does not depend on how spread the clips are; with no spread to measure (one
    clip a class) it is the identity (nearest class mean). A class without clips gets the average
    of the others' scores: it neither attracts nor repels.
    """
    from sklearn.covariance import ledoit_wolf

    x = np.asarray(audio, dtype=np.float64)
    y = np.asarray(targets)
    dim = x.shape[1]
    present = np.bincount(y, minlength=n_classes) > 0
    means = np.zeros((n_classes, dim))
    for c in np.flatnonzero(present):
        means[c] = x[y == c].mean(axis=0)
    residuals = x - means[y]
    cov = np.eye(dim)
    if len(x) > present.sum():
        shrunk = ledoit_wolf(residuals, assume_centered=True)[0]
        mean_variance = np.trace(shrunk) / dim
        if mean_variance > 1e-12:
            cov = shrunk / mean_variance
    P = np.linalg.solve(cov, means.T).T
    b = -0.5 * np.sum(means * P, axis=1)
    P[~present] = P[present].mean(axis=0)
    b[~present] = b[present].mean()
    return P, b


def with_gaussian(prior: np.ndarray, gaussian: tuple[np.ndarray, np.ndarray], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The zero-shot class vectors ``prior`` plus ``1 / alpha`` times a Gaussian classifier's scores
    (:func:`fit_gaussian_head`), as weights and intercepts."""
    P, b = gaussian
    return np.asarray(prior, dtype=np.float64) + P / alpha, b / alpha


def fit_prior_head(
    audio: np.ndarray,
    targets: np.ndarray,
    prior: np.ndarray,
    scale: float,
    alpha: float,
    space: str,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A head that starts at the zero-shot classifier ``prior`` (class vectors), returned as
    raw-space weights and intercepts (scores ``audio @ W.T + b``); ``alpha`` is the strength of the
    prior in every space.

    ``"gaussian"``: the zero-shot scores plus ``1 / alpha`` times those of a Gaussian classifier of
    the clips (:func:`fit_gaussian_head`; the training-free few-shot baseline of Wang et al., 2024).
    ``"cosine"``: :func:`fit_anchored_head` on the normalised embeddings, anchored at the prompt
    embeddings. ``"standardized"``: the same on features centred and scaled by the clips' mean and
    standard deviation (as the linear probe does), anchored at the same zero-shot scores written in
    those coordinates (``w = σ ⊙ t``, ``b = t · μ``), so that the pull keeps the prior while the fit
    sees well-conditioned features. ``start``: raw-space weights and intercepts the fitted heads'
    search begins from (:func:`fit_anchored_head`).
    """
    if space == "gaussian":
        return with_gaussian(prior, fit_gaussian_head(audio, targets, len(prior)), alpha)
    if space == "cosine":
        return fit_anchored_head(audio, targets, prior, scale, alpha, start=start)
    mu = audio.mean(axis=0)
    sd = audio.std(axis=0) + 1e-6
    standardized_start = None if start is None else (start[0] * sd, start[1] + start[0] @ mu)
    W, b = fit_anchored_head((audio - mu) / sd, targets, prior * sd, scale, alpha, anchor_intercept=prior @ mu, start=standardized_start)
    W = W / sd
    return W, b - W @ mu


class CLAPFewShotClassifier(ClassVectorScores, ClassifierMixin, CLAPEstimatorBase):
    """Few-shot classification: the zero-shot classifier as a prior, adapted to labelled clips.

    The class prompts' embeddings (:class:`~skclap.CLAPZeroShotClassifier`) are the starting weights
    of a linear head on the normalised audio embeddings, scored as in zero-shot
    (``logit_scale * (audio · w_c + b_c)``). The head moves from them in one of two ways, each with
    a prior strength ``alpha`` (``alpha`` large: the zero-shot classifier; a class without clips keeps its
    zero-shot weights, and with the Gaussian head gets the average of the other classes' Gaussian scores):

    - ``space="gaussian"``: the zero-shot scores plus ``1 / alpha`` times the scores of a Gaussian
      classifier of the clips (class means, one covariance shrunk by Ledoit-Wolf; Wang et al., "A
      hard-to-beat baseline for training-free CLIP-based adaptation", 2024). Closed form; from
      four clips a class it uses what the clips say about the spread of each class, which a few
      clips cannot teach a logistic head.
    - ``space="cosine"`` or ``"standardized"``: trained with cross-entropy and an L2 pull of the
      weights towards the prompt embeddings of strength ``alpha`` (with many clips, a linear probe),
      on the normalised embeddings or on features standardised with the clips' statistics, anchored
      at the same zero-shot scores in either.

    ``alpha=None`` and ``space="auto"`` choose by cross-validation on the clips. With fewer clips in
    some class than ``cv``, the Gaussian head alone, its strength by leave-one-out (one closed-form
    fit per clip; with four clips a class, folds that keep all but one clip judge it as it will be
    used, where ``cv`` folds would judge it on three); otherwise every head, by stratified ``cv``
    folds. A held-out clip whose class has no other clip is scored with that class unseen, which
    favours the prior, as it should with one clip.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
    labels : sequence, optional
        The class names, in any order (``classes_`` holds them sorted); a class without clips keeps its
        zero-shot weights (see above). Default: the unique values of ``y``.
    templates, label_prompts
        The prompts of the prior, as in :class:`~skclap.CLAPZeroShotClassifier` (``templates="auto"``
        selects them on the clips).
    alpha : float, optional
        Strength of the prior (the pull towards it, or the inverse weight of the Gaussian
        classifier's scores); None (default) chooses it by cross-validation.
    alphas : sequence of float, default=(0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)
    space : {"auto", "gaussian", "cosine", "standardized"}, default="auto"
        The head (see above); "auto" chooses by cross-validation.
    cv : int, default=5
        Most folds for choosing the head and ``alpha``; with fewer clips than this in some class, the
        Gaussian head is chosen by leave-one-out (see above).
    random_state : int, optional
        Shuffles the folds; None keeps the clips' order (no randomness either way at prediction).
    sample_rate, batch_size, device, precision, cache, progress
        As in :class:`~skclap.CLAPEmbedder`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_embeddings_ : ndarray of shape (n_classes, dim) — the adapted class weights.
    intercept_ : ndarray of shape (n_classes,)
    zero_shot_ : CLAPZeroShotClassifier — the fitted prior.
    alpha_ : float — the strength used.
    space_ : str — the head used.
    cv_scores_ : dict — cross-validated accuracy of each candidate ``(space, alpha)`` (None when
        both are given).
    logit_scale_ : float

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPFewShotClassifier
    >>> waves = np.random.default_rng(0).standard_normal((4, 16000)).astype("float32")
    >>> clf = CLAPFewShotClassifier(model="preset:tiny", alpha=1.0, sample_rate=16000, progress=False, device="cpu")
    >>> clf.fit(waves, ["dog barking", "rain", "dog barking", "rain"]).predict(waves).shape
    (4,)
    >>> clf.zero_shot_.prompts_[0]
    ['this is a sound of dog barking.']
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        labels: Sequence[Any] | None = None,
        templates: str | Sequence[str] | None = None,
        label_prompts: Mapping[Any, Any] | None = None,
        alpha: float | None = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        space: str = "auto",
        cv: int = 5,
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
        self.templates = templates
        self.label_prompts = label_prompts
        self.alpha = alpha
        self.alphas = alphas
        self.space = space
        self.cv = cv
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
        "templates": [StrOptions({"auto"}), str, "array-like", None],
        "label_prompts": [Mapping, None],
        "alpha": [Interval(Real, 0, None, closed="neither"), None],
        "alphas": ["array-like"],
        "space": [StrOptions({"auto", *SPACES})],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> CLAPFewShotClassifier:
        items = as_items(X)
        y = check_targets(y, len(items), type(self).__name__)
        classes, codes = class_codes(y, self.labels, type(self).__name__)
        shared = {name: getattr(self, name) for name in CLAPEstimatorBase._parameter_constraints}  # cache, device...
        shared["model"] = self._clap()  # one model for both, resolved once
        prior = CLAPZeroShotClassifier(
            labels=list(classes), templates=self.templates, label_prompts=self.label_prompts, multilabel=False, **shared
        )
        check_label_prompts(self.label_prompts, classes.tolist())
        self._check_label_words({c: label_wordings(c, self.label_prompts) for c in classes.tolist()})
        with warnings.catch_warnings():  # said above, of this estimator's labels
            warnings.simplefilter("ignore", UnknownWordsWarning)
            if self.templates == "auto":  # templates chosen on the clips
                prior.fit(items, np.asarray(classes)[codes])
            else:
                prior.fit()
        audio = self._embed_audio(items, normalize=True)
        scale = prior.logit_scale_
        anchor = prior.class_embeddings_
        counts = np.bincount(codes)
        few = int(counts[counts > 0].min()) < self.cv  # fewer clips than folds in some class
        spaces = (("gaussian",) if few else SPACES) if self.space == "auto" else (self.space,)
        if self.alpha is not None:
            alphas = [float(self.alpha)]
        else:
            alphas = sorted({float(a) for a in self.alphas})
            if not alphas or alphas[0] <= 0:
                raise ValueError(f"alphas must be positive numbers; got {list(self.alphas)}")
        candidates = [(sp, a) for sp in spaces for a in alphas]
        leave_one_out = few and spaces == ("gaussian",)
        scores = self._cross_validate(audio, codes, anchor, scale, candidates, leave_one_out) if len(candidates) > 1 else None
        # the best score; ties go to the stronger prior, then to the closed-form head
        best = candidates[0] if scores is None else max(candidates, key=lambda c: (scores[c], c[1], c[0] == "gaussian"))
        self.cv_scores_ = scores
        self.space_, self.alpha_ = best
        W, b = fit_prior_head(audio, codes, anchor, scale, self.alpha_, self.space_)
        self.zero_shot_ = prior
        self.classes_ = classes
        self.class_embeddings_ = W.astype(np.float32)
        self.intercept_ = b.astype(np.float32)
        self.logit_scale_ = scale
        return self

    def _cross_validate(
        self,
        audio: np.ndarray,
        codes: np.ndarray,
        anchor: np.ndarray,
        scale: float,
        candidates: list[tuple[str, float]],
        leave_one_out: bool,
    ) -> dict[tuple[str, float], float]:
        from sklearn.model_selection import KFold, LeaveOneOut, StratifiedKFold

        if len(codes) < 2:
            return {c: 0.0 for c in candidates}
        counts = np.bincount(codes)
        smallest = int(counts[counts > 0].min())
        shuffle = self.random_state is not None
        kw = dict(shuffle=shuffle, random_state=self.random_state if shuffle else None)
        if leave_one_out:
            splits = list(LeaveOneOut().split(audio))
        elif smallest >= 2:
            splits = list(StratifiedKFold(min(self.cv, smallest), **kw).split(audio, codes))
        else:
            splits = list(KFold(min(self.cv, len(codes)), **kw).split(audio))
        correct = dict.fromkeys(candidates, 0)
        # Each fitted head walks its alphas from the strongest prior down, each search starting at
        # the previous minimum: the minima of neighbouring alphas are close, the anchor is far from
        # the weak-prior ones.
        order = sorted(candidates, key=lambda c: (c[0], -c[1]))
        for train, test in splits:
            gaussian = None  # one fit per fold serves every alpha
            start: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for space, alpha in order:
                if space == "gaussian":
                    if gaussian is None:
                        gaussian = fit_gaussian_head(audio[train], codes[train], len(anchor))
                    W, b = with_gaussian(anchor, gaussian, alpha)
                else:
                    W, b = start[space] = fit_prior_head(audio[train], codes[train], anchor, scale, alpha, space, start.get(space))
                correct[(space, alpha)] += int(((audio[test] @ W.T + b).argmax(axis=1) == codes[test]).sum())
        return {c: n / len(codes) for c, n in correct.items()}
