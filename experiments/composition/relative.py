"""Gradable words judged relative to the noun: a compositional classifier for the experiment.

A high cello note is lower than a low flute note: *high* and *loud* mean "higher (louder) than usual
for this instrument". :class:`RelativeCompositionalClassifier` is skclap's
:class:`~skclap.CLAPCompositionalClassifier` with one change: the parts of the other positions are
judged against the class's noun (the part in position ``relative_to``, e.g. the instrument). A
class's score for its part *high* is the clip's similarity to the prompts of *high* minus that of its
noun's prompts (*a cello*, where a typical cello lies), each compared with the other values (*low*)
likewise; the noun's own position, and a missing part, are scored as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.utils._param_validation import Interval

from skclap import CLAPCompositionalClassifier

__all__ = ["RelativeCompositionalClassifier"]


class RelativeCompositionalClassifier(CLAPCompositionalClassifier):
    """:class:`~skclap.CLAPCompositionalClassifier` with the other parts judged against the noun in
    position ``relative_to`` (module docstring).

    Attributes (besides the parent's)
    ---------------------------------
    part_offsets_ : list of ndarray — for each position, the similarity of every class's noun to each
        competing part (n_classes x n_parts; zeros for the noun's own position).
    """

    def __init__(
        self,
        *,
        model: Any = "msclap-2022",
        label_parts: Mapping[Any, Any] | None = None,
        relative_to: int = 1,
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
        super().__init__(
            model=model,
            label_parts=label_parts,
            labels=labels,
            templates=templates,
            label_prompts=label_prompts,
            sample_rate=sample_rate,
            batch_size=batch_size,
            device=device,
            precision=precision,
            cache=cache,
            progress=progress,
        )
        self.relative_to = relative_to

    _parameter_constraints: dict = {
        **CLAPCompositionalClassifier._parameter_constraints,
        "relative_to": [Interval(Integral, 0, None, closed="left")],
    }

    def fit(self, X: Any = None, y: Any = None) -> RelativeCompositionalClassifier:
        super().fit(X, y)
        r, index = self.relative_to, self.part_index_
        if r >= index.shape[1]:
            raise ValueError(f"relative_to={r} but the labels have {index.shape[1]} parts (positions 0 to {index.shape[1] - 1})")
        missing = [c for c, row in zip(self.classes_.tolist(), index) if row[r] < 0]
        if missing:
            raise ValueError(f"relative_to={r}: the label {missing[0]!r} has no part in that position to be judged against")
        noun = self.part_embeddings_[r][index[:, r]]
        self.part_offsets_ = [np.zeros((len(index), len(e))) if k == r else noun @ e.T for k, e in enumerate(self.part_embeddings_)]
        return self

    def _part_log_probs(self, k: int, cos: np.ndarray) -> np.ndarray:
        # each class's parts compete after its noun's similarity is taken off (one pass per noun)
        col = self.part_index_[:, k]
        logp = np.empty((len(cos), len(col)))
        rows, which = np.unique(self.part_offsets_[k], axis=0, return_inverse=True)
        for u, offset in enumerate(rows):
            members = np.flatnonzero(which.ravel() == u)
            logp[:, members] = log_softmax(self.logit_scale_ * (cos - offset), axis=1)[:, np.maximum(col[members], 0)]
        return logp
