"""CLAPZeroShotClassifier: classify audio from class names and prompt templates alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ..inputs import check_known_labels, check_labels
from ..metrics import mean_average_precision
from ._base import CLAPEstimatorBase, _normalize, as_items, check_targets, is_label_lists
from ._scoring import ClassVectorScores

__all__ = ["CLAPZeroShotClassifier", "DEFAULT_TEMPLATES", "TEMPLATE_POOL", "check_label_parts", "label_wordings"]

#: The prompt of the paper.
DEFAULT_TEMPLATES = ("this is a sound of {}.",)

#: The templates ``templates="auto"`` chooses from, the paper's first.
TEMPLATE_POOL = (
    "this is a sound of {}.",
    "a sound of {}.",
    "the sound of {}.",
    "{}",
    "{}.",
    "a recording of {}.",
    "an audio clip of {}.",
    "this is the sound of {}.",
    "you can hear {}.",
    "{} can be heard.",
    "a clip of {}.",
    "it sounds like {}.",
    "this audio contains {}.",
    "a field recording of {}.",
    "a close-up recording of {}.",
    "a short recording of {}.",
)


def check_label_parts(labels: Sequence[Any], label_parts: Mapping[Any, Any]) -> list[tuple[Any, ...]]:
    """Each label's parts from ``label_parts``, checked: every label has an entry, all entries have
    one length, every entry names a part, and no two labels have the same parts."""
    out: list[tuple[Any, ...]] = []
    for label in labels:
        if label not in label_parts:
            raise ValueError(f"label_parts has no entry for the label {label!r}; give its parts, e.g. ('high', 'flute')")
        value = label_parts[label]
        parts = (value,) if isinstance(value, str) else tuple(value)
        if not any(p is not None for p in parts):
            raise ValueError(f"label_parts[{label!r}] names no part: {value!r}")
        if out and len(parts) != len(out[0]):
            raise ValueError(
                f"label_parts[{label!r}] has {len(parts)} parts but label_parts[{labels[0]!r}] has {len(out[0])}; "
                "write None for a missing part"
            )
        out.append(parts)
    seen: dict[tuple[Any, ...], Any] = {}
    for label, parts in zip(labels, out):
        if parts in seen:
            raise ValueError(f"labels {seen[parts]!r} and {label!r} have the same parts {parts}; they could not be told apart")
        seen[parts] = label
    return out


def label_wordings(label: Any, label_prompts: Mapping[Any, Any] | None) -> list[str]:
    """The texts that stand for a label in prompts: ``label_prompts[label]`` (a string or a list of
    strings) or the label itself with ``_`` read as a space."""
    texts = (label_prompts or {}).get(label, str(label).replace("_", " "))
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"label_prompts[{label!r}] must be a non-empty string or list of strings")
    return texts


class CLAPZeroShotClassifier(ClassVectorScores, ClassifierMixin, CLAPEstimatorBase):
    """Zero-shot audio classification: the class whose prompt embedding is most similar wins.

    Each class name is written into every template (``"this is a sound of {}."``), the prompts are
    embedded, normalised and averaged per class (prompt ensembling). No training audio is needed:
    ``fit`` takes the class names from ``labels`` or from ``y`` and embeds the prompts once.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
    labels : sequence, optional
        The classes, in order. Default: the sorted unique values of ``y`` in ``fit``.
    templates : str, sequence of str or "auto", optional
        Prompt templates with one ``{}`` each; default the paper's ``"this is a sound of {}."``.
        ``"auto"``: when ``fit`` gets labelled clips, choose the ensemble of :data:`TEMPLATE_POOL`
        that scores best on them (greedy forward selection); without labels, the default.
    label_prompts : mapping, optional
        Text to put in the templates for a label (a string or a list of strings, averaged), e.g.
        ``{"dog_bark": "dog barking"}``. Other labels are used as written, ``_`` read as a space.
        With ``label_parts`` its keys may also be parts.
    label_parts : mapping, optional
        Classes made of parts, e.g. ``{"high flute": ("high", "flute"), "low flute": ("low", "flute"),
        "snare drum": (None, "snare drum")}``: the k-th parts of all labels compete with each other
        (here a pitch and an instrument). Each part is prompted like a label, and a class scores the
        sum of its parts' log-probabilities (the product of one zero-shot classifier per part; a
        missing part counts as uniform). A combination never described together is then recognised
        from its words' separate meanings. Every label needs an entry, all of one length.
    relative_to : int, optional
        With ``label_parts``: the position of the part (the noun, e.g. the instrument) that the
        other parts (gradable words such as *high* or *loud*) are judged relative to. A high cello
        note is lower than a low flute note: the words mean "higher than usual for this noun". A
        class's score for its part ``"high"`` is then the audio's similarity to the prompts of
        ``"high"`` minus that of the prompts of its noun (``"a cello"``, where a typical cello lies),
        each compared with the other values (``"low"``) likewise. Default: every part judged absolutely.
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
    prompts_ : list of list of str — the prompts of each class (with ``label_parts``: of its parts).
    class_embeddings_ : ndarray of shape (n_classes, dim) — their normalised mean embeddings (with
        ``label_parts``: the mean of its parts' embeddings, for maps; the scores come from the parts).
    parts_ : list of ndarray — with ``label_parts``: the parts that compete in each position.
    part_embeddings_ : list of ndarray — with ``label_parts``: their normalised prompt embeddings.
    part_index_ : ndarray of shape (n_classes, n_positions) — each class's part in each position (-1: none).
    part_offsets_ : list of ndarray — with ``relative_to``: for each position, the similarity of
        every class's noun to each competing part (n_classes x n_parts; zeros for the noun's own position).
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
        label_parts: Mapping[Any, Any] | None = None,
        relative_to: int | None = None,
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
        self.label_parts = label_parts
        self.relative_to = relative_to
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
        "label_parts": [Mapping, None],
        "relative_to": [Interval(Integral, 0, None, closed="left"), None],
        "multilabel": [StrOptions({"auto"}), "boolean"],
        "threshold": [Interval(Real, 0, 1, closed="both"), None],
    }

    # ------------------------------------------------------------------------------ fitting
    def _templates(self) -> list[str]:
        templates = DEFAULT_TEMPLATES if self.templates in (None, "auto") else self.templates
        templates = [templates] if isinstance(templates, str) else list(templates)
        if not templates:
            raise ValueError("templates is empty; give at least one template such as 'this is a sound of {}.'")
        for t in templates:
            if not isinstance(t, str) or t.count("{}") != 1:
                raise ValueError(f"each template must be a string with exactly one '{{}}'; got {t!r}")
        return templates

    def _texts_for(self, label: Any) -> list[str]:
        return label_wordings(label, self.label_prompts)

    def _resolve_targets(self, y: Any) -> tuple[np.ndarray, bool]:
        labels = check_labels(self.labels)
        if y is None:
            if labels is None:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None (or give the class names as labels=[...])"
                )
            return np.asarray(labels, dtype=object if any(isinstance(v, str) for v in labels) else None), self.multilabel is True

        if is_label_lists(y):
            if self.multilabel is False:
                raise ValueError("y is a list of label lists, but multilabel=False")
            if labels is None:
                return MultiLabelBinarizer().fit(y).classes_, True
            check_known_labels((v for row in y for v in row), labels)
            return np.asarray(labels), True

        y_arr = np.asarray(y)
        kind = type_of_target(y_arr, input_name="y")
        if kind == "multilabel-indicator" or (y_arr.ndim == 2 and self.multilabel is True):
            if self.multilabel is False:
                raise ValueError("y is a 2-D indicator matrix, but multilabel=False")
            n_cls = y_arr.shape[1]
            if labels is not None and len(labels) != n_cls:
                raise ValueError(f"y has {n_cls} columns but labels has {len(labels)} names")
            return np.asarray(labels if labels is not None else np.arange(n_cls)), True
        if y_arr.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per clip) or a multi-label indicator matrix; got shape {y_arr.shape}")
        check_classification_targets(y_arr)
        if self.multilabel is True:
            raise ValueError("multilabel=True needs y as an indicator matrix or a list of label lists")
        if labels is None:
            return np.unique(y_arr), False
        check_known_labels(y_arr.tolist(), labels)
        return np.asarray(labels, dtype=y_arr.dtype if y_arr.dtype != object else object), False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any = None, y: Any = None) -> CLAPZeroShotClassifier:
        """Take the classes from ``labels`` or ``y`` and embed their prompts. ``X`` is not used for
        learning (it is only checked against ``y``)."""
        if X is not None and y is not None:
            y = check_targets(y, len(as_items(X)), type(self).__name__)
        elif X is not None:
            as_items(X)
        classes, multilabel = self._resolve_targets(y)
        templates = self._templates()
        for name in ("parts_", "part_embeddings_", "part_index_", "part_offsets_"):  # from an earlier fit
            self.__dict__.pop(name, None)
        if self.relative_to is not None and self.label_parts is None:
            raise ValueError("relative_to names a position of label_parts; give label_parts too")
        if self.label_parts is not None:
            if self.templates == "auto":
                raise ValueError("templates='auto' chooses prompts for whole labels; with label_parts give the templates")
            self.class_embeddings_, prompts = self._fit_parts(classes, templates)
        else:
            if self.templates == "auto" and X is not None and y is not None:
                templates = self._select_templates(X, y, classes, multilabel)
            prompts = [[t.format(text) for text in self._texts_for(c) for t in templates] for c in classes]
            self.class_embeddings_ = self._prompt_embeddings(prompts)
        self.templates_ = list(templates)
        self.classes_ = classes
        self.prompts_ = prompts
        self.multilabel_ = multilabel
        self.logit_scale_ = self._logit_scale()
        return self

    def _prompt_embeddings(self, prompts: list[list[str]]) -> np.ndarray:
        """The normalised mean embedding of each group of prompts."""
        emb = self._embed_text([p for group in prompts for p in group], normalize=True)
        bounds = np.cumsum([0] + [len(g) for g in prompts])
        return _normalize(np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))

    def _fit_parts(self, classes: np.ndarray, templates: list[str]) -> tuple[np.ndarray, list[list[str]]]:
        """Embed the parts' prompts (``parts_``, ``part_embeddings_``, ``part_index_``); returns each
        class's mean part embedding and its parts' prompts."""
        parts = check_label_parts(classes.tolist(), self.label_parts or {})
        slots = [list(dict.fromkeys(p[k] for p in parts if p[k] is not None)) for k in range(len(parts[0]))]
        index = np.asarray([[slots[k].index(p[k]) if p[k] is not None else -1 for k in range(len(slots))] for p in parts])
        prompts = [[[t.format(text) for text in self._texts_for(part) for t in templates] for part in slot] for slot in slots]
        self.part_embeddings_ = [self._prompt_embeddings(group) for group in prompts]
        self.parts_ = [np.asarray(slot, dtype=object) for slot in slots]
        self.part_index_ = index
        r = self.relative_to
        if r is not None:
            if r >= len(slots):
                raise ValueError(f"relative_to={r} but the labels have {len(slots)} parts (positions 0 to {len(slots) - 1})")
            missing = [c for c, row in zip(classes.tolist(), index) if row[r] < 0]
            if missing:
                raise ValueError(f"relative_to={r}: the label {missing[0]!r} has no part in that position to be judged against")
            noun = self.part_embeddings_[r][index[:, r]]
            self.part_offsets_ = [np.zeros((len(index), len(e))) if k == r else noun @ e.T for k, e in enumerate(self.part_embeddings_)]
        means = _normalize(np.stack([np.mean([self.part_embeddings_[k][j] for k, j in enumerate(row) if j >= 0], axis=0) for row in index]))
        return means, [[p for k, j in enumerate(row) if j >= 0 for p in prompts[k][j]] for row in index]

    def _select_templates(self, X: Any, y: Any, classes: np.ndarray, multilabel: bool) -> list[str]:
        """``templates="auto"`` with labelled clips: greedy forward selection from :data:`TEMPLATE_POOL`
        of the ensemble that scores best on them (accuracy, or mAP for tag sets); ties keep the pool's
        order. ``template_cv_score_`` estimates the procedure itself by stratified cross-validation:
        templates chosen on the training folds, scored on the held-out fold."""
        audio = self._embed_audio(X, normalize=True)
        if multilabel:
            target = self._indicator(y)
        else:
            index = {c: i for i, c in enumerate(classes.tolist())}
            target = np.asarray([index[v] for v in np.asarray(y).tolist()])
        pool = list(TEMPLATE_POOL)
        wordings = [self._texts_for(c) for c in classes]
        flat = [t.format(w) for t in pool for ws in wordings for w in ws]
        emb = self._embed_text(flat, normalize=True)
        sums = np.zeros((len(pool), len(classes), emb.shape[1]))  # per template: summed prompt embeddings
        row = 0
        for ti in range(len(pool)):
            for ci, ws in enumerate(wordings):
                sums[ti, ci] = emb[row : row + len(ws)].sum(axis=0)
                row += len(ws)

        def score(chosen: list[int], rows: np.ndarray) -> float:
            cos = audio[rows] @ _normalize(sums[chosen].sum(axis=0)).T
            if multilabel:
                return mean_average_precision(target[rows], cos)
            return float((cos.argmax(axis=1) == target[rows]).mean())

        def select(rows: np.ndarray) -> list[int]:
            chosen: list[int] = []
            best = -np.inf
            while len(chosen) < len(pool):
                trials = [(score(chosen + [t], rows), -t) for t in range(len(pool)) if t not in chosen]
                value, neg_t = max(trials)
                if value <= best:
                    break
                chosen.append(-neg_t)
                best = value
            return chosen

        everything = np.arange(len(audio))
        self.template_scores_ = {pool[t]: score([t], everything) for t in range(len(pool))}
        self.template_cv_score_ = None
        if not multilabel:
            counts = np.bincount(target, minlength=len(classes))
            folds = int(min(5, counts[counts > 0].min()))
            if folds >= 2:
                from sklearn.model_selection import StratifiedKFold

                split = StratifiedKFold(folds, shuffle=True, random_state=0).split(audio, target)
                self.template_cv_score_ = float(np.mean([score(select(tr), te) for tr, te in split]))
        return [pool[t] for t in select(everything)]

    # ---------------------------------------------------------------------------- inference
    def _scores(self, X: Any) -> np.ndarray:
        if not hasattr(self, "part_embeddings_"):
            return super()._scores(X)
        # the sum of the parts' log-probabilities, divided by the temperature: predict_proba's
        # softmax of logit_scale_ times these is then the normalised product of the parts' probabilities
        audio = self._embed_audio(X, normalize=True).astype(np.float64)
        total = np.zeros((len(audio), len(self.classes_)))
        offsets = getattr(self, "part_offsets_", None)
        for k, emb in enumerate(self.part_embeddings_):
            cos = audio @ emb.T.astype(np.float64)
            col = self.part_index_[:, k]
            if offsets is None:
                logp = log_softmax(self.logit_scale_ * cos, axis=1)[:, np.maximum(col, 0)]
            else:  # each class's parts compete after its noun's similarity is taken off (one pass per noun)
                logp = np.empty((len(audio), len(col)))
                rows, which = np.unique(offsets[k], axis=0, return_inverse=True)
                for u, offset in enumerate(rows):
                    members = np.flatnonzero(which.ravel() == u)
                    logp[:, members] = log_softmax(self.logit_scale_ * (cos - offset), axis=1)[:, np.maximum(col[members], 0)]
            total += np.where(col >= 0, logp, -np.log(len(emb)))
        return total / self.logit_scale_

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
