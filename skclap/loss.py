"""Symmetric contrastive (InfoNCE) loss of CLAP."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["contrastive_loss", "contrastive_logits", "similarity_logits", "symmetric_cross_entropy"]


def similarity_logits(audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``logit_scale * cos(audio_i, text_j)``, shape ``(n_audio, n_text)``; embeddings may be raw."""
    return logit_scale * F.normalize(audio_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T


def contrastive_logits(audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``logit_scale * E_t E_a^T``: row i scores text i against every audio clip of the batch.

    Embeddings are L2-normalised here, so callers may pass raw projections.
    """
    if audio_embeds.shape != text_embeds.shape:
        raise ValueError(f"audio and text embeddings must pair up; got {tuple(audio_embeds.shape)} and {tuple(text_embeds.shape)}")
    return similarity_logits(text_embeds, audio_embeds, logit_scale)  # (text, audio): rows are texts


def contrastive_loss(audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of the text->audio (rows) and audio->text (columns) cross-entropies; pair i is the target."""
    return symmetric_cross_entropy(contrastive_logits(audio_embeds, text_embeds, logit_scale))


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean of the row and column cross-entropies of a square logit matrix whose diagonal holds the pairs."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
