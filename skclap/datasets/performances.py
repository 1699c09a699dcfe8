"""A captioned corpus of instruments played as people play them: any key of an instrument's compass,
single notes, repeated notes, melodies and chords (hits and patterns on the drums), notes from a few
tens of milliseconds to seconds long, struck before the clip or within it, at any level, rendered at
the common sample rates and resampled.

Each clip is one window as a model hears a longer recording: the notes may begin before it and ring
past it. Captions say what is true of it: the instrument, "low" or "high" only when every key lies in
the instrument's extreme register (:attr:`~skclap.datasets.instruments.Instrument.low` / ``.high``),
"soft" or "loud" from how hard the notes were struck, and what was played ("a chord", "a melody",
"a long note", ...). The level of a clip is drawn apart from all of that, so loudness names no
instrument. Deterministic in the seed; rendered waveforms can be cached on disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..audio import resample
from .corpus import Clip
from .instruments import (
    _ARTICULATION,
    _BY_NAME,
    _DRUM_ARTICULATION,
    DEFAULT_SOUNDFONT,
    INSTRUMENTS,
    Instrument,
    InstrumentCorpus,
    _renderer,
    cached,
    caption,
    checked_soundfonts,
    recording_conditions,
    soundfont_presets,
    sounding_keys,
)

__all__ = ["KINDS", "PerformanceCorpus", "Phrase", "make_performance_corpus", "plan_phrase", "trained_presets"]

#: What a clip plays, with how often it is drawn: pitched instruments, then drums.
KINDS: Mapping[bool, Mapping[str, float]] = {
    True: {"note": 0.2, "repeated": 0.1, "melody": 0.35, "chord": 0.35},
    False: {"hit": 0.4, "pattern": 0.6},
}
#: The share of clips played on the instrument's General MIDI preset; the rest draw one of its
#: variants the soundfont holds (:attr:`~skclap.datasets.instruments.Instrument.variants`).
DEFAULT_PRESET_SHARE = 0.5
#: The rates clips are rendered at before they are resampled to the corpus's rate.
RENDER_RATES = (16000, 22050, 32000, 44100, 48000)

#: How captions say what was played ({adj}: the attributes, ending with a space when not empty).
PHRASES: Mapping[str, tuple[str, ...]] = {
    **_ARTICULATION,
    "note": ("a {adj}note", "one {adj}note", "a single {adj}note"),
    "melody": ("a {adj}sequence of notes", "a few {adj}notes", "several {adj}notes", "a {adj}melody"),
    "chord": ("a {adj}chord", "{adj}chords", "a few {adj}notes played as one chord", "several {adj}notes in a chord"),
    "hit": _DRUM_ARTICULATION["short"],
    "pattern": ("a {adj}rhythm", "a {adj}beat", "a {adj}pattern", *_DRUM_ARTICULATION["repeated"]),
}
# scale steps (semitones) melodies walk on, and chord shapes (semitones above the lowest note)
_SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9))
_CHORDS = (
    (0, 4, 7),
    (0, 3, 7),
    (0, 4, 7, 10),
    (0, 3, 7, 10),
    (0, 4, 7, 11),
    (0, 7),
    (0, 4),
    (0, 3),
    (0, 5),
    (0, 12),
    (0, 7, 12),
    (0, 3, 8),
)
_VERSION = 4  # bump whenever what a seed renders changes (part of the disk-cache key)


@dataclass(frozen=True)
class Phrase:
    """What one clip plays: ``events`` (onset s, duration s, MIDI key, velocity) relative to the
    rendering's start, the ``lead`` (s) rendered before the clip begins, the rate it is rendered at,
    its peak level (dBFS), its detuning (cents) and the (bank, program) preset that plays it."""

    kind: str
    events: tuple[tuple[float, float, int, int], ...]
    lead: float
    rate: int
    peak_db: float
    cents: float
    preset: tuple[int, int]

    @property
    def keys(self) -> list[int]:
        return [e[2] for e in self.events]


@lru_cache(maxsize=256)
def _sounding(name: str, soundfont: str, preset: tuple[int, int]) -> tuple[int, ...]:
    """The keys of a pitched instrument's compass, or of a drum's kit keys, that ``preset`` of
    ``soundfont`` sounds (sample zones can leave gaps at the ends of a compass, and a kit can lack a
    key the standard kit has)."""
    inst = _BY_NAME[name]
    heard = sounding_keys(inst, inst.keys, 16000, soundfont, preset)
    return tuple(k for k in inst.keys if k in heard)


def trained_presets(instrument: str, soundfont: str) -> tuple[tuple[int, int], ...]:
    """The presets (bank, program) the corpus plays ``instrument`` on from ``soundfont``: its General
    MIDI one, then each of its variants the soundfont holds that sounds on some of its keys."""
    inst = _BY_NAME[instrument]
    return (inst.preset, *(p for p in soundfont_presets(soundfont)[instrument] if p != inst.preset and _sounding(instrument, soundfont, p)))


def _choose_preset(inst: Instrument, rng: np.random.Generator, soundfont: str) -> tuple[int, int]:
    variants = trained_presets(inst.name, soundfont)[1:]
    if not variants or rng.random() < DEFAULT_PRESET_SHARE:
        return inst.preset
    return variants[int(rng.integers(len(variants)))]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def plan_phrase(inst: Instrument, seed: int, seconds: float, soundfont: str = DEFAULT_SOUNDFONT) -> Phrase:
    """The phrase clip ``seed`` of ``inst`` plays in a window of ``seconds`` (deterministic)."""
    rng = np.random.default_rng([seed, 7])
    kinds = KINDS[inst.pitched]
    kind = str(rng.choice(list(kinds), p=np.asarray(list(kinds.values())) / sum(kinds.values())))
    lead = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.05, 1.5))  # notes struck before the clip
    start = lead + float(rng.uniform(-min(lead, 0.3 * seconds), 0.5 * seconds))
    if inst.drums:  # a kick or a closed hi hat dies away fast: one struck well before the clip would leave it silent
        start = max(start, lead - 0.02)
    base = int(rng.integers(20, 128))
    preset = _choose_preset(inst, np.random.default_rng([seed, 9]), soundfont)

    def velocity() -> int:
        return int(np.clip(base + rng.integers(-15, 16), 1, 127))

    events: list[tuple[float, float, int, int]] = []
    if inst.drums:  # any of the drum's kit keys; a pattern sometimes moves to another (closed and open hi hat)
        kit = _sounding(inst.name, soundfont, preset)
        key = int(rng.choice(kit))
        if kind == "hit":
            events.append((start, 0.3, key, velocity()))
        else:
            beat = 60.0 / float(rng.uniform(60, 180)) / float(rng.choice([1, 2, 4]))
            t = start
            for _ in range(int(rng.integers(2, 9))):
                hit = int(rng.choice(kit)) if rng.random() < 0.3 else key
                events.append((t, min(0.3, beat), hit, velocity()))
                t += beat * float(rng.choice([1, 1, 1, 2]))
    else:
        keys = _sounding(inst.name, soundfont, preset)
        lo, hi = keys[0], keys[-1]
        if kind in ("note", "repeated"):
            key = int(rng.integers(lo, hi + 1))
            if kind == "note":
                events.append((start, _log_uniform(rng, 0.05, 3.0), key, velocity()))
            else:
                gap = _log_uniform(rng, 0.1, 0.5)
                for k in range(int(rng.integers(2, 7))):
                    events.append((start + k * gap, gap * float(rng.uniform(0.3, 0.95)), key, velocity()))
        elif kind == "melody":
            scale = _SCALES[int(rng.integers(len(_SCALES)))]
            steps = [o + 12 * octave for octave in range(-4, 5) for o in scale]
            tonic = int(rng.integers(lo, hi + 1))
            degree = steps.index(0)
            t, legato = start, float(rng.uniform(0.4, 1.0))
            for _ in range(int(rng.integers(2, 9))):
                ioi = _log_uniform(rng, 0.08, 0.6)
                key = int(np.clip(tonic + steps[degree], lo, hi))
                events.append((t, ioi * legato, key, velocity()))
                t += ioi
                degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2, -3, 3, 4, -4]), 0, len(steps) - 1))
        else:  # chord: a shape on a root, spread a little like a strum, sometimes struck twice
            shape = _CHORDS[int(rng.integers(len(_CHORDS)))]
            root = int(rng.integers(lo, max(lo, hi - shape[-1]) + 1))
            notes = sorted({min(root + s, hi) for s in shape})
            length = _log_uniform(rng, 0.1, 3.0)
            strum = float(rng.uniform(0, 0.04))
            for again in range(1 if rng.random() < 0.7 else 2):
                t0 = start + again * length * 1.05
                for j, key in enumerate(notes):
                    events.append((t0 + j * strum, length, key, velocity()))
    return Phrase(
        kind=kind,
        events=tuple(events),
        lead=lead,
        rate=int(rng.choice(RENDER_RATES)),
        peak_db=float(rng.uniform(-36.0, -0.5)),
        cents=float(rng.uniform(-20, 20)) if inst.pitched else 0.0,
        preset=preset,
    )


def _register(inst: Instrument, keys: Sequence[int]) -> str | None:
    if inst.drums:
        return None
    if all(k <= inst.low[1] for k in keys):
        return "low"
    if all(k >= inst.high[0] for k in keys):
        return "high"
    return None


def phrase_attributes(inst: Instrument, phrase: Phrase, seconds: float) -> dict[str, str]:
    """What a caption may say of the phrase: dynamics from the strikes, a register when all its keys
    lie in one extreme register, and what was played (a note's length: short, long)."""
    attrs: dict[str, str] = {}
    velocity = float(np.mean([e[3] for e in phrase.events]))
    if velocity < 55:
        attrs["dynamics"] = "soft"
    elif velocity > 100:
        attrs["dynamics"] = "loud"
    register = _register(inst, phrase.keys)
    if register:
        attrs["pitch"] = register
    articulation = phrase.kind
    if phrase.kind == "note":
        duration = phrase.events[0][1]
        articulation = "short" if duration < 0.3 else "long" if duration > 0.8 else "note"
    attrs["articulation"] = articulation
    return attrs


@dataclass
class PerformanceCorpus(InstrumentCorpus):
    """Clips of :func:`make_performance_corpus`: each clip's phrase is planned from its seed and
    soundfont (:func:`plan_phrase`), rendered at its own rate and resampled."""

    def phrase(self, i: int) -> Phrase:
        return plan_phrase(_BY_NAME[self.clips[i].family], self.clips[i].seed, self.seconds, self.soundfont(i))

    def render(self, i: int) -> np.ndarray:
        inst, phrase = _BY_NAME[self.clips[i].family], self.phrase(i)
        rate = phrase.rate
        total = phrase.lead + self.seconds
        x = _renderer(rate, self.soundfont(i)).render(inst, phrase.events, total, phrase.cents, phrase.preset).astype(np.float64)
        x = x[int(round(phrase.lead * rate)) :]
        x = resample(x.astype(np.float32), rate, self.sample_rate).astype(np.float64)
        n = int(round(self.seconds * self.sample_rate))
        x = np.pad(x, (0, max(0, n - len(x))))[:n]
        conditions = np.random.default_rng([self.clips[i].seed, 8])
        if self.augment:
            x = recording_conditions(x, self.sample_rate, conditions)
        peak = np.abs(x).max()
        if peak > 0:
            x *= 10 ** (phrase.peak_db / 20) / peak
        x += conditions.standard_normal(len(x)) * 10 ** (-80 / 20)  # a faint noise floor
        return np.clip(x, -1, 1).astype(np.float32)


def make_performance_corpus(
    n_clips: int,
    seed: int = 0,
    instruments: Sequence[str] | None = None,
    captions_per_clip: int = 3,
    sample_rate: int = 16000,
    seconds: float = 1.0,
    keep: float = 0.7,
    cache_dir: str | os.PathLike | None = None,
    soundfonts: Sequence[str] = (DEFAULT_SOUNDFONT,),
    augment: bool = False,
) -> PerformanceCorpus:
    """``n_clips`` clips of ``seconds`` spread evenly over ``instruments`` (default all of
    :data:`~skclap.datasets.instruments.INSTRUMENTS`) in a random order, deterministic in ``seed``:
    what each plays is :func:`plan_phrase`'s, from one of ``soundfonts`` chosen by the clip's seed;
    with ``augment``, in recording conditions of its own. ``cache_dir``: as
    :func:`~skclap.datasets.make_instrument_corpus`."""
    fonts = checked_soundfonts(soundfonts)
    names = list(instruments) if instruments is not None else [i.name for i in INSTRUMENTS]
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"unknown instruments {unknown}; choose from {sorted(_BY_NAME)}")
    rng = np.random.default_rng([seed, 6])
    clips = []
    for i in rng.permutation(n_clips):
        inst = _BY_NAME[names[i % len(names)]]
        clip_seed = int(rng.integers(2**31))
        phrase = plan_phrase(inst, clip_seed, seconds, fonts[clip_seed % len(fonts)])
        attrs = phrase_attributes(inst, phrase, seconds)
        captions = [caption(inst, attrs, rng, keep, PHRASES) for _ in range(captions_per_clip)]
        clips.append(Clip(inst.name, attrs, captions, clip_seed))
    corpus = PerformanceCorpus(clips, sample_rate, seconds, soundfonts=fonts, augment=augment)
    return cached(corpus, cache_dir, {"renderer": _VERSION})
