"""skclap: CLAP (Contrastive Language-Audio Pretraining) for scikit-learn.

The public names below are imported from their modules on first use (PEP 562), so that a command
or a worker process that needs one part of the package (``skclap train``, ``skclap embed``, a
torchrun rank) does not import scikit-learn, pandas and every model family first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__ as __version__

#: Each public name (``__all__``) and the module that defines it.
_MODULES = {
    "AudioError": ".exceptions",
    "import_laion": ".checkpoints",
    "import_msclap": ".checkpoints",
    "load_model": ".checkpoints",
    "embed_collection": ".embed",
    "Encoder": ".encoder",
    "clear_caches": ".encoder",
    "CLAPCompositionalClassifier": ".estimators",
    "CLAPEmbedder": ".estimators",
    "CLAPFewShotClassifier": ".estimators",
    "CLAPLinearProbe": ".estimators",
    "CLAPPromptTuner": ".estimators",
    "CLAPZeroShotClassifier": ".estimators",
    "CheckpointError": ".exceptions",
    "UnknownModelError": ".exceptions",
    "UnknownWordsWarning": ".exceptions",
    "check_model": ".health",
    "contrastive_loss": ".loss",
    "PRESETS": ".models",
    "CLAPConfig": ".models",
    "CLAPModel": ".models",
    "PRETRAINED": ".registry",
    "list_models": ".registry",
    "build_index": ".retrieval",
    "read_embeddings": ".retrieval",
    "search": ".retrieval",
    "clap_score": ".score",
    "clap_fad": ".fad",
}

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
    "Encoder",
    "UnknownModelError",
    "UnknownWordsWarning",
    "build_index",
    "check_model",
    "clap_fad",
    "clap_score",
    "clear_caches",
    "embed_collection",
    "read_embeddings",
    "search",
    "contrastive_loss",
    "import_laion",
    "import_msclap",
    "list_models",
    "load_model",
]


#: The modules docs/api.md documents names of, which are attributes of the package too
#: (``skclap.training.train(...)`` after ``import skclap``). Every other module is internal: it
#: imports (``import skclap.cli``), but is no attribute until something has imported it.
_SUBMODULES = (
    "audio",
    "backends",
    "datasets",
    "devices",
    "embed_ray",
    "evaluation",
    "fad",
    "health",
    "inference",
    "int8",
    "lance_store",
    "metrics",
    "models",
    "onnx_engine",
    "onnx_export",
    "pq_index",
    "progress",
    "prompting",
    "registry",
    "resamplers",
    "retrieval",
    "rows",
    "score",
    "score_protocols",
    "search_service",
    "serve",
    "training",
    "vocabulary",
)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'skclap' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    # the public names only: the modules imported so far are in globals() too, internal ones included
    return sorted({*(n for n in globals() if n.startswith("__")), *__all__, *_SUBMODULES})


if TYPE_CHECKING:
    from .checkpoints import import_laion, import_msclap, load_model
    from .embed import embed_collection
    from .encoder import Encoder, clear_caches
    from .estimators import (
        CLAPCompositionalClassifier,
        CLAPEmbedder,
        CLAPFewShotClassifier,
        CLAPLinearProbe,
        CLAPPromptTuner,
        CLAPZeroShotClassifier,
    )
    from .exceptions import AudioError, CheckpointError, UnknownModelError, UnknownWordsWarning
    from .fad import clap_fad
    from .health import check_model
    from .loss import contrastive_loss
    from .models import PRESETS, CLAPConfig, CLAPModel
    from .registry import PRETRAINED, list_models
    from .retrieval import build_index, read_embeddings, search
    from .score import clap_score
