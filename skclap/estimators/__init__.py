"""scikit-learn estimators over a CLAP model."""

from .embedder import CLAPEmbedder
from .few_shot import CLAPFewShotClassifier
from .linear_probe import CLAPLinearProbe
from .prompt_tuner import CLAPPromptTuner
from .zero_shot import CLAPZeroShotClassifier

__all__ = ["CLAPEmbedder", "CLAPFewShotClassifier", "CLAPLinearProbe", "CLAPPromptTuner", "CLAPZeroShotClassifier"]
