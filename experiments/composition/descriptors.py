"""Level and pitch-register descriptors of a log-mel spectrogram, beside a CNN14: the audio tower
``cnn14-descriptors``, registered with skclap when this module is imported.

A CNN's features mix what a sound is with how loud and how high it is, so a word learnt for
loudness on some instruments need not carry to another. :class:`Descriptors` measures four
numbers straight from the log-mel (no learnt weights before a batch norm): the loudest frame's
level, the mean level of the frames within 20 dB of it, the position of the lowest mel bin within
30 dB of each frame's strongest bin (a fundamental's register), and the power-weighted mean
position (the spectral centroid), the last two averaged over those loud frames. Concatenated to
the CNN's output before the projection, each is one direction of the shared space for every
instrument.

These four numbers measure exactly the attributes the composition protocol holds out (level and
register), which is why they live with the experiment and not in skclap.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skclap.models import Cnn14, register_audio_tower
from skclap.models.config import FrontendConfig
from skclap.models.towers import cnn14_arguments

__all__ = ["TOWER", "Descriptors", "DescriptorsCnn14"]

#: The tower's name in a config's audio section.
TOWER = "cnn14-descriptors"

_DB = 10.0 / math.log(10.0)  # natural log -> dB


class Descriptors(nn.Module):
    """Log-mel ``(batch, 1, frames, n_mels)`` in dB -> ``(batch, 4)``, batch-normalised."""

    size = 4
    positions: torch.Tensor

    def __init__(self, n_mels: int, loud_db: float = 20.0, partial_db: float = 30.0) -> None:
        super().__init__()
        self.loud_db, self.partial_db = loud_db, partial_db
        self.register_buffer("positions", torch.linspace(-1.0, 1.0, n_mels), persistent=False)
        self.norm = nn.BatchNorm1d(self.size)

    def measure(self, logmel: torch.Tensor) -> torch.Tensor:
        """The four raw descriptors (before the batch norm)."""
        x = logmel.squeeze(1).float()  # (batch, frames, mels)
        frame_db = _DB * torch.logsumexp(x / _DB, dim=-1)  # each frame's power in dB
        peak = frame_db.amax(dim=1)
        loud = (frame_db >= peak[:, None] - self.loud_db).float()  # the frames that carry the note
        frames = loud.sum(dim=1)
        level = (frame_db * loud).sum(dim=1) / frames
        strong = x >= x.amax(dim=-1, keepdim=True) - self.partial_db
        lowest = self.positions[strong.float().argmax(dim=-1)]  # first bin within partial_db of the frame's strongest
        centroid = (torch.softmax(x / _DB, dim=-1) * self.positions).sum(dim=-1)
        register = (lowest * loud).sum(dim=1) / frames
        brightness = (centroid * loud).sum(dim=1) / frames
        return torch.stack([peak, level, register, brightness], dim=1)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d = self.measure(logmel)
        return self.norm(d.to(self.norm.weight.dtype))


class _WithDescriptors(nn.Module):
    """A tower's inference form with the descriptors appended."""

    def __init__(self, features: nn.Module, descriptors: Descriptors) -> None:
        super().__init__()
        self.features, self.descriptors = features, descriptors

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.features(mel)
        return torch.cat([x, self.descriptors(mel).to(x.dtype)], dim=1)


class DescriptorsCnn14(Cnn14):
    """CNN14 features with the four descriptors appended: ``(batch, dim + 4)``."""

    def __init__(self, n_mels: int, **options: object) -> None:
        super().__init__(n_mels, **options)  # type: ignore[arg-type]
        self.descriptors = Descriptors(n_mels)
        self.out_dim += Descriptors.size

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = super().forward(logmel)
        return torch.cat([x, self.descriptors(logmel).to(x.dtype)], dim=1)

    def inference_form(self, frames: int | None = None) -> nn.Module:
        return _WithDescriptors(super().inference_form(frames), self.descriptors)


def _build(options: dict, frontend: FrontendConfig) -> nn.Module:
    return DescriptorsCnn14(frontend.n_mels, **cnn14_arguments(TOWER, options))


register_audio_tower(TOWER, _build)
