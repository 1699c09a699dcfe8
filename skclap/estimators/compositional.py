"""CLAPCompositionalClassifier: classes made of parts, each part prompted apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from ..batching import normalize_rows
from ..inputs import as_items, check_targets, resolve_classes
from ..prompting import check_label_prompts, check_templates, label_wordings, prompt_vectors, prompts_for
from ._base import CLAPEstimatorBase
from ._scoring import ClassVectorScores

__all__ = ["CLAPCompositionalClassifier", "check_label_parts"]


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


class CLAPCompositionalClassifier(ClassVectorScores, ClassifierMixin, CLAPEstimatorBase):
    """Zero-shot classification of classes made of parts, e.g. an attribute and an instrument.

    ``label_parts`` gives each class its parts: ``{"high flute": ("high", "flute"), "low flute":
    ("low", "flute"), "snare drum": (None, "snare drum")}``. The k-th parts of all classes compete with
    each other (here a pitch, then an instrument): each part is prompted like a zero-shot label
    (templates and ``label_prompts``, as in :class:`~skclap.CLAPZeroShotClassifier`), and a class
    scores the sum of its parts' log-probabilities, the product of one zero-shot classifier per part
    (a missing part counts as uniform). A combination never described together is then recognised
    from its words' separate meanings.

    Parameters
    ----------
    model : str, path or CLAPModel, default="msclap-2022"
    label_parts : mapping
        Each class's parts (a tuple, ``None`` for a missing part; a string for a single part); every
        class needs an entry, all of one length.
    labels : sequence, optional
        The class names, in any order: ``classes_`` holds them sorted. Default: the keys of
        ``label_parts``, or the unique values of ``y`` in ``fit``.
    templates : str or sequence of str, optional
        Prompt templates with one ``{}`` each; default the paper's ``"this is a sound of {}."``.
    label_prompts : mapping, optional
        Text to put in the templates for a part (a string or a list of strings, averaged), e.g.
        ``{"high": ["a high note", "a high pitched note"]}``. Other parts are used as written.
    sample_rate, batch_size, device, precision, cache, progress
        As in :class:`~skclap.CLAPEmbedder`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    parts_ : list of ndarray — the parts that compete in each position.
    part_embeddings_ : list of ndarray — their normalised prompt embeddings, one array per position.
    part_index_ : ndarray of shape (n_classes, n_positions) — each class's part in each position (-1: none).
    prompts_ : list of list of str — the prompts of each class's parts.
    class_embeddings_ : ndarray of shape (n_classes, dim) — the normalised mean of each class's parts'
        embeddings (for maps and retrieval; the scores come from the parts).
    logit_scale_ : float — the model's temperature.
    templates_ : list of str

    Examples
    --------
    >>> import numpy as np
    >>> from skclap import CLAPCompositionalClassifier
    >>> parts = {"high flute": ("high", "flute"), "low flute": ("low", "flute"), "high cello": ("high", "cello")}
    >>> clf = CLAPCompositionalClassifier(model="preset:tiny", label_parts=parts, sample_rate=16000,
    ...                                   progress=False, device="cpu").fit()
    >>> [list(p) for p in clf.parts_]
    [['high', 'low'], ['cello', 'flute']]
    >>> waves = np.random.default_rng(0).standard_normal((2, 16000)).astype("float32")
    >>> clf.predict_proba(waves).shape
    (2, 3)
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        label_parts: Mapping[Any, Any] | None = None,
        labels: Sequence[Any] | None = None,
        templates: str | Sequence[str] | None = None,
        label_prompts: Mapping[Any, Any] | None = None,
        sample_rate: int | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str | None = None,
        cache: Any = True,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.label_parts = label_parts
        self.labels = labels
        self.templates = templates
        self.label_prompts = label_prompts
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.progress = progress

    _parameter_constraints: dict = {
        **CLAPEstimatorBase._parameter_constraints,
        "label_parts": [Mapping, None],
        "labels": ["array-like", None],
        "templates": [str, "array-like", None],
        "label_prompts": [Mapping, None],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any = None, y: Any = None) -> CLAPCompositionalClassifier:
        """Take the classes from ``labels``, ``label_parts`` or ``y`` and embed their parts' prompts.
        ``X`` is not used for learning (it is only checked against ``y``)."""
        if self.label_parts is None:
            raise ValueError("label_parts is required: each class's parts, e.g. {'high flute': ('high', 'flute')}")
        if X is not None:
            X = as_items(X)
            if y is not None:
                y = check_targets(y, len(X), type(self).__name__)
        if isinstance(self.templates, str) and self.templates == "auto":
            raise ValueError("templates='auto' chooses templates for whole labels (CLAPZeroShotClassifier); give the parts' templates")
        classes, _ = resolve_classes(
            y, self.labels, type(self).__name__, default=list(self.label_parts), hint="name the classes in label_parts"
        )
        templates = check_templates(self.templates)
        parts = check_label_parts(classes.tolist(), self.label_parts)
        slots = [list(dict.fromkeys(p[k] for p in parts if p[k] is not None)) for k in range(len(parts[0]))]
        index = np.asarray([[slots[k].index(p[k]) if p[k] is not None else -1 for k in range(len(slots))] for p in parts])
        every_part = [part for slot in slots for part in slot]
        check_label_prompts(self.label_prompts, every_part, what="part")
        self._check_label_words({part: label_wordings(part, self.label_prompts) for part in every_part})
        prompts = [prompts_for(slot, templates, self.label_prompts) for slot in slots]
        self.part_embeddings_ = [prompt_vectors(self._prompt_texts, group) for group in prompts]
        self.parts_ = [np.asarray(slot, dtype=object) for slot in slots]
        self.part_index_ = index
        self.class_embeddings_ = normalize_rows(
            np.stack([np.mean([self.part_embeddings_[k][j] for k, j in enumerate(row) if j >= 0], axis=0) for row in index])
        )
        self.prompts_ = [[p for k, j in enumerate(row) if j >= 0 for p in prompts[k][j]] for row in index]
        self.templates_ = templates
        self.classes_ = classes
        self.logit_scale_ = self._logit_scale()
        return self

    def _prompt_texts(self, texts: list[str]) -> np.ndarray:
        return self._embed_text(texts, normalize=True)

    def _part_log_probs(self, k: int, cos: np.ndarray) -> np.ndarray:
        """``(n, n_classes)``: for each clip, the log-probability of each class's part in position
        ``k`` among that position's parts, from the clips' cosines to them (``(n, n_parts)``)."""
        return log_softmax(self.logit_scale_ * cos, axis=1)[:, np.maximum(self.part_index_[:, k], 0)]

    def _scores(self, X: Any) -> np.ndarray:
        # the sum of the parts' log-probabilities, divided by the temperature: predict_proba's
        # softmax of logit_scale_ times these is then the normalised product of the parts' probabilities
        check_is_fitted(self, "part_embeddings_")
        audio = self._embed_audio(X, normalize=True).astype(np.float64)
        total = np.zeros((len(audio), len(self.classes_)))
        for k, emb in enumerate(self.part_embeddings_):
            logp = self._part_log_probs(k, audio @ emb.T.astype(np.float64))
            total += np.where(self.part_index_[:, k] >= 0, logp, -np.log(len(emb)))
        return total / self.logit_scale_
