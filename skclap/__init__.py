"""skclap: CLAP (Contrastive Language-Audio Pretraining) for scikit-learn."""

from .audio import AudioError
from .checkpoints import import_laion, import_msclap, load_model
from .embed import embed_collection
from .estimators import (
    CLAPCompositionalClassifier,
    CLAPEmbedder,
    CLAPFewShotClassifier,
    CLAPLinearProbe,
    CLAPPromptTuner,
    CLAPZeroShotClassifier,
)
from .exceptions import CheckpointError
from .health import check_model
from .loss import contrastive_loss
from .models import PRESETS, CLAPConfig, CLAPModel
from .registry import PRETRAINED, list_models
from .retrieval import build_index, read_embeddings, search
from .score import clap_score
from .version import __version__ as __version__

__all__ = [
    "__version__",
    "CLAPCompositionalClassifier",
    "CLAPEmbedder",
    "CLAPFewShotClassifier",
    "CLAPLinearProbe",
    "CLAPPromptTuner",
    "CLAPZeroShotClassifier",
    "PRESETS",
    "PRETRAINED",
    "AudioError",
    "CLAPConfig",
    "CLAPModel",
    "CheckpointError",
    "build_index",
    "check_model",
    "clap_score",
    "embed_collection",
    "read_embeddings",
    "search",
    "contrastive_loss",
    "import_laion",
    "import_msclap",
    "list_models",
    "load_model",
]
