"""Audio input: decode, downmix, resample and cut into fixed windows.

Pure functions, numpy in and numpy out. Every waveform that reaches the model passed through
:func:`prepare`, so every input error is raised here, with the offending item named.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
import soxr

from .exceptions import AudioError

__all__ = [
    "PADDINGS",
    "as_waveform",
    "check_sample_rate",
    "describe",
    "load",
    "prepare",
    "quantize_int16",
    "resample",
    "stream_windows",
    "to_mono",
    "window_spans",
    "windows",
]

#: Files longer than this are read, resampled and cut into windows block by block, so memory does
#: not grow with the recording's length.
STREAM_SECONDS = 120.0

#: A 2-D array is read as (channels, samples) or (samples, channels): the shorter axis holds the
#: channels, and it may not be longer than this.
MAX_CHANNELS = 64


#: The lowest sample rate taken, in Hz: below it a rate was surely written in kHz (``16`` for 16000).
MIN_SAMPLE_RATE = 1000


def check_sample_rate(rate: Any, what: str = "sample_rate") -> None:
    """Refuse a rate that is surely in kHz: ``sample_rate=16`` would make every second of audio last
    a thousand, and embed that."""
    if isinstance(rate, Real) and not isinstance(rate, bool) and 0 < float(rate) < MIN_SAMPLE_RATE:
        fix = f"{what}={round(float(rate) * 1000)}" if what == "sample_rate" else f"(array, {round(float(rate) * 1000)})"
        raise AudioError(f"{what} {rate:g} is below {MIN_SAMPLE_RATE} Hz: sample rates are in Hz, not kHz; for {rate:g} kHz write {fix}")


def describe(item: Any) -> str:
    """A short human name for an input item, used in error messages."""
    if isinstance(item, (str, os.PathLike)):
        return repr(os.fspath(item))
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape}"
    if isinstance(item, tuple) and len(item) == 2:
        return f"({describe(item[0])}, {item[1]!r})"
    if isinstance(item, Mapping):
        return f"mapping with keys {sorted(map(str, item))}"
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of a 2-D array; 1-D arrays pass through.

    The shorter axis of a 2-D array is taken as the channel axis (soundfile gives (samples, channels),
    torch-style code (channels, samples)). Channels are averaged, never concatenated.
    """
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise AudioError(f"a waveform must be 1-D (samples) or 2-D (channels x samples); got shape {x.shape}")
    channel_axis = 0 if x.shape[0] <= x.shape[1] else 1
    if x.shape[channel_axis] > MAX_CHANNELS:
        raise AudioError(
            f"a 2-D waveform is read as channels x samples, but shape {x.shape} has more than "
            f"{MAX_CHANNELS} channels; pass one 1-D waveform per clip"
        )
    return x.mean(axis=channel_axis)


def as_waveform(x: Any) -> np.ndarray:
    """Validate a raw waveform and return it as a mono float32 array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise AudioError(f"a waveform must be numeric; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == bool:
        raise AudioError(f"a waveform must be real-valued; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        # PCM integers: scale to [-1, 1) as soundfile does.
        arr = arr.astype(np.float32) / float(2 ** (8 * arr.dtype.itemsize - 1))
    if arr.ndim == 0 or arr.ndim > 2:
        raise AudioError(f"a waveform must be 1-D (samples) or 2-D (channels x samples); got shape {arr.shape}")
    if arr.size == 0:
        raise AudioError(f"the waveform is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise AudioError("the waveform contains NaN or infinite values")
    return np.ascontiguousarray(to_mono(arr), dtype=np.float32)


def load(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file (wav, flac, ogg, mp3, ...) to a mono float32 waveform.

    Returns ``(waveform, rate)``; with ``sample_rate`` the waveform is resampled to it.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: {os.fspath(path)!r}")
    if p.is_dir():
        raise AudioError(f"{os.fspath(path)!r} is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"audio file {os.fspath(path)!r} is empty (0 bytes)")
    try:
        data, rate = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"audio file {os.fspath(path)!r} could not be decoded: {err}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {os.fspath(path)!r} contains no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"audio file {os.fspath(path)!r} contains NaN or infinite samples")
    wave = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    if sample_rate is not None:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    return wave, int(rate)


def resampled_length(n: int, orig_rate: int, target_rate: int) -> int:
    """Samples after resampling, as librosa counts them (laion_clap's loader): ``ceil(n * ratio)``
    with the ratio in floating point. torchaudio (msclap's loader) gives the same count unless
    ``n * ratio`` is whole; soxr alone gives one fewer whenever it is not."""
    return int(math.ceil(n * (target_rate / orig_rate)))


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D waveform with soxr (high quality); identity when the rates agree. The length
    is :func:`resampled_length`, a missing last sample filled with zero as librosa fills it."""
    if orig_rate <= 0 or target_rate <= 0:
        raise AudioError(f"sample rates must be positive; got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return x
    out = soxr.resample(x, orig_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(_fit_length(out, resampled_length(x.shape[0], orig_rate, target_rate)), dtype=np.float32)


def _fit_length(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` cut to ``size`` samples, or filled up to it with zeros."""
    size = max(size, 0)
    return x[:size] if x.shape[0] >= size else np.concatenate([x, np.zeros(size - x.shape[0], dtype=x.dtype)])


def _split_item(item: Any, sample_rate: int | None) -> tuple[Any, int | None]:
    """Separate an item into (payload, its rate): a path, an array, ``(array, rate)`` or
    ``{"array": ..., "sampling_rate": ...}`` (the Hugging Face datasets audio form)."""
    if isinstance(item, Mapping):
        if "array" in item:
            return item["array"], item.get("sampling_rate", sample_rate)
        if "path" in item:
            return item["path"], None
        raise AudioError(f"a mapping item needs an 'array' (and 'sampling_rate') or a 'path'; got keys {sorted(item)}")
    if isinstance(item, tuple) and len(item) == 2 and np.isscalar(item[1]):
        rate: Any = item[1]
        if isinstance(rate, (str, bytes, bool, np.bool_)) or not float(rate).is_integer():
            raise AudioError(
                f"an (array, rate) pair needs the rate as a whole number of Hz; got {rate!r} "
                f"({type(rate).__name__}): write (array, {16000 if isinstance(rate, (str, bytes)) else 'int(rate)'})"
            )
        check_sample_rate(rate, "an (array, rate) pair's rate")
        return item[0], int(rate)
    return item, sample_rate


def prepare(item: Any, target_rate: int, sample_rate: int | None = None, name: str | None = None) -> np.ndarray:
    """Turn one input item into a mono float32 waveform at ``target_rate``.

    ``item`` is a path, a waveform (1-D, or 2-D multichannel) sampled at ``sample_rate``, an
    ``(array, rate)`` pair or a ``{"array", "sampling_rate"}`` mapping. Errors name the item as ``name``.
    """
    label = name or describe(item)
    try:
        payload, rate = _split_item(item, sample_rate)
        if isinstance(payload, (str, os.PathLike)):
            wave, _ = load(payload, target_rate)
            return wave
        if payload is None:
            raise AudioError("missing value (None/NaN) where audio was expected")
        if isinstance(payload, float) and math.isnan(payload):
            raise AudioError("missing value (NaN) where audio was expected")
        wave = as_waveform(payload)
        if rate is None:
            raise AudioError("raw waveforms need their sample rate: pass sample_rate=..., or give (array, rate) pairs")
        check_sample_rate(rate)
        if len(wave) * target_rate < int(rate):  # less than one sample at the target rate
            raise AudioError(
                f"{len(wave)} samples at {int(rate)} Hz last {len(wave) / int(rate):.3g} s, less than one sample at "
                f"{target_rate} Hz: is sample_rate={int(rate)} right?"
            )
        return resample(wave, int(rate), target_rate)
    except FileNotFoundError:
        raise
    except AudioError as err:
        msg = str(err)
        if label not in msg:
            msg = f"{label}: {msg}"
        raise AudioError(msg) from None


#: How a clip shorter than one window fills it: ``"repeat"`` tiles it and crops the last copy (msclap);
#: ``"repeatpad"`` repeats it a whole number of times and pads the rest with zeros (laion_clap and
#: transformers' ``ClapFeatureExtractor``).
PADDINGS = ("repeat", "repeatpad")


_Number = TypeVar("_Number", int, float)


def window_spans(n: _Number, length: _Number, count: int | None = None) -> list[tuple[_Number, _Number]]:
    """Where an item's fixed windows lie: ``(start, end)`` of each, in samples or in seconds.

    An item no longer than a window is one window over all of it, ``(0, n)`` (filled up to ``length``
    by padding). A longer one is cut into ``ceil(n / length)`` consecutive windows, the last aligned to
    the end of the item so that no padding is invented. ``count`` overrides the number of windows: a
    caller that counted them on the resampled audio gives that count for times in seconds.
    """
    if n <= length:
        return [(0 * length, n)] * (1 if count is None else count)
    last = n - length
    starts = (min(k * length, last) for k in range(int(-(-n // length)) if count is None else count))
    return [(a, a + length) for a in starts]


def _pad(piece: np.ndarray, length: int, padding: str) -> np.ndarray:
    """A window's samples filled up to ``length`` as ``padding`` says (:data:`PADDINGS`)."""
    n = piece.shape[0]
    if n == length:
        return piece
    if padding == "repeatpad":
        out = np.zeros(length, dtype=piece.dtype)
        whole = np.tile(piece, length // n)
        out[: whole.shape[0]] = whole
        return out
    return np.tile(piece, -(-length // n))[:length]


def windows(wave: np.ndarray, length: int, padding: str = "repeat") -> np.ndarray:
    """Cut a 1-D waveform into fixed windows of ``length`` samples, deterministically.

    The windows lie where :func:`window_spans` puts them; a clip shorter than the window fills it as
    ``padding`` says (:data:`PADDINGS`). Returns an array of shape ``(n_windows, length)``.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    n = wave.shape[0]
    if n == 0:
        raise AudioError("the waveform is empty")
    return np.stack([_pad(wave[a:b], length, padding) for a, b in window_spans(n, length)])


def quantize_int16(wave: np.ndarray) -> np.ndarray:
    """Round a waveform through 16-bit PCM as laion_clap does before embedding a file or an array:
    clip to [-1, 1], scale by 32767, truncate to an integer, scale back."""
    pcm = (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)
    return (pcm / 32767.0).astype(np.float32)


def long_file_seconds(item: Any) -> float | None:
    """The duration of an audio file longer than :data:`STREAM_SECONDS`, else None (also for
    anything that is not a readable file path: :func:`prepare` reports those)."""
    if not isinstance(item, (str, os.PathLike)):
        return None
    try:
        info = sf.info(os.fspath(item))
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError):
        return None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    return seconds if seconds > STREAM_SECONDS else None


def stream_windows(
    path: str | os.PathLike, target_rate: int, length: int, block: int = 16, name: str | None = None, padding: str = "repeat"
):
    """Yield the windows of a long audio file in arrays of up to ``block`` windows.

    The file is decoded and resampled (soxr's streaming resampler, identical output) a block at a
    time; the windows equal ``windows(load(path, target_rate)[0], length)``: those of
    :func:`window_spans`, consecutive, the last one aligned to the end of the recording. Memory stays
    bounded by ``block`` windows.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    label = name or describe(path)
    try:
        f = sf.SoundFile(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{label}: audio file could not be decoded: {err}") from None
    with f:
        rate = f.samplerate
        stream = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ") if rate != target_rate else None
        step = max(1, math.ceil(block * length * rate / target_rate))
        pending = np.zeros(0, dtype=np.float32)  # resampled samples not yet in a window
        last = np.zeros(0, dtype=np.float32)  # the last full window given out
        given = 0  # full windows given out
        total = 0
        read = 0  # samples read from the file
        while True:
            try:
                data = f.read(step, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{label}: audio file could not be decoded: {err}") from None
            end = data.shape[0] < step
            if not np.all(np.isfinite(data)):
                raise AudioError(f"{label}: audio file contains NaN or infinite samples")
            read += data.shape[0]
            mono = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=end)
                if end:  # the length resample() gives the whole recording
                    mono = _fit_length(mono, resampled_length(read, rate, target_rate) - total)
            total += mono.shape[0]
            pending = np.concatenate([pending, mono])
            full = pending.shape[0] // length
            if full:
                out = pending[: full * length].reshape(full, length)
                last = out[-1].copy()
                given += full
                pending = pending[full * length :]
                yield out
            if end:
                break
    if total == 0:
        raise AudioError(f"{label}: audio file contains no samples")
    # the windows still to give out (the end-aligned last one, or the one padded window of a short
    # recording) lie within the last full window and the samples after it
    tail = np.concatenate([last, pending])
    offset = total - tail.shape[0]
    rest = window_spans(total, length)[given:]
    if rest:
        yield np.stack([_pad(tail[a - offset : b - offset], length, padding) for a, b in rest])
