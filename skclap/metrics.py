"""Evaluation metrics: cross-modal retrieval (recall at k, mAP@10, median and mean rank) under each
published protocol, mean average precision over classes, and the Fréchet distance between two sets
of embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "RETRIEVAL_PROTOCOLS",
    "GaussianStatistics",
    "RetrievalProtocol",
    "frechet_distance",
    "gaussian_statistics",
    "mean_average_precision",
    "retrieval_metrics",
]


def mean_average_precision(Y: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Macro average precision over the classes (columns of the indicator matrix ``Y``) that have at
    least one positive; the multi-label metric of FSD50K and the paper."""
    from sklearn.metrics import average_precision_score

    Y = np.asarray(Y)
    has_pos = Y.sum(axis=0) > 0
    if not has_pos.any():
        raise ValueError("mean average precision needs at least one positive label in y")
    return float(average_precision_score(Y[:, has_pos], np.asarray(scores)[:, has_pos], average="macro", sample_weight=sample_weight))


@dataclass(frozen=True)
class RetrievalProtocol:
    """A published retrieval protocol, as the two choices that tell them apart; everything else
    (text->audio, ranks, ties, the mAP cut-off of 10) is common to all of them.

    ``a2t_recall``: ``"any"``, a clip is a hit at k when any of its captions ranks in the top k;
    ``"fraction"``, it scores the fraction of its captions in the top k. ``a2t_map_order``: the
    audio->text mAP@10 sums the precision at each of the clip's captions in the top 10 taken in
    ``"rank"`` order (average precision), or in ``"caption"`` order (laion_clap's code).
    """

    name: str
    a2t_recall: str
    a2t_map_order: str
    source: str


#: The protocols by name; docs/evaluation.md shows the same table.
RETRIEVAL_PROTOCOLS: dict[str, RetrievalProtocol] = {
    p.name: p
    for p in (
        RetrievalProtocol("standard", "any", "rank", "XinhaoMei/audio-text_retrieval tools/utils.py: a2t, t2a"),
        RetrievalProtocol("laion", "any", "caption", "laion_clap 1.1.7 training/train.py: evaluate_clotho_audiocaps, get_metrics"),
        RetrievalProtocol("dcase", "fraction", "rank", "xieh97/dcase2023-audio-retrieval postprocessing/xmodal_retrieval.py: measure"),
    )
}

_MAP_CUTOFF = 10


def retrieval_metrics(
    audio_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_audio: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    protocol: str = "standard",
) -> dict[str, float]:
    """Text->audio and audio->text retrieval measures of normalised embeddings, as a published
    protocol computes them.

    Parameters
    ----------
    audio_emb : array of shape (n_clips, dim)
        L2-normalised clip embeddings (scores are dot products).
    text_emb : array of shape (n_captions, dim)
        L2-normalised caption embeddings.
    text_to_audio : sequence of int, length n_captions
        ``text_to_audio[j]`` is the clip that caption j describes (AudioCaps and Clotho: five a clip).
    ks : sequence of int
        The cut-offs of recall.
    protocol : {"standard", "laion", "dcase"}
        Which reference's figures to compute (:data:`RETRIEVAL_PROTOCOLS`):

        - ``"standard"`` (XinhaoMei/audio-text_retrieval ``tools/utils.py``): text->audio, each caption
          ranks its clip among all clips; audio->text, a clip's rank is the best of its captions' ranks,
          and its mAP@10 is the average precision over its captions in the top 10, taken in rank order,
          divided by its number of captions.
        - ``"laion"`` (laion_clap's ``evaluate_clotho_audiocaps``): the same, except that the
          audio->text mAP@10 sums the clip's captions in the top 10 in *caption* order: the i-th of
          them as listed scores i / its rank. Its docstring says it sorts; its code does not. A later
          caption above an earlier one raises the figure (listed first at rank 2, second at rank 1:
          (1/2 + 2/1) / 5, not (1/1 + 2/2) / 5), past 1 for a clip whose five captions fill its top 5
          in random order (3 H_5 / 5 on average). With one caption a clip it is ``get_metrics``.
        - ``"dcase"`` (DCASE 2023 task 6b baseline, ``measure()``): audio->text R@k is the fraction of
          the clip's captions in the top k, so with five captions R@1 is at most 0.2; the rest is
          ``"standard"``.

    Returns
    -------
    dict
        ``t2a_R@k`` and ``a2t_R@k`` for each k, ``t2a_mAP@10``, ``a2t_mAP@10``, ``t2a_median_rank``,
        ``a2t_median_rank``, ``t2a_mean_rank``, ``a2t_mean_rank``. Ranks are 1-based; an audio->text
        rank is the clip's best caption's; a median is ``floor(median of 0-based ranks) + 1``, as the
        references compute it (DCASE's ``measure()`` reports no rank: these are the standard ones).

    Notes
    -----
    Ties are ranked pessimistically: an item of another pair that scores exactly as high as the true
    one ranks before it, so that duplicate clips or captions never help a figure. The references sort
    with unstable sorts (``torch.argsort``, ``np.argsort``), whose order among equal scores is not
    defined; without ties every protocol equals its reference exactly. A clip's own captions that tie
    with each other keep caption order, as a stable sort would (only laion_clap's caption-order mAP
    depends on their order).

    A clip with no caption is still a candidate in text->audio retrieval, and is no query of
    audio->text retrieval (the means run over clips with at least one caption). The references have
    five captions a clip; here a clip's mAP@10 and DCASE recall divide by its own number of captions.
    """
    if protocol not in RETRIEVAL_PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(RETRIEVAL_PROTOCOLS)}, got {protocol!r}")
    spec = RETRIEVAL_PROTOCOLS[protocol]
    sim, owner = _scores(audio_emb, text_emb, text_to_audio)
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"each k of ks must be at least 1, got {ks}")
    t_rank = _text_to_audio_ranks(sim, owner)
    pos, within = _caption_positions(sim, owner)
    a = _audio_to_text(pos, within, owner, spec, ks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"t2a_R@{k}"] = float((t_rank < k).mean())
        out[f"a2t_R@{k}"] = a[f"R@{k}"]
    out[f"t2a_mAP@{_MAP_CUTOFF}"] = float(np.where(t_rank < _MAP_CUTOFF, 1.0 / (t_rank + 1), 0.0).mean())
    out[f"a2t_mAP@{_MAP_CUTOFF}"] = a["mAP"]
    out["t2a_median_rank"] = _median_rank(t_rank)
    out["a2t_median_rank"] = _median_rank(a["best"])
    out["t2a_mean_rank"] = float(t_rank.mean() + 1)
    out["a2t_mean_rank"] = float(a["best"].mean() + 1)
    return out


def _scores(audio_emb: np.ndarray, text_emb: np.ndarray, text_to_audio: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The (n_captions, n_clips) score matrix and each caption's clip, checked."""
    audio, text = np.asarray(audio_emb), np.asarray(text_emb)
    if audio.ndim != 2 or text.ndim != 2 or audio.shape[1] != text.shape[1]:
        raise ValueError(f"audio_emb and text_emb must be 2-D with the same width, got {audio.shape} and {text.shape}")
    owner = np.asarray(text_to_audio, dtype=np.int64).reshape(-1)
    if len(owner) != len(text) or len(owner) == 0:
        raise ValueError(f"text_to_audio must name a clip for each of the {len(text)} captions (at least one), got {len(owner)}")
    if owner.min() < 0 or owner.max() >= len(audio):
        raise ValueError(f"text_to_audio holds clip indices outside 0..{len(audio) - 1}")
    if not np.issubdtype(np.result_type(audio, text), np.floating):
        audio, text = audio.astype(np.float64), text.astype(np.float64)
    sim = text @ audio.T
    if not np.isfinite(sim).all():
        raise ValueError("the embeddings give non-finite scores (NaN or inf)")
    return sim, owner


def _text_to_audio_ranks(sim: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """0-based rank of each caption's clip among all clips; other clips that tie with it count before it."""
    true = sim[np.arange(len(owner)), owner]
    return (sim >= true[:, None]).sum(axis=1) - 1


def _caption_positions(sim: np.ndarray, owner: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Where each caption lands (0-based) when its own clip ranks all captions, and its place among
    that clip's captions (0 for the clip's best).

    A caption's position is the number of other clips' captions scoring at least as high (ties count
    against it) plus the clip's own captions ahead of it: higher scores, or equal scores earlier in
    caption order. Captions go in blocks so that memory stays at ``n_captions * block`` scores.
    """
    n = len(owner)
    by_clip = np.ascontiguousarray(sim.T)  # each clip's scores of every caption, as a row
    own = sim[np.arange(n), owner]
    others_ahead = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        part = slice(start, start + block)
        rows = by_clip[owner[part]]  # (block, n_captions): the clip of each caption in the block
        other = owner[None, :] != owner[part, None]
        others_ahead[part] = ((rows >= own[part, None]) & other).sum(axis=1)
    order = np.lexsort((np.arange(n), -own, owner))  # by clip, then best caption first, then caption order
    within = np.empty(n, dtype=np.int64)
    sorted_owner = owner[order]
    within[order] = np.arange(n) - np.searchsorted(sorted_owner, sorted_owner, side="left")
    return others_ahead + within, within


def _audio_to_text(pos: np.ndarray, within: np.ndarray, owner: np.ndarray, spec: RetrievalProtocol, ks: list[int]) -> dict:
    """Per-clip audio->text measures, averaged over the clips that have captions."""
    n_clips = int(owner.max()) + 1
    n_caps = np.bincount(owner, minlength=n_clips)
    queried = n_caps > 0
    best = np.full(n_clips, np.iinfo(np.int64).max)
    np.minimum.at(best, owner, pos)
    out: dict = {"best": best[queried]}
    for k in ks:
        if spec.a2t_recall == "any":
            out[f"R@{k}"] = float((best[queried] < k).mean())
        else:  # the fraction of the clip's captions in the top k
            hits = np.bincount(owner, weights=(pos < k).astype(np.float64), minlength=n_clips)
            out[f"R@{k}"] = float((hits[queried] / n_caps[queried]).mean())
    top = pos < _MAP_CUTOFF
    if spec.a2t_map_order == "rank":
        # a caption's place among the clip's captions in rank order is its count of relevant items so far
        nth = within + 1
    else:  # its place among the clip's captions in the top 10, in caption order
        order = np.argsort(owner, kind="stable")
        running = np.cumsum(top[order])
        starts = np.searchsorted(owner[order], owner[order], side="left")
        nth = np.empty(len(owner), dtype=np.int64)
        nth[order] = running - np.concatenate(([0], running))[starts]
    precision = np.where(top, nth / (pos + 1), 0.0)
    ap = np.bincount(owner, weights=precision, minlength=n_clips)
    out["mAP"] = float((ap[queried] / n_caps[queried]).mean())
    return out


def _median_rank(rank: np.ndarray) -> float:
    """1-based median rank, ``floor(median) + 1`` of the 0-based ranks, as the references write it."""
    return float(np.floor(np.median(rank)) + 1)


class GaussianStatistics(NamedTuple):
    """The mean and covariance (``ddof=1``) of a set of embeddings, and how many rows they came from."""

    mu: np.ndarray  # (dim,)
    cov: np.ndarray  # (dim, dim)
    n: int


def gaussian_statistics(embeddings: np.ndarray) -> GaussianStatistics:
    """Mean and unbiased covariance of ``embeddings`` (rows), in float64 whatever the input's dtype."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a (n, dim) matrix; got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 embeddings; got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    x = x.astype(np.float64)
    return GaussianStatistics(x.mean(axis=0), np.cov(x, rowvar=False), int(x.shape[0]))


_Set = np.ndarray | GaussianStatistics | tuple


def _statistics(x: _Set, name: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(x, GaussianStatistics) or (isinstance(x, tuple) and len(x) in (2, 3)):
        mu, cov = np.atleast_1d(np.asarray(x[0], np.float64)), np.atleast_2d(np.asarray(x[1], np.float64))
        if cov.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{name}: a mean of shape {mu.shape} needs a square covariance of that size; got {cov.shape}")
        return mu, cov
    stats = gaussian_statistics(np.asarray(x))
    return stats.mu, stats.cov


def frechet_distance(a: _Set, b: _Set, method: str = "eig") -> float:
    """Fréchet distance between the Gaussians fitted to two sets of embeddings:
    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``.

    ``a`` and ``b`` are each an embedding matrix ``(n, dim)`` (its mean and ``ddof=1`` covariance are
    taken) or statistics (:class:`GaussianStatistics`, or a ``(mu, cov)`` pair).

    ``method``: how the trace of the square root is taken. ``"eig"`` (fadtk): the sum of the square
    roots of the eigenvalues of ``S_a S_b``. ``"sqrtm"`` (frechet-audio-distance, the FID code it
    follows): the trace of ``scipy.linalg.sqrtm`` of the product taken as complex, and where that is
    not finite, of the product of the covariances with ``1e-6`` added to their diagonals. The
    eigenvalues are real and non-negative in exact arithmetic; rounding leaves tiny negative or
    complex ones on rank-deficient covariances (fewer embeddings than dimensions), whose roots are
    imaginary and add nothing to the real trace, in both methods.
    """
    from scipy import linalg

    mu_a, cov_a = _statistics(a, "a")
    mu_b, cov_b = _statistics(b, "b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"the two sets have different dimensions: {mu_a.shape[0]} and {mu_b.shape[0]}")
    diff = mu_a - mu_b
    if method == "eig":
        eig = linalg.eigvals(cov_a @ cov_b)
        tr_sqrt = float(np.sqrt(eig.astype(np.complex128)).real.sum())
    elif method == "sqrtm":
        root = linalg.sqrtm((cov_a @ cov_b).astype(np.complex128))
        if not np.isfinite(root).all():
            eye = np.eye(cov_a.shape[0]) * 1e-6
            root = linalg.sqrtm(((cov_a + eye) @ (cov_b + eye)).astype(np.complex128))
        tr_sqrt = float(np.trace(root).real)
    else:
        raise ValueError(f"method must be 'eig' or 'sqrtm'; got {method!r}")
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)
