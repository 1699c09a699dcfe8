"""Evaluation metrics: retrieval recall at k, and mean average precision over classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mean_average_precision", "retrieval_metrics"]


def mean_average_precision(Y: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Macro average precision over the classes (columns of the indicator matrix ``Y``) that have at
    least one positive; the multi-label metric of FSD50K and the paper."""
    from sklearn.metrics import average_precision_score

    Y = np.asarray(Y)
    has_pos = Y.sum(axis=0) > 0
    if not has_pos.any():
        raise ValueError("mean average precision needs at least one positive label in y")
    return float(average_precision_score(Y[:, has_pos], np.asarray(scores)[:, has_pos], average="macro", sample_weight=sample_weight))


def retrieval_metrics(
    audio_emb: np.ndarray, text_emb: np.ndarray, text_to_audio: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k in both directions for normalised embeddings.

    ``text_to_audio[j]`` is the clip that caption j describes (a clip may have several captions).
    text->audio: a hit when the caption's clip ranks in the top k. audio->text: a hit when any of
    the clip's captions ranks in the top k. Also the mean rank (1-based) of the first hit.
    """
    t2a = np.asarray(text_to_audio)
    sim = text_emb @ audio_emb.T  # (n_text, n_audio)
    # text -> audio: rank of the true clip.
    true = sim[np.arange(len(t2a)), t2a]
    t_rank = (sim > true[:, None]).sum(axis=1)
    # audio -> text: best rank among the clip's captions.
    sim_a = sim.T  # (n_audio, n_text)
    owner = np.zeros_like(sim_a, dtype=bool)
    owner[t2a, np.arange(len(t2a))] = True
    best_true = np.where(owner, sim_a, -np.inf).max(axis=1)
    a_rank = (sim_a > best_true[:, None]).sum(axis=1)
    has_caption = owner.any(axis=1)
    a_rank = a_rank[has_caption]
    out: dict[str, float] = {}
    for k in ks:
        out[f"t2a_R@{k}"] = float((t_rank < k).mean())
        out[f"a2t_R@{k}"] = float((a_rank < k).mean())
    out["t2a_mean_rank"] = float(t_rank.mean() + 1)
    out["a2t_mean_rank"] = float(a_rank.mean() + 1)
    return out
