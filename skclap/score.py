"""CLAP score: the cosine similarity of each generated clip with its prompt, and their mean.

Text-to-audio papers report it to say how well audio matches its text. Computed here the same way
for every model: each clip's deterministic windows pooled into one embedding, the text embedded as
written (no template), both L2-normalised, the cosine per pair; the mean is over pairs.
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
    scores: np.ndarray  # (n_pairs,) cosine of each clip with its text
    mean: float
    model: str


def clap_score(
    audio: Sequence[Any],
    texts: Sequence[str],
    model: Any = DEFAULT_SCORE_MODEL,
    *,
    sample_rate: int | None = None,
    batch_size: int = 32,
    precision: str | None = None,
    device: Any = "auto",
    progress: bool = False,
) -> ClapScore:
    """Per-pair cosine between ``audio[i]`` (a path, a waveform with ``sample_rate``, an
    ``(array, rate)`` pair) and ``texts[i]``, and their mean. Deterministic for a given model and
    precision. ``model``: any name of :mod:`skclap.registry`, a path or a model object."""
    from .encoder import Encoder
    from .inputs import as_items, as_texts

    items, prompts = as_items(audio, "audio"), as_texts(texts, "texts")
    if len(items) != len(prompts):
        raise ValueError(f"{len(items)} audio items but {len(prompts)} texts: CLAP scores need one text per clip")
    enc = Encoder(model, device=device, precision=precision, batch_size=batch_size, cache=False, progress=progress, sample_rate=sample_rate)
    a, t = enc.audio(items), enc.text(prompts)
    clap = enc.model
    scores = (a * t).sum(axis=1).astype(np.float32)
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else (getattr(clap, "source", None) or type(clap).__name__)
    return ClapScore(scores, float(scores.mean()), str(name))
