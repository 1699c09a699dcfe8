"""The paper's model in PyTorch: CNN14 audio encoder, transformer text encoder, projections."""

from .clap import PRESETS, CLAPConfig, CLAPModel, CLAPOutput
from .cnn14 import Cnn14
from .projection import Projection

__all__ = ["PRESETS", "CLAPConfig", "CLAPModel", "CLAPOutput", "Cnn14", "Projection"]
