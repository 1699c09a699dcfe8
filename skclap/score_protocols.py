"""The published CLAP-score and CLAP-FAD protocols: how each tool that papers cite turns a file into
the waveforms its CLAP embeds, and how it aggregates.

Tools differ in every step — checkpoint, reader, resampler, level, 16-bit rounding, what happens past
10 s, how cosines are summed — so their numbers are not comparable. Each :class:`ScoreProtocol` is
one tool's steps, in its order, each citing the line it follows (docs/scores.md has the table).

Determinism: where a tool draws at random (a clip longer than its window: a random crop, or random
fusion chunks), the default here is a fixed choice (the middle crop; the middle start of each third
for the fusion chunks); ``exact=True`` draws as the tool does, from ``numpy.random.RandomState(seed)``, item by
item in order, which is what the tool's own process does after ``np.random.seed(seed)``. Nothing here
reads numpy's global random state.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from . import audio
from .exceptions import AudioError
from .resamplers import RESAMPLERS

__all__ = ["PROTOCOLS", "ScoreProtocol", "get_protocol", "protocol_frames", "read_channels"]

#: laion_clap's window: 10 s at 48 kHz (``get_audio_features``'s ``max_len``).
LAION_WINDOW = 480000


def read_channels(item: Any, sample_rate: int | None, dtype: str = "float32", name: str = "") -> tuple[np.ndarray, int]:
    """An item as ``(samples, channels)`` and its rate: a file read with soundfile in ``dtype`` (as
    the tools read it), an array (1-D, or 2-D with the shorter axis as channels) with ``sample_rate``,
    or an ``(array, rate)`` pair."""
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], (str, os.PathLike)):
        item, sample_rate = item
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: audio file not found: {path!r}")
        try:
            data, rate = sf.read(path, dtype=dtype, always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
            raise AudioError(f"{name}: {path!r} could not be decoded: {err}") from None
    else:
        if sample_rate is None:
            raise ValueError(f"{name}: a waveform needs its sample_rate (pass sample_rate=, or an (array, rate) pair)")
        audio.check_sample_rate(sample_rate)
        arr = np.asarray(item.detach().cpu().numpy() if hasattr(item, "detach") else item)
        if arr.ndim not in (1, 2) or not np.issubdtype(arr.dtype, np.floating):
            raise AudioError(f"{name}: a waveform must be a 1-D or 2-D float array; got {arr.dtype} of shape {arr.shape}")
        data = arr[:, None] if arr.ndim == 1 else (arr.T if arr.shape[0] < arr.shape[1] else arr)
        data, rate = data.astype(dtype), int(sample_rate)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{name}: the audio is empty (shape {data.shape})")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: the audio contains NaN or infinite samples")
    return data, int(rate)


def _laion_int16(x: np.ndarray) -> np.ndarray:
    """laion_clap's ``int16_to_float32(float32_to_int16(x))`` (``training/data.py``): clip, scale by
    32767, truncate, scale back."""
    return ((np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def _silent(name: str, tool: str, step: str) -> AudioError:
    return AudioError(f"{name}: the audio is silent; {tool}'s {step} divides by its peak of 0 (the tool itself computes NaN here)")


# --- each tool's way from a file to the waveform its CLAP embeds -------------------------------------


def _stable_audio_metrics(item: Any, rate: int | None, name: str) -> np.ndarray:
    # src/clap_score.py L110-113: librosa.load(path, sr=48000, mono=True) (mono first, then soxr_hq),
    # pyloudnorm.normalize.peak(audio, -1.0), then int16_to_float32(float32_to_int16(audio)).
    import pyloudnorm

    data, sr = read_channels(item, rate, "float32", name)
    wave = data.T.mean(axis=0) if data.shape[1] > 1 else data[:, 0]
    if sr != 48000:
        wave = RESAMPLERS["librosa-soxr_hq"](wave, sr, 48000)
    if not np.abs(wave).max() > 0:
        raise _silent(name, "stable-audio-metrics", "peak normalisation (pyloudnorm.normalize.peak)")
    return _laion_int16(pyloudnorm.normalize.peak(wave, -1.0))


def _audiocraft(item: Any, rate: int | None, name: str) -> np.ndarray:
    # audiocraft/metrics/clap_consistency.py L73: convert_audio(audio, sr, 48000, to_channels=1), i.e.
    # julius.resample_frac on every channel (data/audio_utils.py L54-59), then the channel mean; no int16.
    data, sr = read_channels(item, rate, "float32", name)
    chans = data.T
    if sr != 48000:
        chans = RESAMPLERS["julius"](chans, sr, 48000)
    return np.asarray(chans.mean(axis=0), dtype=np.float32)


def _fadtk(target: int) -> Callable[[Any, int | None, str], np.ndarray]:
    def prepare(item: Any, rate: int | None, name: str) -> np.ndarray:
        # fad.py L149-160: torchaudio.load (soundfile backend), channel mean, the kaiser_best Resample,
        # saved as 16-bit PCM; model_loader.py L63-70: read back as int16 / 32768.
        data, sr = read_channels(item, rate, "float32", name)
        wave = RESAMPLERS["torchaudio-kaiser_best"](data.T.mean(axis=0, keepdims=True), sr, target)[0]
        buf = io.BytesIO()
        sf.write(buf, wave, target, format="WAV", subtype="PCM_16")
        buf.seek(0)
        pcm, _ = sf.read(buf, dtype="int16")
        return pcm / 32768.0

    return prepare


def _fadtk_laion(item: Any, rate: int | None, name: str) -> np.ndarray:
    # model_loader.py L393 (CLAPLaionModel._get_embedding): its own int16 round trip on top.
    return _laion_int16(_fadtk(48000)(item, rate, name))


def _fadtk_2023(item: Any, rate: int | None, name: str) -> np.ndarray:
    # model_loader.py L490 (CLAPModel._get_embedding): the int16 round trip is commented out.
    return _fadtk(44100)(item, rate, name).astype(np.float32)


def _frechet_audio_distance(item: Any, rate: int | None, name: str) -> np.ndarray:
    # utils.py load_audio_task: sf.read(dtype="float32"), the channel mean, resampy.resample to 48 kHz
    # where the rate differs; no int16 (fad.py L244-246 pass use_tensor=True).
    data, sr = read_channels(item, rate, "float32", name)
    wave = np.mean(data, axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != 48000:
        wave = RESAMPLERS["resampy-kaiser_best"](wave, sr, 48000)
    return np.asarray(wave, dtype=np.float32)


def _consistencytta(item: Any, rate: int | None, name: str) -> np.ndarray:
    # tools/torch_tools.py L56-75 (read_wav_file): sf.read (float64), librosa.to_mono, resampy
    # kaiser_best through 16 kHz then to 48 kHz, DC removed, peak to 0.5, first 10 s (zero-padded),
    # peak to 0.5 again.
    data, sr = read_channels(item, rate, "float64", name)
    wave = data.T.mean(axis=0)
    for target in (16000, 48000):
        if sr != target:
            wave, sr = RESAMPLERS["resampy-kaiser_best"](wave, sr, target), target
    wave = wave - wave.mean()
    wave = wave / (np.abs(wave).max() + 1e-8) / 2
    wave = wave[:LAION_WINDOW] if wave.shape[0] >= LAION_WINDOW else np.concatenate([wave, np.zeros(LAION_WINDOW - wave.shape[0])])
    wave = wave / (np.abs(wave).max() + 1e-8) / 2
    return wave.astype(np.float32)


# --- the protocols -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreProtocol:
    """One tool's CLAP score and/or FAD.

    ``frames``: ``"clip"``, one window a clip (a clip up to a window is repeated, then zero-padded to
    it, as laion_clap's ``repeatpad``; a longer one is cut as ``long_clips`` says); ``"windows"``,
    every window of ``window_seconds`` every ``hop_seconds``, zero-padded at the end (fadtk), each
    one frame of the statistics. ``long_clips``: ``"crop"`` (the tool draws a random crop),
    ``"fusion"`` (a fused model takes random fusion chunks; an unfused one, a crop), ``None`` (the
    tool never sees one). ``aggregate``: how the per-pair cosines become the score (``"mean"``, ``"mean_std"``, ``"clamped_x100"``).
    ``statistics``: how FAD frames become a mean and covariance (``"fadtk"``: float16 frames, each
    file's mean in float16, merged over files; ``"plain"``: one float32 row per file), ``None`` where
    the tool computes no FAD. ``sqrt``: the tool's matrix square root (``"eig"``, ``"sqrtm"``).
    """

    name: str
    tool: str
    summary: str
    model: str
    sample_rate: int
    prepare: Callable[[Any, int | None, str], np.ndarray] = field(repr=False)
    frames: str = "clip"
    window_seconds: float = 10.0
    hop_seconds: float = 1.0
    long_clips: str | None = "crop"
    normalize_frames: bool = True
    aggregate: str | None = "mean"
    statistics: str | None = None
    sqrt: str = "eig"

    @property
    def window(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def scores(self) -> bool:
        return self.aggregate is not None

    @property
    def fad(self) -> bool:
        return self.statistics is not None

    def load(self, item: Any, sample_rate: int | None = None, name: str = "item") -> np.ndarray:
        """The tool's waveform of ``item`` at :attr:`sample_rate`, mono."""
        wave = self.prepare(item, sample_rate, name)
        if wave.shape[0] == 0:
            raise AudioError(f"{name}: the audio is empty")
        return wave

    def windows(self, wave: np.ndarray, rng: np.random.RandomState | None = None) -> np.ndarray:
        """The windows the tool's CLAP embeds for one prepared waveform, ``(n, window)``. ``rng``:
        draw as the tool draws (``exact``); None: the documented fixed choice."""
        n, length = wave.shape[0], self.window
        if self.frames == "windows":
            return np.concatenate(list(self.hop_windows(wave)))
        if n <= length:
            return audio.windows(wave.astype(np.float32), length, "repeatpad")
        # an unfused model (a fused one takes long clips whole: fusion_features)
        # laion_clap training/data.py L466-468 (rand_trunc): idx = np.random.randint(0, overflow + 1)
        overflow = n - length
        start = int(rng.randint(0, overflow + 1)) if rng is not None else overflow // 2
        return wave[None, start : start + length].astype(np.float32)

    def hop_windows(self, wave: np.ndarray, rows: int = 256) -> Iterator[np.ndarray]:
        """fadtk's windows (``model_loader.py`` ``_get_embedding``): one of ``window_seconds`` starting
        every ``hop_seconds``, zero-padded at the end; in blocks of ``rows``, so that a long file's
        windows are never all in memory at once."""
        n, length = wave.shape[0], self.window
        hop = int(round(self.hop_seconds * self.sample_rate))
        starts = range(0, n, hop)
        for first in range(0, len(starts), rows):
            block = starts[first : first + rows]
            out = np.zeros((len(block), length), dtype=np.float32)
            for row, start in enumerate(block):
                piece = wave[start : start + length]
                out[row, : piece.shape[0]] = piece
            yield out

    def fusion_features(self, extractor: Any, wave: np.ndarray, rng: np.random.RandomState | None = None) -> tuple[np.ndarray, bool]:
        """A fused model's input for a clip longer than the window (:func:`skclap.backends.laion.fusion_input`),
        its three chunks drawn as laion_clap draws them (``exact``: ``np.random.choice`` in each third
        of the start frames, then the ``randint`` of its waveform crop, unused but drawn); by default
        the middle start of each third."""
        from .backends.laion import fusion_input

        def choose(ranges: list[np.ndarray]) -> list[int]:
            if rng is None:
                return [int(r[len(r) // 2]) for r in ranges]
            return [int(rng.choice(r)) for r in ranges]

        features = fusion_input(extractor, wave, choose)
        if rng is not None:  # training/data.py L466-468: the crop drawn after the fusion chunks
            rng.randint(0, wave.shape[0] - self.window + 1)
        return features

    def describe(self) -> str:
        what = " and ".join(w for w, on in (("CLAP score", self.scores), ("FAD", self.fad)) if on)
        return f"{self.name:<26} {what}: {self.summary}"


def _fadtk_protocol(name: str, model_class: str, summary: str, model: str, **kw: Any) -> ScoreProtocol:
    """One of fadtk's CLAP models: every window a frame, its statistics merged file by file."""
    kw = {"sample_rate": 48000, "prepare": _fadtk_laion, **kw}
    return ScoreProtocol(
        name=f"fadtk:{name}",
        tool=f"microsoft/fadtk 1.1.0 (model_loader.py {model_class}, fad.py, utils.py)",
        summary=summary,
        model=model,
        frames="windows",
        long_clips=None,
        aggregate=None,
        statistics="fadtk",
        **kw,
    )


#: By name: ``skclap score --protocols`` lists them; docs/scores.md shows the same table.
PROTOCOLS: dict[str, ScoreProtocol] = {
    p.name: p
    for p in (
        ScoreProtocol(
            name="stable-audio-metrics",
            tool="Stability-AI/stable-audio-metrics src/clap_score.py",
            summary="laion 630k-audioset-fusion (HTSAT-tiny, fusion); librosa.load 48 kHz, peak -1 dB, int16; mean cosine",
            model="laion-630k-audioset-fusion-best",
            sample_rate=48000,
            prepare=_stable_audio_metrics,
            long_clips="fusion",
        ),
        ScoreProtocol(
            name="audiocraft",
            tool="facebookresearch/audiocraft audiocraft/metrics/clap_consistency.py (MusicGen config)",
            summary="laion music_audioset (HTSAT-base); julius to 48 kHz, channel mean; random 10 s crop; cosine sum / count",
            model="laion-music-audioset",
            sample_rate=48000,
            prepare=_audiocraft,
        ),
        ScoreProtocol(
            name="frechet-audio-distance",
            tool="gudgud96/frechet-audio-distance 0.3.4 (fad.py, clap_score.py)",
            summary="laion 630k-audioset (HTSAT-tiny); soundfile, resampy to 48 kHz; random 10 s crop; one row a file; "
            "CLAP score mean and std; FD with sqrtm",
            model="laion-630k-audioset-best",
            sample_rate=48000,
            prepare=_frechet_audio_distance,
            aggregate="mean_std",
            statistics="plain",
            sqrt="sqrtm",
        ),
        ScoreProtocol(
            name="consistencytta",
            tool="Bai-YT/ConsistencyTTA audioldm_eval/eval.py, tools/torch_tools.py",
            summary="laion music_audioset (HTSAT-base); resampy via 16 kHz to 48 kHz, DC removed, peak 0.5, first 10 s; "
            "mean of max(0, cos) x 100",
            model="laion-music-audioset",
            sample_rate=48000,
            prepare=_consistencytta,
            long_clips=None,
            aggregate="clamped_x100",
        ),
        _fadtk_protocol(
            "clap-laion-audio",
            "CLAPLaionModel('audio')",
            "laion 630k-audioset (HTSAT-tiny); torchaudio kaiser to 48 kHz, 16-bit, int16; 10 s windows every 1 s; FD of float16 frames (eig)",
            "laion-630k-audioset-best",
        ),
        _fadtk_protocol(
            "clap-laion-music",
            "CLAPLaionModel('music')",
            "laion music_audioset (HTSAT-base); as fadtk:clap-laion-audio",
            "laion-music-audioset",
        ),
        _fadtk_protocol(
            "clap-2023",
            "CLAPModel('2023')",
            "msclap 2023; torchaudio kaiser to 44.1 kHz, 16-bit; 7 s windows every 1 s, unnormalised; FD of float16 frames (eig)",
            "msclap-2023",
            sample_rate=44100,
            prepare=_fadtk_2023,
            window_seconds=7.0,
            normalize_frames=False,
        ),
    )
}


def get_protocol(name: str | ScoreProtocol, *, need: str | None = None) -> ScoreProtocol:
    """A protocol by name; ``need="scores"`` or ``"fad"`` refuses one whose tool computes no such figure."""
    if isinstance(name, ScoreProtocol):
        proto = name
    elif name in PROTOCOLS:
        proto = PROTOCOLS[name]
    else:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    if need == "scores" and not proto.scores:
        raise ValueError(f"{proto.name} computes no CLAP score; these do: {', '.join(n for n, p in PROTOCOLS.items() if p.scores)}")
    if need == "fad" and not proto.fad:
        raise ValueError(f"{proto.name} computes no FAD; these do: {', '.join(n for n, p in PROTOCOLS.items() if p.fad)}")
    return proto


def protocol_frames(
    protocol: ScoreProtocol,
    items: Any,
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
) -> tuple[list[np.ndarray], Any]:
    """Each item's frame embeddings as ``protocol`` computes them, ``(n_frames, dim)`` float32 (L2-
    normalised where the tool's are), and the model that embedded them.

    ``model``: the tool's checkpoint by default (``protocol.model``); another name, path or model of
    the same rate and window where the tool lets its user choose. ``exact``: long clips drawn as the
    tool draws them, from ``RandomState(seed)``, item by item in order (see the module's docstring);
    ``rng``: the state to draw from instead, one stream over several calls as the tool's process has.
    """
    from .backends import LaionCLAP
    from .batching import normalize_rows
    from .checkpoints import resolve_model
    from .encoder import Encoder
    from .inputs import as_items

    items = as_items(items, "audio")
    precision = precision or "fp32"  # every tool runs laion_clap in float32, on a GPU too
    clap = resolve_model(protocol.model if model is None else model, device)
    cfg = clap.config
    if (cfg.sample_rate, cfg.window_samples) != (protocol.sample_rate, protocol.window):
        raise ValueError(
            f"{protocol.name} embeds {protocol.window_seconds:g} s windows at {protocol.sample_rate} Hz; "
            f"the model's are {cfg.window_samples / cfg.sample_rate:g} s at {cfg.sample_rate} Hz"
        )
    if isinstance(clap, LaionCLAP):
        clap = clap.as_laion_clap_module()  # each protocol rounds (or not) where its tool does
    if exact and rng is None:
        rng = np.random.RandomState(seed)
    elif not exact:
        rng = None

    # laion_clap hook.py L182: data_truncating="fusion" if the model is fused, else "rand_trunc"
    fusion = (
        clap if protocol.long_clips is not None and isinstance(clap, LaionCLAP) and clap.clap.config.audio_config.enable_fusion else None
    )
    longer: dict[int, tuple[np.ndarray, bool]] = {}

    class Longer(Exception):
        """A clip that is one fusion input, not windows: set aside from the window loop."""

    def windowing(i: int, item: Any) -> np.ndarray | Iterator[np.ndarray]:
        name = f"item {i} ({audio.describe(item)})"
        wave = protocol.load(item, sample_rate, name)
        if fusion is not None and wave.shape[0] > protocol.window:
            longer[i] = protocol.fusion_features(fusion.feature_extractor, wave, rng)
            raise Longer
        if protocol.frames == "windows":
            return protocol.hop_windows(wave, batch_size)
        return protocol.windows(wave, rng)

    def set_aside(i: int, err: Exception) -> None:
        if not isinstance(err, Longer):
            raise err

    frames: dict[int, np.ndarray] = {}

    def keep(i: int, emb: np.ndarray) -> None:
        frames[i] = normalize_rows(emb) if protocol.normalize_frames else emb

    # exact: one worker, so that items are loaded, and draw, in order
    enc = Encoder(
        clap, device="auto", precision=precision, batch_size=batch_size, cache=False, progress=progress, workers=1 if exact else 2
    )
    enc.audio(items, window_sink=keep, windowing=windowing, on_error=set_aside if fusion is not None else None)
    if longer and fusion is not None:
        import torch

        idx = sorted(longer)
        with torch.inference_mode():
            for start in range(0, len(idx), batch_size):
                part = idx[start : start + batch_size]
                mels = torch.from_numpy(np.stack([longer[i][0] for i in part]))
                emb = fusion.encode_fusion(mels, torch.tensor([longer[i][1] for i in part]), normalize=True).float().cpu().numpy()
                frames.update({i: emb[k : k + 1] for k, i in enumerate(part)})
    return [frames[i].astype(np.float32) for i in range(len(items))], clap
