"""skclap: CLAP (Contrastive Language-Audio Pretraining) for scikit-learn."""

from .audio import AudioError
from .estimators import CLAPEmbedder, CLAPLinearProbe, CLAPZeroShotClassifier
from .checkpoints import import_laion, import_msclap, load_model
from .exceptions import CheckpointError
from .loss import contrastive_loss
from .models import PRESETS, CLAPConfig, CLAPModel
from .registry import PRETRAINED, list_models

__version__ = "0.1.0"

__all__ = [
    "CLAPEmbedder",
    "CLAPLinearProbe",
    "CLAPZeroShotClassifier",
    "PRESETS",
    "PRETRAINED",
    "AudioError",
    "CLAPConfig",
    "CLAPModel",
    "CheckpointError",
    "contrastive_loss",
    "import_laion",
    "import_msclap",
    "list_models",
    "load_model",
]
