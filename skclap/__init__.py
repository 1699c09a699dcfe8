"""skclap: CLAP (Contrastive Language-Audio Pretraining) for scikit-learn."""

from .audio import AudioError
from .estimators import CLAPEmbedder, CLAPLinearProbe, CLAPZeroShotClassifier
from .checkpoints import REGISTRY, CheckpointError, import_msclap, load_model
from .loss import contrastive_loss
from .models import PRESETS, CLAPConfig, CLAPModel

__version__ = "0.1.0"

__all__ = [
    "CLAPEmbedder",
    "CLAPLinearProbe",
    "CLAPZeroShotClassifier",
    "PRESETS",
    "REGISTRY",
    "AudioError",
    "CLAPConfig",
    "CLAPModel",
    "CheckpointError",
    "contrastive_loss",
    "import_msclap",
    "load_model",
]
