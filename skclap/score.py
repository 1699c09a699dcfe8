"""CLAP score: the cosine similarity of each generated clip with its prompt, and their aggregate.

Text-to-audio papers report it to say how well audio matches its text; each paper computes it with
one of a few tools, and their numbers differ (:mod:`skclap.score_protocols`). ``protocol=None`` is
skclap's own: each clip's deterministic windows pooled into one embedding, the text embedded as
written (no template), both L2-normalised, the cosine per pair, the mean over pairs. A protocol's
name gives that tool's number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["DEFAULT_SCORE_MODEL", "ClapScore", "clap_score"]

#: The LAION checkpoint most text-to-audio papers compute CLAP scores with.
DEFAULT_SCORE_MODEL = "laion-630k-audioset-best"


class ClapScore(NamedTuple):
    scores: np.ndarray  # (n_pairs,) each pair's figure: its cosine (x 100, floored at 0, for consistencytta)
    mean: float  # the score: the aggregate of ``scores`` as the protocol computes it
    model: str
    protocol: str = "skclap"
    std: float | None = None  # the population standard deviation, where the protocol reports one


def _model_name(model: Any, clap: Any) -> str:
    return str(os.fspath(model) if isinstance(model, (str, os.PathLike)) else (getattr(clap, "source", None) or type(clap).__name__))


def clap_score(
    audio: Sequence[Any],
    texts: Sequence[str],
    model: Any = None,
    *,
    protocol: str | None = None,
    exact: bool = False,
    seed: int = 0,
    sample_rate: int | None = None,
    batch_size: int = 32,
    precision: str | None = None,
    device: Any = "auto",
    progress: bool = False,
) -> ClapScore:
    """Per-pair cosine between ``audio[i]`` (a path, a waveform with ``sample_rate``, an
    ``(array, rate)`` pair) and ``texts[i]``, and their aggregate.

    - ``protocol``: None, skclap's own (``model`` defaults to :data:`DEFAULT_SCORE_MODEL`); or a name
      of :data:`skclap.score_protocols.PROTOCOLS` that computes a CLAP score: that tool's steps and
      aggregate, on its checkpoint unless ``model`` names another of the same rate and window.
    - ``exact``: on clips longer than the tool's window, draw the crop (or a fused model's chunks) as
      the tool does, from ``numpy.random.RandomState(seed)`` (the tool's own process after
      ``np.random.seed(seed)``); the default is a fixed choice. Deterministic either way.
    - ``precision``: None is float32 under a protocol (every tool's), on a GPU too.
    """
    from .inputs import as_items, as_texts

    items, prompts = as_items(audio, "audio"), as_texts(texts, "texts")
    if len(items) != len(prompts):
        raise ValueError(f"{len(items)} audio items but {len(prompts)} texts: CLAP scores need one text per clip")
    if protocol is None:
        if exact:
            raise ValueError("exact draws as a tool draws: it needs a protocol (skclap's own recipe draws nothing)")
        return _skclap_score(
            items, prompts, DEFAULT_SCORE_MODEL if model is None else model, sample_rate, batch_size, precision, device, progress
        )
    from .encoder import Encoder
    from .score_protocols import get_protocol, protocol_frames

    proto = get_protocol(protocol, need="scores")
    frames, clap = protocol_frames(
        proto,
        items,
        model,
        sample_rate=sample_rate,
        exact=exact,
        seed=seed,
        batch_size=batch_size,
        precision=precision,
        device=device,
        progress=progress,
    )
    a = np.concatenate(frames).astype(np.float64)  # a scoring protocol embeds a clip as one frame
    t = (
        Encoder(clap, device="auto", precision=precision or "fp32", batch_size=batch_size, cache=False)
        .text(prompts, normalize=False)
        .astype(np.float64)
    )
    # Every tool divides by the norms with an eps of 1e-8: torch's cosine_similarity (stable-audio-metrics,
    # audiocraft, consistencytta) clamps each norm; frechet-audio-distance adds it to each.
    na, nt = np.linalg.norm(a, axis=1), np.linalg.norm(t, axis=1)
    if proto.aggregate == "mean_std":
        cos = ((a / (na + 1e-8)[:, None]) * (t / (nt + 1e-8)[:, None])).sum(axis=1)
    else:
        cos = (a * t).sum(axis=1) / (np.maximum(na, 1e-8) * np.maximum(nt, 1e-8))
    std = None
    if proto.aggregate == "clamped_x100":
        per = np.maximum(cos, 0.0) * 100.0
        mean = float(np.maximum(cos, 0.0).mean() * 100.0)
    else:
        per, mean = cos, float(cos.mean())
        if proto.aggregate == "mean_std":
            std = float(cos.std())
    name = _model_name(proto.model if model is None else model, clap)
    return ClapScore(per.astype(np.float32), mean, name, proto.name, std)


def _skclap_score(
    items: list,
    prompts: list[str],
    model: Any,
    sample_rate: int | None,
    batch_size: int,
    precision: str | None,
    device: Any,
    progress: bool,
) -> ClapScore:
    from .encoder import Encoder

    enc = Encoder(model, device=device, precision=precision, batch_size=batch_size, cache=False, progress=progress, sample_rate=sample_rate)
    a, t = enc.audio(items), enc.text(prompts)
    scores = (a * t).sum(axis=1).astype(np.float32)
    return ClapScore(scores, float(scores.mean()), _model_name(model, enc.model))
