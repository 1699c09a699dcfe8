"""An inference-only form of the CNN14 audio tower: the same function, fewer passes over memory.

Batch norm in eval mode is an affine map per channel, so it folds into the convolution before it
(``W' = W * g / sqrt(v + eps)``, ``b' = beta - m * g / sqrt(v + eps)``); ``bn0``, per mel bin, becomes
a scale and shift on the log-mel. Activations and weights are kept channels-last, the layout
oneDNN's CPU convolutions run fastest in; the last block's convolutions, on a feature map of a few
dozen positions, are one matrix product each (:class:`ShiftGemmConv3x3`). Results equal the module's own eval forward to float
rounding (checked by the tests to 1e-4).

:meth:`Cnn14.inference_form <skclap.models.cnn14.Cnn14.inference_form>` builds the fused copy;
:func:`fused_audio_encoder` runs a model's front-end, that copy and the model's projection, building
the copy once per model and again when its weights change (:func:`skclap.cache.weights_stamp`) or it
moves to another device.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .state import weights_stamp

__all__ = ["FusedCnn14", "ShiftGemmConv3x3", "fold_batchnorm", "fused_audio_encoder"]


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


class FusedCnn14(nn.Module):
    """Log-mel -> CNN14 features, like :class:`~skclap.models.cnn14.Cnn14`'s eval forward, with its
    batch norms folded and its last block's convolutions as matrix products."""

    mel_scale: torch.Tensor
    mel_shift: torch.Tensor

    def __init__(self, cnn: Any, frames: int | None = None) -> None:
        super().__init__()
        self.fc1 = cnn.fc1
        self.with_position = cnn.with_position
        bn0 = cnn.bn0
        assert bn0.running_mean is not None and bn0.running_var is not None
        scale = (bn0.weight / torch.sqrt(bn0.running_var + bn0.eps)).detach()
        self.register_buffer("mel_scale", scale.clone())
        self.register_buffer("mel_shift", (bn0.bias.detach() - bn0.running_mean.detach() * scale).clone())
        # Positions per clip of each block's feature map: frames x mels, halved after each pooling.
        mels = bn0.num_features
        self.convs = nn.ModuleList()
        for i, block in enumerate(cnn.blocks):
            small = frames is not None and (frames >> i) * (mels >> i) <= GEMM_MAX_POSITIONS
            for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
                folded = fold_batchnorm(conv, bn)
                self.convs.append(ShiftGemmConv3x3(folded) if small else folded)
        self.training = False  # inference only

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.stack_input(mel)))

    def stack_input(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, frames, mels)`` -> the convolutions' input, channels-last."""
        return self.with_position(torch.addcmul(self.mel_shift, mel, self.mel_scale)).contiguous(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor, relu: Callable[[torch.Tensor], torch.Tensor] = F.relu_) -> torch.Tensor:
        """The six blocks: convolutions, ReLUs, poolings. :mod:`skclap.int8` quantises them with
        ``relu=F.relu``, which its quantiser fuses into the convolution before it."""
        for i in range(6):
            x = relu(self.convs[2 * i](x))
            x = relu(self.convs[2 * i + 1](x))
            if i < 5:
                x = F.avg_pool2d(x, kernel_size=2)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's map -> the tower's output: mean over mel bins, max + mean over time, ``fc1``."""
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        return F.relu(self.fc1(x))


_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fused_audio_encoder(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``waveforms -> audio embeddings`` for inference: the model's front-end, its audio
    tower's ``inference_form`` (built once, rebuilt when the tower's weights change or move) and its
    projection; the model's own ``encode_audio`` when its tower has no inference form."""
    encoder = getattr(model, "audio_encoder", None)
    backbone = getattr(encoder, "backbone", None)
    if encoder is None or backbone is None or not callable(getattr(backbone, "inference_form", None)):
        return cast(Callable[[torch.Tensor], torch.Tensor], model.encode_audio)
    first = next(encoder.parameters())
    stamp = (weights_stamp(encoder), first.device, first.dtype)
    memo = _FUSED.get(encoder)
    if memo is None or memo[0] != stamp:
        memo = (stamp, backbone.inference_form(model.config.frontend.frames))
        _FUSED[encoder] = memo
    fused, frontend, projection = memo[1], encoder.frontend, encoder.projection
    device, dtype = model.device, model.logit_scale.dtype

    def encode(wave: torch.Tensor) -> torch.Tensor:
        wave = wave.to(device, dtype)
        with torch.autocast(wave.device.type, enabled=False):  # the front-end stays in float32
            mel = frontend(wave)
        return projection(fused(mel))

    return encode
