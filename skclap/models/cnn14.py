"""CNN14 audio encoder (Kong et al., PANNs), as used by the released CLAP model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Cnn14", "ConvBlock"]


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by batch norm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        if pool != (1, 1):
            x = F.avg_pool2d(x, kernel_size=pool)
        return x


class Cnn14(nn.Module):
    """Log-mel ``(batch, 1, frames, n_mels)`` -> clip embedding ``(batch, out_dim)``.

    ``bn0`` normalises each mel bin; six conv blocks (2x2 average pooling after the first five);
    mean over frequency, then max + mean over time; ``fc1`` with ReLU. ``n_classes > 0`` keeps the
    AudioSet tagging head of the released weights (``fc_audioset``), unused by the embeddings.

    Convolutions and the mean over frequency make CNN14 nearly invariant to transposition, so it
    hardly tells a high note from a low one. ``freq_position=True`` (not in the released model) adds
    a second input channel holding each mel bin's position (-1 at the lowest, 1 at the highest), as
    in CoordConv (Liu et al., 2018), so that the first convolution can respond to absolute pitch.
    """

    freq_ramp: torch.Tensor

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (64, 128, 256, 512, 1024, 2048),
        out_dim: int = 2048,
        n_classes: int = 0,
        freq_position: bool = False,
    ) -> None:
        super().__init__()
        self.out_dim = int(out_dim)
        self.freq_position = freq_position
        self.register_buffer("freq_ramp", torch.linspace(-1.0, 1.0, n_mels).view(1, 1, 1, n_mels), persistent=False)
        if len(channels) != 6:
            raise ValueError(f"CNN14 has six conv blocks; got channels={tuple(channels)}")
        self.bn0 = nn.BatchNorm2d(n_mels)
        ins = (2 if freq_position else 1, *channels[:-1])
        for i, (cin, cout) in enumerate(zip(ins, channels), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout))
        self.fc1 = nn.Linear(channels[-1], out_dim, bias=True)
        self.fc_audioset = nn.Linear(out_dim, n_classes, bias=True) if n_classes else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PANNs' initialisation: Xavier-uniform weights, zero biases, identity batch norms."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i}") for i in range(1, 7)]

    def with_position(self, x: torch.Tensor) -> torch.Tensor:
        """Append the mel-position channel when ``freq_position`` is on."""
        if not self.freq_position:
            return x
        ramp = self.freq_ramp.to(x.dtype).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        return torch.cat([x, ramp], dim=1)

    def inference_form(self, frames: int | None = None) -> nn.Module:
        """This CNN in eval mode with its batch norms folded (:class:`skclap.models.fused.FusedCnn14`)."""
        from .fused import FusedCnn14

        return FusedCnn14(self, frames)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.with_position(self.bn0(logmel.transpose(1, 3)).transpose(1, 3))
        for i, block in enumerate(self.blocks):
            x = block(x, pool=(2, 2) if i < 5 else (1, 1))
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)  # over mel bins
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        return F.dropout(x, p=0.5, training=self.training)
