"""scikit-learn estimators over a CLAP model, one idea each."""

from .compositional import CLAPCompositionalClassifier
from .embedder import CLAPEmbedder
from .few_shot import CLAPFewShotClassifier
from .linear_probe import CLAPLinearProbe
from .prompt_tuner import CLAPPromptTuner
from .zero_shot import CLAPZeroShotClassifier

__all__ = [
    "CLAPCompositionalClassifier",
    "CLAPEmbedder",
    "CLAPFewShotClassifier",
    "CLAPLinearProbe",
    "CLAPPromptTuner",
    "CLAPZeroShotClassifier",
]
