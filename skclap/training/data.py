"""Training data: audio-caption pairs from a manifest or from memory, with seeded random windows."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .. import audio

__all__ = ["CaptionDataset", "EpochBatchSampler", "caption_lists", "read_manifest"]


def read_manifest(
    path: str | os.PathLike, audio_column: str = "audio", caption_column: str = "caption"
) -> tuple[list[str], list[list[str]]]:
    """Read a CSV or Parquet manifest with one row per (audio, caption).

    Several rows may share an audio file (several captions per clip). Relative audio paths are taken
    relative to the manifest's folder. Returns ``(audio_paths, captions_per_clip)``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {os.fspath(path)!r}")
    df = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    missing = [c for c in (audio_column, caption_column) if c not in df.columns]
    if missing:
        raise ValueError(f"manifest {os.fspath(path)!r} has no column(s) {missing}; it has {list(df.columns)}")
    clips: dict[str, list[str]] = {}
    for row, (a, c) in enumerate(zip(df[audio_column], df[caption_column])):
        if not isinstance(a, str) or not a.strip():
            raise ValueError(f"manifest {os.fspath(path)!r}, row {row + 2}: empty audio path")
        if not isinstance(c, str) or not c.strip():
            raise ValueError(f"manifest {os.fspath(path)!r}, row {row + 2}: empty caption for {a!r}")
        p = Path(a)
        key = str(p if p.is_absolute() else (path.parent / p))
        clips.setdefault(key, []).append(c.strip())
    if not clips:
        raise ValueError(f"manifest {os.fspath(path)!r} has no rows")
    return list(clips), list(clips.values())


def caption_lists(captions: Sequence[Any]) -> list[list[Any]]:
    """Per-item targets as lists: a caption (or an integer label) alone becomes a list of one."""
    return [[c] if isinstance(c, (str, int, np.integer)) else list(c) for c in captions]


class CaptionDataset(Dataset):
    """Audio items (paths or waveforms) with one or more captions each (or one integer class label
    each, for supervised fine-tuning).

    Indexed by ``(index, seed)`` pairs from :class:`EpochBatchSampler`: the seed picks the random
    window of the clip and which caption to use, so an epoch's data are the same whatever the number
    of loader workers, and a resumed run sees exactly what an uninterrupted one would.
    """

    def __init__(
        self,
        items: Sequence[Any],
        captions: Sequence[str | int | Sequence[str]],
        sample_rate: int,
        window_samples: int,
        item_rate: int | None = None,
        preload: bool = False,
        groups: Sequence[Any] | None = None,
    ) -> None:
        if len(items) != len(captions):
            raise ValueError(f"{len(items)} audio items but {len(captions)} caption entries")
        if len(items) == 0:
            raise ValueError("the training data are empty")
        self.items = list(items)
        self.captions = caption_lists(captions)
        for i, caps in enumerate(self.captions):
            if not caps or not all((isinstance(c, str) and c.strip()) or isinstance(c, (int, np.integer)) for c in caps):
                raise ValueError(f"item {i} ({audio.describe(self.items[i])}) has no usable caption: {caps!r}")
        if groups is not None and len(groups) != len(items):
            raise ValueError(f"{len(items)} audio items but {len(groups)} groups")
        self.groups = None if groups is None else list(groups)
        self.sample_rate = sample_rate
        self.window_samples = window_samples
        self.item_rate = item_rate
        self._waves: list[np.ndarray] | None = [self._load(i) for i in range(len(self.items))] if preload else None

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, i: int) -> np.ndarray:
        name = f"item {i} ({audio.describe(self.items[i])})"
        return audio.prepare(self.items[i], self.sample_rate, self.item_rate, name=name)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, int]:
        i, seed = key
        wave = self._waves[i] if self._waves is not None else self._load(i)
        rng = np.random.default_rng(seed)
        n, length = len(wave), self.window_samples
        if n > length:
            start = int(rng.integers(0, n - length + 1))
            window = wave[start : start + length]
        else:
            window = audio.windows(wave, length)[0]
        caps = self.captions[i]
        caption = caps[int(rng.integers(len(caps)))] if len(caps) > 1 else caps[0]
        return torch.from_numpy(np.ascontiguousarray(window)), caption, i


def collate(batch: list[tuple[torch.Tensor, str, int]]) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    waves, captions, idx = zip(*batch)
    return torch.stack(waves), list(captions), torch.tensor(idx)


class EpochBatchSampler(Sampler):
    """Batches of ``(index, seed)`` for one epoch: a permutation seeded by ``(seed, epoch)``.

    Each global batch of ``batch_size`` is split evenly across ``world_size`` ranks (this rank takes
    its slice); the last incomplete batch is dropped; ``start`` skips batches already trained on.

    With ``groups`` (one key per item, e.g. its instrument) and ``group_size``, the permutation is
    made of runs of ``group_size`` items of one group, in random order: each batch then holds hard
    negatives, items that only their captions' other words can tell apart.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        groups: Sequence[Any] | None = None,
        group_size: int | None = None,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world_size}")
        if n < batch_size:
            raise ValueError(f"{n} training pairs are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start, self.rank, self.world_size = start, rank, world_size
        self.groups = None if groups is None or not group_size or group_size < 2 else list(groups)
        self.group_size = group_size or 1

    @staticmethod
    def batches_per_epoch(n: int, batch_size: int) -> int:
        return n // batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch(self.n, self.batch_size) - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        if self.groups is not None:
            members: dict[Any, list[int]] = {}
            for i in perm:  # each group's items in random order
                members.setdefault(self.groups[i], []).append(i)
            runs = [m[k : k + self.group_size] for m in members.values() for k in range(0, len(m), self.group_size)]
            perm = [i for r in torch.randperm(len(runs), generator=g).tolist() for i in runs[r]]
        seeds = torch.randint(0, 2**62, (self.n,), generator=g).tolist()
        per_rank = self.batch_size // self.world_size
        for b in range(self.start, self.batches_per_epoch(self.n, self.batch_size)):
            lo = b * self.batch_size + self.rank * per_rank
            yield [(perm[j], seeds[j]) for j in range(lo, lo + per_rank)]
