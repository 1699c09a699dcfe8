"""HTS-AT audio encoder (Chen et al. 2022) on skclap's log-mel front-end.

The transformer is transformers' ``ClapAudioModel`` (a Swin-transformer HTS-AT, the one LAION's CLAP
uses); this module feeds it log-mel spectrograms from :class:`skclap.frontend.LogMel` and returns its
pooled latent (the mean of the last stage's normalised tokens), the vector msclap 2023 projects.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["HTSAT", "HTSAT_TINY", "htsat_frames"]

#: HTS-AT "tiny" as msclap 2023 and LAION's 630k checkpoints build it (``ClapAudioConfig`` fields).
HTSAT_TINY: dict[str, Any] = {
    "spec_size": 256,
    "patch_size": 4,
    "patch_stride": [4, 4],
    "window_size": 8,
    "patch_embeds_hidden_size": 96,
    "depths": [2, 2, 6, 2],
    "num_attention_heads": [4, 8, 16, 32],
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "drop_path_rate": 0.1,
    "layer_norm_eps": 1e-5,
    "enable_patch_layer_norm": True,
    "flatten_patch_embeds": True,
    "enable_fusion": False,
}


def htsat_frames(spec: dict[str, Any], n_mels: int) -> int:
    """The most log-mel frames the HTS-AT takes: ``spec_size * (spec_size // n_mels)``."""
    spec_size = int(spec.get("spec_size", 256))
    return spec_size * (spec_size // n_mels)


class HTSAT(nn.Module):
    """Log-mel ``(batch, 1, frames, n_mels)`` -> pooled HTS-AT latent ``(batch, hidden)``.

    Frames are stretched to the transformer's input size by bicubic interpolation, as the
    reference implementations do (msclap 2023's 7 s windows: 965 -> 1024 frames).
    """

    def __init__(self, spec: dict[str, Any], n_mels: int) -> None:
        super().__init__()
        from transformers import ClapAudioConfig, ClapAudioModel

        fields = dict(spec)
        depth = len(fields.get("depths", HTSAT_TINY["depths"]))
        width = int(fields.get("patch_embeds_hidden_size", 96)) * 2 ** (depth - 1)
        fields.update(num_mel_bins=n_mels, hidden_size=width)
        self.max_frames = htsat_frames(fields, n_mels)
        self.hidden_size = self.out_dim = width
        self.model = ClapAudioModel(ClapAudioConfig(**fields))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.shape[2] > self.max_frames:
            raise ValueError(
                f"HTS-AT takes at most {self.max_frames} log-mel frames; got {logmel.shape[2]} (shorten clip_seconds or raise hop_length)"
            )
        return self.model.audio_encoder(logmel).pooler_output
