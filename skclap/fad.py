"""CLAP-FAD: the Fréchet distance between the CLAP embeddings of two sets of audio, as a published
tool computes it (:mod:`skclap.score_protocols`).

A set's statistics (mean and covariance of its frames) are computed once and can be saved
(:meth:`FadStatistics.save`, ``skclap fad --baseline-stats``): one baseline serves many evaluated
sets. Saved statistics remember the protocol, the model and the files they came from, and are
refused under another protocol or model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .metrics import GaussianStatistics

__all__ = ["FadResult", "FadStatistics", "cached_statistics", "clap_fad", "fad_statistics", "frames_statistics"]


@dataclass(frozen=True)
class FadStatistics:
    """A set's frame statistics under one protocol: ``mu`` (dim,), ``cov`` (dim, dim), ``n`` frames
    from ``files`` items; ``fingerprint`` identifies the items (their paths, sizes and times);
    ``drawn`` how long clips were cut (``"fixed"``, or ``"exact, seed N"``) and ``precision`` the
    precision the model ran in: statistics that differ in either are not the same set's."""

    mu: np.ndarray
    cov: np.ndarray
    n: int
    files: int
    protocol: str
    model: str
    fingerprint: str
    drawn: str = "fixed"
    precision: str = "fp32"

    def save(self, path: str | os.PathLike) -> Path:
        """Write to an ``.npz`` (arrays and a JSON header; no pickles)."""
        meta = {k: getattr(self, k) for k in ("n", "files", "protocol", "model", "fingerprint", "drawn", "precision")}
        out = Path(path)
        with out.open("wb") as fh:  # np.savez would add ".npz" to a name without it
            np.savez(fh, mu=self.mu, cov=self.cov, meta=np.array(json.dumps(meta)))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> FadStatistics:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return cls(np.asarray(z["mu"]), np.asarray(z["cov"]), **meta)
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{os.fspath(path)!r} is not FAD statistics saved by skclap: {err}") from None

    def gaussian(self) -> GaussianStatistics:
        return GaussianStatistics(self.mu, self.cov, self.n)


class FadResult(NamedTuple):
    fad: float
    baseline: FadStatistics
    evaluated: FadStatistics
    protocol: str
    items: list | None = None  # the evaluated items, where they were given as audio
    frames: np.ndarray | None = None  # (n_items,) frames of each evaluated item
    per_item: np.ndarray | None = None  # (n_items,) each item's own FAD to the baseline (fadtk's --indiv); NaN under 2 frames


def frames_statistics(frames: Sequence[np.ndarray], how: str, what: str = "a set") -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and ``ddof=1`` covariance of all frames of all items, as the tool computes them.

    ``"fadtk"`` (fadtk ``utils.calculate_embd_statistics_online``): frames stored as float16, each
    file's mean taken in float16, files merged pairwise in float64. A file of one frame counts with
    no spread of its own; fadtk's ``np.cov`` of one row is NaN there, which makes its whole FAD NaN.
    ``"plain"`` (frechet-audio-distance): one float32 row per item, ``np.mean`` and ``np.cov``.
    """
    if len(frames) == 0:
        raise ValueError(f"FAD needs at least 2 embeddings in {what}; it has none")
    if how == "plain":
        x = np.concatenate([np.asarray(f, np.float32) for f in frames])
        if x.shape[0] < 2:
            raise ValueError(f"FAD needs at least 2 embeddings in {what}; got {x.shape[0]}")
        return x.mean(axis=0).astype(np.float64), np.cov(x, rowvar=False), int(x.shape[0])
    if how != "fadtk":
        raise ValueError(f"unknown statistics {how!r}")
    dim = frames[0].shape[1]
    mu, scatter, n = np.zeros(dim), np.zeros((dim, dim)), 0
    for f in frames:
        e = np.asarray(f).astype(np.float16)
        k = e.shape[0]
        m = np.mean(e, axis=0)  # float16, as fadtk's np.mean of its float16 frames
        s = np.cov(e, rowvar=False) * (k - 1) if k > 1 else np.zeros((dim, dim))
        delta = m - mu
        mu += k / (n + k) * delta
        scatter += s + delta[:, None] * delta[None, :] * n * k / (n + k)
        n += k
    if n < 2:
        raise ValueError(f"FAD needs at least 2 frames in {what}; got {n} (a file of up to one hop is one frame)")
    return mu, scatter / (n - 1), n


def _fingerprint(items: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            st = os.stat(item)
            h.update(f"{os.path.abspath(item)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        else:
            arr = np.ascontiguousarray(item[0] if isinstance(item, tuple) else item)
            h.update(hashlib.sha256(arr.tobytes()).digest())
    return h.hexdigest()[:16]


def _audio_items(source: Any, what: str = "the set") -> list[Any]:
    """A folder (the audio files directly in it, sorted: like the tools, which list one folder, and
    leave out fadtk's ``convert/`` and ``embeddings/`` beside them), a file list (CSV/Parquet/txt as
    :func:`skclap.embed.list_inputs` reads them), or a sequence of items."""
    if isinstance(source, (str, os.PathLike)):
        from .embed import AUDIO_EXTENSIONS, list_inputs

        folder = Path(source)
        if not folder.exists():
            raise FileNotFoundError(f"{what}: {os.fspath(source)!r} does not exist")
        if folder.is_dir():
            paths = [str(p.absolute()) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
        else:
            paths = list(list_inputs(source)["path"])
        if not paths:
            raise ValueError(f"{what}: {os.fspath(source)!r} holds no audio files")
        return paths
    items = list(source)
    if not items:
        raise ValueError(f"{what} is empty")
    return items


def fad_statistics(
    source: Any,
    protocol: str = "fadtk:clap-laion-audio",
    model: Any = None,
    *,
    sample_rate: int | None = None,
    exact: bool = False,
    seed: int = 0,
    batch_size: int = 32,
    precision: str | None = None,
    device: Any = "auto",
    progress: bool = False,
    rng: np.random.RandomState | None = None,
) -> FadStatistics:
    """The frame statistics of a set of audio (a folder, a file list, or items) under ``protocol``;
    a saved statistics file (``.npz``) is read instead. ``exact``, ``seed`` and ``rng``: see
    :func:`skclap.score_protocols.protocol_frames`."""
    run = dict(
        sample_rate=sample_rate,
        exact=exact,
        seed=seed,
        batch_size=batch_size,
        precision=precision,
        device=device,
        progress=progress,
        rng=rng,
    )
    return _statistics(source, protocol, model, run)[0]


def _statistics(
    source: Any, protocol: Any, model: Any, run: dict[str, Any], what: str = "the set"
) -> tuple[FadStatistics, list[Any] | None, list[np.ndarray] | None]:
    """A set's statistics, and its items and their frames where it was given as audio."""
    from .score import _model_name
    from .score_protocols import get_protocol, protocol_frames

    proto = get_protocol(protocol, need="fad")
    spec = proto.model if model is None else model
    name = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if isinstance(source, FadStatistics) or (isinstance(source, (str, os.PathLike)) and str(source).endswith(".npz")):
        stats = source if isinstance(source, FadStatistics) else FadStatistics.load(source)
        if stats.protocol != proto.name or (name is not None and stats.model != name):
            raise ValueError(
                f"the statistics of {stats.protocol} on {stats.model} cannot be compared under {proto.name} on {name or spec!r}"
            )
        return stats, None, None
    items = _audio_items(source, what)
    frames, clap = protocol_frames(proto, items, model, **run)
    mu, cov, n = frames_statistics(frames, proto.statistics or "plain", what)
    stats = FadStatistics(
        mu,
        cov,
        n,
        len(items),
        proto.name,
        name or _model_name(spec, clap),
        _fingerprint(items),
        _drawn(run),
        run.get("precision") or "fp32",
    )
    return stats, items, frames


def _drawn(run: dict[str, Any]) -> str:
    return f"exact, seed {run.get('seed', 0)}" if run.get("exact") else "fixed"


def cached_statistics(
    source: Any, path: str | os.PathLike, protocol: str = "fadtk:clap-laion-audio", model: Any = None, **run: Any
) -> FadStatistics:
    """``source``'s statistics (see :func:`fad_statistics`), read from the ``.npz`` at ``path`` when
    it exists, else computed and written there. Saved statistics of other files (other paths,
    sizes or times) or of another protocol or model are refused, not silently reused."""
    saved = Path(path)
    if not saved.exists():
        stats = fad_statistics(source, protocol, model, **run)
        stats.save(saved)
        return stats
    stats = _statistics(FadStatistics.load(saved), protocol, model, {})[0]
    wanted = (_drawn(run), run.get("precision") or "fp32")
    if (stats.drawn, stats.precision) != wanted:
        raise ValueError(
            f"{os.fspath(saved)!r} was computed with long clips {stats.drawn} in {stats.precision}, not {wanted[0]} in {wanted[1]}"
        )
    if not (isinstance(source, (str, os.PathLike)) and str(source).endswith(".npz")) and stats.fingerprint != _fingerprint(
        _audio_items(source)
    ):
        raise ValueError(
            f"{os.fspath(saved)!r} holds the statistics of other files than those given (or of changed ones); remove it to recompute"
        )
    return stats


def clap_fad(
    baseline: Any,
    evaluated: Any,
    protocol: str = "fadtk:clap-laion-audio",
    model: Any = None,
    *,
    sample_rate: int | None = None,
    exact: bool = False,
    seed: int = 0,
    batch_size: int = 32,
    precision: str | None = None,
    device: Any = "auto",
    progress: bool = False,
) -> FadResult:
    """FAD between ``baseline`` and ``evaluated`` — each a folder, a file list, a sequence of items,
    saved statistics (``.npz``) or :class:`FadStatistics` — as ``protocol``'s tool computes it, and
    each evaluated item's own FAD to the baseline where the protocol has several frames an item
    (fadtk's ``--indiv``: its frames' mean and covariance against the baseline's).

    ``exact`` and ``seed``: see :func:`skclap.score_protocols.protocol_frames`; one stream of draws
    runs through the baseline, then the evaluated set, as in the tool's process. With saved
    baseline statistics, the evaluated set's draws start at the seed (the tool's figure with its
    baseline embeddings cached).
    """
    from .metrics import frechet_distance
    from .score_protocols import get_protocol

    proto = get_protocol(protocol, need="fad")
    rng = np.random.RandomState(seed) if exact else None
    run = dict(
        sample_rate=sample_rate,
        exact=exact,
        seed=seed,
        batch_size=batch_size,
        precision=precision,
        device=device,
        progress=progress,
        rng=rng,
    )
    a = _statistics(baseline, proto, model, run, "the baseline")[0]
    b, items, frames = _statistics(evaluated, proto, model, run, "the evaluated set")
    for field, what in (("model", "model"), ("drawn", "long clips"), ("precision", "precision")):
        if getattr(a, field) != getattr(b, field):
            raise ValueError(
                f"the baseline's statistics and the evaluated set's differ in {what}: {getattr(a, field)} and {getattr(b, field)}"
            )
    fad = frechet_distance(a.gaussian(), b.gaussian(), method=proto.sqrt)
    if frames is None:
        return FadResult(fad, a, b, proto.name)
    counts = np.array([len(f) for f in frames])
    per_item = np.full(len(frames), np.nan)
    if proto.frames == "windows":
        for i, f in enumerate(frames):
            if len(f) >= 2:  # fadtk fad.py calc_embd_statistics on the file's float16 frames
                e = f.astype(np.float16)
                per_item[i] = frechet_distance((a.mu, a.cov), (np.mean(e, axis=0), np.cov(e, rowvar=False)), method=proto.sqrt)
    return FadResult(fad, a, b, proto.name, items, counts, per_item)
