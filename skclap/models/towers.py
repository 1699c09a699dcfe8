"""Audio towers by name: what turns a clip's log-mel spectrogram into one vector.

A config's ``audio`` section names a tower and carries its options (``{"name": "cnn14", "channels":
[...], "freq_position": true}``). Each name is registered with a build function::

    build(options: dict, frontend: FrontendConfig) -> nn.Module

whose module maps log-mels ``(batch, 1, frames, n_mels)`` to ``(batch, out_dim)`` and has an
``out_dim`` attribute (the projection's input width). A module may also offer
``inference_form(frames)``: a module computing the same function in eval mode, faster (CNN14's
batch norms folded into its convolutions, :mod:`skclap.models.fused`), which inference uses.

A tower from outside the package registers itself before a model that names it is built or loaded::

    from skclap.models import register_audio_tower
    register_audio_tower("my-tower", lambda options, frontend: MyTower(frontend.n_mels, **options))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from .cnn14 import Cnn14
from .config import FrontendConfig
from .htsat import HTSAT, HTSAT_TINY, htsat_frames

__all__ = ["AudioTowerBuilder", "audio_towers", "build_audio_tower", "check_options", "cnn14_arguments", "register_audio_tower"]

AudioTowerBuilder = Callable[[dict[str, Any], FrontendConfig], nn.Module]

_TOWERS: dict[str, AudioTowerBuilder] = {}


def register_audio_tower(name: str, build: AudioTowerBuilder, *, replace: bool = False) -> None:
    """Make ``{"name": name, ...}`` in a config's ``audio`` section build with ``build``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tower's name is a non-empty string; got {name!r}")
    if name in _TOWERS and not replace and _TOWERS[name] is not build:
        raise ValueError(f"an audio tower named {name!r} is already registered; pass replace=True to replace it")
    _TOWERS[name] = build


def audio_towers() -> list[str]:
    """The registered tower names."""
    return sorted(_TOWERS)


def build_audio_tower(spec: Mapping[str, Any], frontend: FrontendConfig) -> nn.Module:
    """The tower a config's ``audio`` section describes, with its ``out_dim``."""
    options = dict(spec)
    name = options.pop("name", None)
    if name not in _TOWERS:
        raise ValueError(
            f"no audio tower named {name!r} is registered (registered: {', '.join(audio_towers())}); a tower from "
            "outside skclap is registered with skclap.models.register_audio_tower(name, build) before the model is built"
        )
    tower = _TOWERS[name](options, frontend)
    if not isinstance(getattr(tower, "out_dim", None), int):
        raise TypeError(f"the audio tower {name!r} built a {type(tower).__name__} without an integer out_dim")
    return tower


def check_options(tower: str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise a ValueError naming any option ``tower`` does not take."""
    allowed = set(allowed)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"the {tower} audio tower has no option {', '.join(map(repr, unknown))}; it takes {sorted(allowed)}")


def cnn14_arguments(tower: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~skclap.models.cnn14.Cnn14`'s keyword arguments from a config's CNN14 options
    (``channels``, ``dim``, ``classes``, ``freq_position``), checked; for towers built on CNN14."""
    check_options(tower, options, ("channels", "dim", "classes", "freq_position"))
    return {
        "channels": options.get("channels", (64, 128, 256, 512, 1024, 2048)),
        "out_dim": int(options.get("dim", 2048)),
        "n_classes": int(options.get("classes", 0)),
        "freq_position": bool(options.get("freq_position", False)),
    }


def _cnn14(options: dict[str, Any], frontend: FrontendConfig) -> nn.Module:
    return Cnn14(frontend.n_mels, **cnn14_arguments("cnn14", options))


def _htsat(options: dict[str, Any], frontend: FrontendConfig) -> nn.Module:
    check_options("htsat", options, HTSAT_TINY)
    most = htsat_frames(options, frontend.n_mels)
    if frontend.frames > most:
        raise ValueError(
            f"a {frontend.clip_seconds:g} s window is {frontend.frames} frames at hop {frontend.hop_length}; the HTS-AT takes at most {most}"
        )
    return HTSAT(options, frontend.n_mels)


register_audio_tower("cnn14", _cnn14)
register_audio_tower("htsat", _htsat)
