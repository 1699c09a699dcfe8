"""Projection head into the shared audio-text space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Projection"]


class Projection(nn.Module):
    """``LayerNorm(h + dropout(W2 gelu(h)))`` with ``h = W1 x``; no biases (the released model's head)."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        return self.layer_norm(h + self.drop(self.linear2(F.gelu(h))))
