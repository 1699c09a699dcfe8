"""scikit-learn estimators over a CLAP model, one idea each.

Each is imported from its module on first use (PEP 562): ``CLAPEmbedder`` on the ONNX engine loads
no torch, which the other estimators' modules import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each estimator and the module that defines it.
_MODULES = {
    "CLAPCompositionalClassifier": ".compositional",
    "CLAPEmbedder": ".embedder",
    "CLAPFewShotClassifier": ".few_shot",
    "CLAPLinearProbe": ".linear_probe",
    "CLAPPromptTuner": ".prompt_tuner",
    "CLAPZeroShotClassifier": ".zero_shot",
}

__all__ = [
    "CLAPCompositionalClassifier",
    "CLAPEmbedder",
    "CLAPFewShotClassifier",
    "CLAPLinearProbe",
    "CLAPPromptTuner",
    "CLAPZeroShotClassifier",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .compositional import CLAPCompositionalClassifier
    from .embedder import CLAPEmbedder
    from .few_shot import CLAPFewShotClassifier
    from .linear_probe import CLAPLinearProbe
    from .prompt_tuner import CLAPPromptTuner
    from .zero_shot import CLAPZeroShotClassifier
