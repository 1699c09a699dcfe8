"""scikit-learn estimators over a CLAP model."""

from .embedder import CLAPEmbedder
from .linear_probe import CLAPLinearProbe
from .zero_shot import CLAPZeroShotClassifier

__all__ = ["CLAPEmbedder", "CLAPLinearProbe", "CLAPZeroShotClassifier"]
