"""Captioned clips and the corpus container shared by the generated corpora."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["CaptionedCorpus", "Clip", "draw_clips"]


@dataclass(frozen=True)
class Clip:
    family: str  # the sound's class: a synthetic family or an instrument
    attributes: dict[str, str]
    captions: list[str]
    seed: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.family

    @property
    def pitched_label(self) -> str:
        """Family with its pitch, e.g. ``"high siren"`` (families without pitch: the family)."""
        return self.attribute_label("pitch")

    def attribute_label(self, attribute: str) -> str:
        """Family with one attribute's value, e.g. ``"soft cello"`` (without it: the family)."""
        value = self.attributes.get(attribute)
        return f"{value} {self.family}" if value else self.family


def draw_clips(
    n_clips: int,
    names: Sequence[str],
    known: Collection[str],
    seed: int,
    describe: Callable[[str, np.random.Generator], tuple[dict[str, str], list[str]]],
    kind: str = "sound families",
) -> list[Clip]:
    """``n_clips`` clips spread evenly over ``names``, in a random order, deterministic in ``seed``;
    ``describe(name, rng)`` draws a clip's attributes and captions."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; choose from {sorted(known)}")
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        name = names[i % len(names)]
        attributes, captions = describe(name, rng)
        clips.append(Clip(name, attributes, captions, int(rng.integers(2**31))))
    return [clips[i] for i in rng.permutation(n_clips)]


@dataclass
class CaptionedCorpus:
    """Clips with labels and captions; subclasses render a clip's waveform."""

    clips: list[Clip]
    sample_rate: int = 16000
    seconds: float = 2.0

    def __len__(self) -> int:
        return len(self.clips)

    def waveform(self, i: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def labels(self) -> list[str]:
        return [c.family for c in self.clips]

    @property
    def captions(self) -> list[list[str]]:
        return [c.captions for c in self.clips]

    def waveforms(self) -> list[np.ndarray]:
        return [self.waveform(i) for i in range(len(self))]

    def subset(self, idx: Sequence[int]):
        return replace(self, clips=[self.clips[i] for i in idx])

    def write(self, directory: str | os.PathLike, manifest: str = "manifest.csv") -> Path:
        """Write ``audio/<i>.wav`` files and a manifest (one row per caption: audio, caption, label)."""
        import soundfile as sf

        root = Path(directory)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        path = root / manifest
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["audio", "caption", "label"])
            for i, clip in enumerate(self.clips):
                rel = f"audio/{i:05d}.wav"
                sf.write(root / rel, self.waveform(i), self.sample_rate, subtype="PCM_16")
                for cap in clip.captions:
                    w.writerow([rel, cap, clip.family])
        return path

    def write_folders(self, directory: str | os.PathLike) -> list[Path]:
        """Write one folder per label in GTZAN's layout, ``<directory>/<label>/<label>.000NN.wav``
        (numbered within each label, in corpus order), so that a folder's name is its clips' label.
        Returns the files' paths in corpus order."""
        import soundfile as sf

        root = Path(directory)
        counts: dict[str, int] = {}
        paths = []
        for i, clip in enumerate(self.clips):
            k = counts[clip.label] = counts.get(clip.label, -1) + 1
            path = root / clip.label / f"{clip.label}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, self.waveform(i), self.sample_rate, subtype="PCM_16")
            paths.append(path)
        return paths
