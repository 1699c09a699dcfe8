"""The paper's model in PyTorch: configs as data, a registry of audio towers, projections."""

from .clap import PRESETS, CLAPModel, CLAPOutput, preset_config
from .cnn14 import Cnn14
from .config import CLAPConfig, FrontendConfig, SpaceConfig, TextConfig
from .htsat import HTSAT
from .projection import Projection
from .protocol import ClapModelProtocol, check_clap_model
from .towers import audio_towers, register_audio_tower

__all__ = [
    "HTSAT",
    "PRESETS",
    "CLAPConfig",
    "CLAPModel",
    "CLAPOutput",
    "ClapModelProtocol",
    "Cnn14",
    "FrontendConfig",
    "Projection",
    "SpaceConfig",
    "TextConfig",
    "audio_towers",
    "check_clap_model",
    "preset_config",
    "register_audio_tower",
]
