"""A quick health check of a loaded model: finite outputs, matching widths, towers that tell inputs apart.

A released checkpoint can load without error and still be useless: a text tower that maps every
prompt to nearly one vector (reported upstream of ``laion/larger_clap_music``) makes zero-shot
classification a constant. :func:`check_model` embeds a fixed set of prompts and of test signals and
reports, and warns about, what it finds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .batching import normalize_rows
from .encoder import Encoder
from .models.protocol import ClapLike

__all__ = ["ModelHealth", "check_model", "PROMPTS"]

#: Texts that any working text tower maps to different directions.
PROMPTS = (
    "a dog barking",
    "rain falling on a roof",
    "a piano playing a slow melody",
    "a car engine starting",
    "people talking in a crowded room",
    "a siren wailing in the distance",
    "birds singing in the morning",
    "a drum solo",
)

#: Above this mean pairwise cosine, a tower's embeddings are taken as collapsed to one vector.
COLLAPSED_COSINE = 0.99


def _signals(rate: int, seconds: float = 1.0) -> list[np.ndarray]:
    """Test signals of different kinds: tones, a sweep, noise, clicks (deterministic)."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    clicks = np.zeros_like(t)
    clicks[:: max(1, rate // 8)] = 0.9
    sweep = np.sin(2 * np.pi * (100 + 2000 * t / seconds) * t)
    return [
        (0.4 * s).astype(np.float32)
        for s in (np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 3000 * t), sweep, rng.standard_normal(t.shape).clip(-2, 2) / 2, clicks)
    ]


def _mean_pairwise_cosine(x: np.ndarray) -> float:
    x = normalize_rows(x)
    sims = x @ x.T
    n = len(x)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


@dataclass
class ModelHealth:
    """What :func:`check_model` measured. ``problems`` is empty for a healthy model."""

    audio_dim: int
    text_dim: int
    finite: bool
    text_cosine: float  # mean pairwise cosine of the embeddings of :data:`PROMPTS`
    audio_cosine: float  # the same over the test signals
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def check_model(model: Any, *, warn: bool = True) -> ModelHealth:
    """Check a model (an instance, or any name :func:`skclap.load_model` takes) in about a second.

    Embeds :data:`PROMPTS` and five test signals and checks that every output is finite, that audio
    and text embeddings have one width, and that neither tower maps its inputs to nearly one
    vector (mean pairwise cosine above :data:`COLLAPSED_COSINE`). With ``warn``, each problem is
    also issued as a ``UserWarning``.
    """
    from .checkpoints import resolve_model

    clap: ClapLike = resolve_model(model, device="cpu") if not hasattr(model, "encode_text") else model
    rate = int(clap.config.sample_rate)
    signals = _signals(rate)
    encoder = Encoder(clap, cache=False, workers=1)
    text = encoder.text(list(PROMPTS), normalize=False)
    audio = encoder.audio(signals, sample_rate=rate, normalize=False)
    finite = bool(np.isfinite(text).all() and np.isfinite(audio).all())
    report = ModelHealth(
        audio_dim=int(audio.shape[1]),
        text_dim=int(text.shape[1]),
        finite=finite,
        text_cosine=_mean_pairwise_cosine(text) if finite else float("nan"),
        audio_cosine=_mean_pairwise_cosine(audio) if finite else float("nan"),
    )
    name = getattr(clap, "source", None) or type(clap).__name__
    if not finite:
        report.problems.append(f"{name}: non-finite embeddings (NaN or inf) for the test prompts or signals")
    if report.audio_dim != report.text_dim:
        report.problems.append(f"{name}: audio embeddings are {report.audio_dim}-d but text embeddings {report.text_dim}-d")
    towers = (
        ("text", report.text_cosine, f"{len(PROMPTS)} different prompts"),
        ("audio", report.audio_cosine, f"{len(signals)} test signals"),
    )
    for tower, cos, what in towers:
        if finite and cos > COLLAPSED_COSINE:
            report.problems.append(
                f"{name}: collapsed {tower} tower: {what} "
                f"have a mean pairwise cosine of {cos:.4f} (above {COLLAPSED_COSINE}), so {tower} embeddings "
                f"barely depend on the input and zero-shot scores will be near constant"
            )
    if warn:
        for problem in report.problems:
            warnings.warn(problem, UserWarning, stacklevel=2)
    return report
