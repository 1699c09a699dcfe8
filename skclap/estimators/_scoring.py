"""Classifiers that score a clip against one vector per class in the shared space."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import softmax
from sklearn.utils.validation import check_is_fitted

__all__ = ["ClassVectorScores"]


class ClassVectorScores:
    """``decision_function``, ``predict_proba`` and ``predict`` from ``class_embeddings_`` (one
    vector per class, ``(n_classes, dim)``), an optional ``intercept_`` and ``logit_scale_``: the
    score of a clip for a class is ``audio · class vector + intercept`` (the cosine similarity for
    normalised prompt embeddings), the probabilities the softmax of ``logit_scale_`` times the scores."""

    classes_: np.ndarray
    class_embeddings_: np.ndarray
    logit_scale_: float
    multilabel_: bool = False

    if TYPE_CHECKING:  # provided by CLAPEstimatorBase

        def _embed_audio(self, X: Any, normalize: bool = True) -> np.ndarray: ...

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "class_embeddings_")
        # float64: a clip's score must not depend on the other rows of the product (BLAS blocking)
        audio = self._embed_audio(X, normalize=True).astype(np.float64)
        return audio @ self.class_embeddings_.T.astype(np.float64) + getattr(self, "intercept_", 0.0)

    def decision_function(self, X: Any) -> np.ndarray:
        """The score of each clip for each class, ``(n, n_classes)`` (for two single-label classes,
        the difference of the two, as scikit-learn expects)."""
        scores = self._scores(X)
        if not self.multilabel_ and len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax over classes of ``logit_scale_`` times the scores (CLAP's zero-shot probabilities)."""
        scores = self._scores(X)
        return softmax(self.logit_scale_ * scores, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]
