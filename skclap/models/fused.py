"""An inference-only form of the CNN14 audio encoder: the same function, fewer passes over memory.

Batch norm in eval mode is an affine map per channel, so it folds into the convolution before it
(``W' = W * g / sqrt(v + eps)``, ``b' = beta - m * g / sqrt(v + eps)``); ``bn0``, per mel bin, becomes
a scale and shift on the log-mel. Activations and weights are kept channels-last, the layout
oneDNN's CPU convolutions run fastest in; the last block's convolutions, on a feature map of a few
dozen positions, are one matrix product each (:class:`ShiftGemmConv3x3`). Results equal the module's own eval forward to float
rounding (checked by the tests to 1e-4).

:func:`fused_audio_encoder` builds the fused copy once per model and rebuilds it when the model's
weights change (:func:`skclap.cache.weights_stamp`) or it moves to another device.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..frontend import LogMel
from .cnn14 import Cnn14
from .descriptors import Descriptors, with_descriptors
from .state import weights_stamp

__all__ = ["FusedAudioEncoder", "ShiftGemmConv3x3", "fold_batchnorm", "fused_audio_encoder"]


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with bias computing ``bn(conv(x))`` for an eval-mode batch norm."""
    assert bn.running_mean is not None and bn.running_var is not None, "batch norm without running statistics"
    scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    kernel, stride, padding = (cast(tuple[int, int], v) for v in (conv.kernel_size, conv.stride, conv.padding))
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, kernel, stride, padding, bias=True)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach() * scale[:, None, None, None])
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
        cast(torch.Tensor, fused.bias).copy_(bn.bias.detach() + (bias - bn.running_mean.detach()) * scale)
    fused = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    return fused.requires_grad_(False)


class ShiftGemmConv3x3(nn.Module):
    """A 3x3, padding-1 convolution with bias as one matrix product over the nine shifted copies of
    a channels-last input. On feature maps of a few dozen positions with thousands of channels
    (CNN14's last block) BLAS runs this well above the direct convolution's speed."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        cout, cin = conv.out_channels, conv.in_channels
        # (cout, cin, kh, kw) -> rows ordered (kh, kw, cin), as the shifted copies are concatenated
        self.register_buffer("weight", conv.weight.detach().permute(2, 3, 1, 0).reshape(9 * cin, cout).contiguous())
        self.register_buffer("bias", cast(torch.Tensor, conv.bias).detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # (b, h + 2, w + 2, c)
        cols = torch.cat([padded[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], dim=-1)
        out = torch.addmm(self.bias, cols.reshape(b * h * w, 9 * c), self.weight)
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)  # channels-last, no copy


#: Feature maps of at most this many positions per clip use :class:`ShiftGemmConv3x3`.
GEMM_MAX_POSITIONS = 64


class FusedAudioEncoder(nn.Module):
    """Waveforms -> projected audio embeddings, like ``AudioEncoder.forward`` in eval mode."""

    frontend: LogMel
    mel_scale: torch.Tensor
    mel_shift: torch.Tensor

    def __init__(self, encoder: nn.Module, window_samples: int | None = None) -> None:
        super().__init__()
        backbone = cast(Cnn14, encoder.backbone)
        self.frontend = cast(LogMel, encoder.frontend)  # shared, not copied
        self.projection = cast(nn.Module, encoder.projection)
        self.descriptors = cast(Descriptors | None, encoder.descriptors)  # shared, in the encoder's mode
        self.fc1 = backbone.fc1
        self.with_position = backbone.with_position
        bn0 = backbone.bn0
        assert bn0.running_mean is not None and bn0.running_var is not None
        scale = (bn0.weight / torch.sqrt(bn0.running_var + bn0.eps)).detach()
        self.register_buffer("mel_scale", scale.clone())
        self.register_buffer("mel_shift", (bn0.bias.detach() - bn0.running_mean.detach() * scale).clone())
        # Positions per clip of each block's feature map: frames x mels, halved after each pooling.
        frames = None if window_samples is None else 1 + window_samples // self.frontend.hop_length
        mels = bn0.num_features
        self.convs = nn.ModuleList()
        for i, block in enumerate(backbone.blocks):
            small = frames is not None and (frames >> i) * (mels >> i) <= GEMM_MAX_POSITIONS
            for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
                folded = fold_batchnorm(conv, bn)
                self.convs.append(ShiftGemmConv3x3(folded) if small else folded)
        self.training = False  # inference only; the shared modules keep their own mode

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):  # the front-end stays in float32
            mel = self.frontend(wave)  # (batch, 1, frames, mels)
        x = self.with_position(torch.addcmul(self.mel_shift, mel, self.mel_scale)).contiguous(memory_format=torch.channels_last)
        for i in range(6):
            x = F.relu_(self.convs[2 * i](x))
            x = F.relu_(self.convs[2 * i + 1](x))
            if i < 5:
                x = F.avg_pool2d(x, kernel_size=2)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        return self.projection(with_descriptors(F.relu(self.fc1(x)), self.descriptors, mel))


_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fused_audio_encoder(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``waveforms -> audio embeddings`` for inference: the fused CNN14 of a
    :class:`~skclap.CLAPModel` (built once, rebuilt when its weights change), or the model's own
    ``encode_audio`` for other models."""
    encoder = getattr(model, "audio_encoder", None)
    if encoder is None or not isinstance(getattr(encoder, "backbone", None), Cnn14):
        return cast(Callable[[torch.Tensor], torch.Tensor], model.encode_audio)
    first = next(encoder.parameters())
    stamp = (weights_stamp(encoder), first.device, first.dtype)
    memo = _FUSED.get(encoder)
    if memo is None or memo[0] != stamp:
        memo = (stamp, FusedAudioEncoder(encoder, model.config.window_samples))
        _FUSED[encoder] = memo
    fused = memo[1]
    device, dtype = model.device, model.logit_scale.dtype
    return lambda wave: fused(wave.to(device, dtype))
