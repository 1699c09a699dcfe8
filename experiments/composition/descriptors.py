"""Level and pitch-register descriptors of a log-mel spectrogram, beside the audio tower.

A CNN's features mix what a sound is with how loud and how high it is, so a word learnt for
loudness on some instruments need not carry to another. :class:`Descriptors` measures four
numbers straight from the log-mel (no learnt weights before a batch norm): the loudest frame's
level, the mean level of the frames within 20 dB of it, the position of the lowest mel bin within
30 dB of each frame's strongest bin (a fundamental's register), and the power-weighted mean
position (the spectral centroid), the last two averaged over those loud frames. Concatenated to
the tower's output before the projection, each is one direction of the shared space for every
instrument.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Descriptors", "with_descriptors"]

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


def with_descriptors(features: torch.Tensor, descriptors: Descriptors | None, mel: torch.Tensor) -> torch.Tensor:
    """The tower's ``features`` of ``mel`` with its descriptors appended (unchanged without them)."""
    if descriptors is None:
        return features
    return torch.cat([features, descriptors(mel).to(features.dtype)], dim=1)
