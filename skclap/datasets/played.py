"""A "user-played" test set: the 17 instruments played as people play and record them.

This sampler is the evaluation set of the bundled model, and it is written apart from the training
corpus (:mod:`skclap.datasets.instruments`): it takes only that module's public data (the instrument
names, General MIDI programs and drum keys, and where the soundfonts lie) and draws every clip with
its own seed stream, its own table of playing ranges, its own phrases, chords, lengths, levels and
sample rates, and renders it with its own small ``tinysoundfont`` renderer. The training sampler's
code paths are never called, so its choices cannot leak into the test.

What a clip is:

- an instrument, in turn (clip ``i`` plays instrument ``i % 17``), over its **real** range
  (:data:`PLAYING_RANGES`, e.g. piano 21-108, violin 55-103), in a key **region**: the lower,
  middle or upper third of that range (the third that holds the clip's median key);
- a **kind**: a single ``"note"``, a ``"melody"`` (3-8 notes of a scale, mostly steps and small
  leaps, with a rhythm) or a ``"chord"`` (a dyad, a triad or a seventh chord, 2-4 notes; rolled on
  guitar and harp) for the pitched instruments; a single ``"hit"`` or a ``"pattern"`` (3-8 hits on
  an eighth- or sixteenth-note grid at 70-180 BPM, faster where the clip is short) for the four
  drums, each on one of its General MIDI keys (:data:`DRUM_KEYS`: the open and pedal hi hat too);
- notes held 50 ms to 3 s (``"short"`` < 0.3 s or ``"long"`` half the time each, log-uniform within
  the bin, shortened where the clip has no room for them), velocities 25-127, clips of 0.5-10 s
  (log-uniform) with 2-30 % of silence before the playing and 5-20 % after the last release;
- a peak level drawn log-uniformly from 0.03 to 0.95 of full scale, the same for every instrument,
  and a sample rate drawn from 16, 22.05, 44.1 and 48 kHz (the clip is returned at that rate).

Deterministic in the seed, and clip ``i`` of a seed is the same however many clips are drawn.

>>> played = make_played_set(34, seed=0)  # doctest: +SKIP
>>> clf.predict(played.items())  # (waveform, rate) pairs  # doctest: +SKIP
>>> condition_table(played, clf.predict(played.items()))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .instruments import DEFAULT_SOUNDFONT, INSTRUMENTS, soundfont_path

__all__ = [
    "CHORDS",
    "DRUM_KEYS",
    "NA",
    "PLAYING_RANGES",
    "SAMPLE_RATES",
    "SCALES",
    "PlayedClip",
    "PlayedPlan",
    "PlayedSet",
    "combine_tables",
    "condition_table",
    "conditions_frame",
    "key_region",
    "make_played_set",
    "markdown_table",
    "plan_clip",
    "render_plan",
    "silent_keys",
]

#: The seed stream of this sampler: clip ``i`` of seed ``s`` draws from ``SeedSequence([s, _STREAM, i])``.
_STREAM = 0x5E7F1A7ED

#: Sounding MIDI keys (inclusive) that each pitched instrument really plays: the standard orchestral and
#: method-book ranges (alto saxophone and B-flat clarinet at sounding pitch; a concert harp's 47
#: strings; a 4.3-octave marimba; a 61-key keyboard for the synth lead; the church organ's manuals).
PLAYING_RANGES: Mapping[str, tuple[int, int]] = {
    "piano": (21, 108),  # A0-C8
    "organ": (36, 96),  # C2-C7
    "guitar": (40, 84),  # E2-C6, open low E to the 20th fret of the high E
    "harp": (24, 103),  # C1-G7
    "violin": (55, 103),  # G3-G7
    "cello": (36, 84),  # C2-C6
    "trumpet": (54, 86),  # F#3-D6
    "trombone": (40, 77),  # E2-F5 (tenor)
    "saxophone": (49, 81),  # Db3-A5 (alto)
    "clarinet": (50, 94),  # D3-Bb6
    "flute": (60, 96),  # C4-C7
    "marimba": (45, 96),  # A2-C7
    "synth": (36, 96),  # C2-C7
}

#: The General MIDI drum-kit keys a recording of each drum may be: both bass drums, both snares, the
#: closed, pedal and open hi hat, both crash cymbals.
DRUM_KEYS: Mapping[str, tuple[int, ...]] = {
    "kick drum": (35, 36),
    "snare drum": (38, 40),
    "hi hat": (42, 44, 46),
    "crash cymbal": (49, 57),
}

#: The sample rates files come at.
SAMPLE_RATES: tuple[int, ...] = (16000, 22050, 44100, 48000)

#: Scales melodies are drawn in (semitones above the tonic).
SCALES: Mapping[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}

#: Chords by size (semitones above the lowest note): dyads, triads in root position, inversions and an
#: open voicing, seventh chords and a triad with the root doubled an octave up.
CHORDS: Mapping[int, Mapping[str, tuple[int, ...]]] = {
    2: {
        "minor third": (0, 3),
        "major third": (0, 4),
        "fourth": (0, 5),
        "fifth": (0, 7),
        "minor sixth": (0, 8),
        "major sixth": (0, 9),
        "octave": (0, 12),
    },
    3: {
        "major": (0, 4, 7),
        "minor": (0, 3, 7),
        "diminished": (0, 3, 6),
        "augmented": (0, 4, 8),
        "sus2": (0, 2, 7),
        "sus4": (0, 5, 7),
        "major, first inversion": (0, 3, 8),
        "major, second inversion": (0, 5, 9),
        "minor, first inversion": (0, 4, 9),
        "minor, second inversion": (0, 5, 8),
        "major, open": (0, 7, 16),
    },
    4: {
        "major seventh": (0, 4, 7, 11),
        "dominant seventh": (0, 4, 7, 10),
        "minor seventh": (0, 3, 7, 10),
        "half-diminished seventh": (0, 3, 6, 10),
        "diminished seventh": (0, 3, 6, 9),
        "major, doubled root": (0, 4, 7, 12),
        "minor, doubled root": (0, 3, 7, 12),
    },
}

_PITCHED_KINDS = ("note", "melody", "chord")
_DRUM_KINDS = ("hit", "pattern")
_REGIONS = ("low", "middle", "high")
_NOTE_MIN, _NOTE_MAX, _SHORT = 0.05, 3.0, 0.3  # seconds
_CLIP_MIN, _CLIP_MAX = 0.5, 10.0  # seconds
_PEAK_MIN, _PEAK_MAX = 0.03, 0.95  # of full scale
_STRUMMED = ("guitar", "harp")  # chords rolled from the lowest string up
_BY_NAME = {i.name: i for i in INSTRUMENTS}
#: The region and the note length of a drum clip.
NA = "n/a"
#: One note: (onset seconds, held seconds or None for a drum hit, MIDI key, velocity).
Event = tuple[float, float | None, int, int]


@dataclass(frozen=True)
class PlayedPlan:
    """What one clip plays, before it is rendered.

    Attributes
    ----------
    index, seed : int
        The clip's place in its set and the set's seed.
    label : str
        The instrument's name (an entry of :data:`skclap.datasets.instruments.INSTRUMENTS`).
    kind : str
        ``"note"``, ``"melody"`` or ``"chord"`` (pitched); ``"hit"`` or ``"pattern"`` (drums).
    region : str
        ``"low"``, ``"middle"`` or ``"high"``: the third of the instrument's playing range that holds
        the median of the keys played; ``"n/a"`` for drums.
    note_length : str
        ``"short"`` (the median note is held under 0.3 s) or ``"long"``; ``"n/a"`` for drums, which
        ring on after the key is released.
    note_seconds : float
        The median time a note is held (0 for drums).
    clip_seconds : float
        The clip's duration.
    peak : float
        The clip's peak absolute sample value after rendering (0.03-0.95).
    sample_rate : int
        The clip's sample rate in Hz.
    events : tuple of (onset seconds, held seconds or None, MIDI key, velocity)
        The notes, in order of onset; a drum hit is held ``None`` (its key is never released).
    detail : str
        The scale of a melody, the chord's name, the tempo of a drum pattern.
    """

    index: int
    seed: int
    label: str
    kind: str
    region: str
    note_length: str
    note_seconds: float
    clip_seconds: float
    peak: float
    sample_rate: int
    events: tuple[Event, ...]
    detail: str = ""

    @property
    def keys(self) -> tuple[int, ...]:
        """The MIDI keys played, in order of onset."""
        return tuple(e[2] for e in self.events)

    @property
    def n_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


@dataclass(frozen=True, eq=False)
class PlayedClip:
    """One rendered clip: the waveform at its own rate, its label and the conditions it was drawn in.

    Attributes
    ----------
    waveform : numpy.ndarray
        Mono float32 samples at ``sample_rate``.
    sample_rate : int
        Hz.
    label : str
        The instrument's name.
    soundfont : str
        The soundfont it was rendered from.
    plan : PlayedPlan
        What was played (kind, region, note length, clip seconds, peak, events ...).
    """

    waveform: np.ndarray = field(repr=False)
    sample_rate: int
    label: str
    soundfont: str
    plan: PlayedPlan

    @property
    def kind(self) -> str:
        return self.plan.kind

    @property
    def region(self) -> str:
        return self.plan.region

    @property
    def note_length(self) -> str:
        return self.plan.note_length

    @property
    def clip_seconds(self) -> float:
        return self.plan.clip_seconds

    @property
    def peak(self) -> float:
        return self.plan.peak

    @property
    def keys(self) -> tuple[int, ...]:
        return self.plan.keys

    @property
    def item(self) -> tuple[np.ndarray, int]:
        """The ``(waveform, rate)`` pair the estimators take."""
        return self.waveform, self.sample_rate

    @property
    def conditions(self) -> dict[str, Any]:
        """The clip's conditions, one row of :attr:`PlayedSet.conditions`."""
        p = self.plan
        db = 20.0 * np.log10(p.peak)
        return {
            "label": p.label,
            "kind": p.kind,
            "region": p.region,
            "note_length": p.note_length,
            "note_seconds": p.note_seconds,
            "clip_seconds": p.clip_seconds,
            "clip_length": _clip_length_bin(p.clip_seconds),
            "peak": p.peak,
            "peak_dbfs": db,
            "level": _level_bin(db),
            "sample_rate": p.sample_rate,
            "soundfont": self.soundfont,
            "n_notes": len(p.events),
            "keys": p.keys,
            "detail": p.detail,
            "seed": p.seed,
            "index": p.index,
        }


@dataclass
class PlayedSet:
    """Clips of :func:`make_played_set`.

    Attributes
    ----------
    clips : list of PlayedClip
    seed : int
    soundfont : str
    """

    clips: list[PlayedClip]
    seed: int
    soundfont: str

    def __len__(self) -> int:
        return len(self.clips)

    def items(self) -> list[tuple[np.ndarray, int]]:
        """The clips as ``(waveform, rate)`` pairs, the form every estimator takes as ``X``."""
        return [c.item for c in self.clips]

    @property
    def labels(self) -> list[str]:
        """The instrument of each clip."""
        return [c.label for c in self.clips]

    @property
    def conditions(self) -> pd.DataFrame:
        """One row per clip: label, kind, region, note length, clip length, level, sample rate ..."""
        return conditions_frame(self.clips)

    def write_folders(self, directory: str | Path) -> list[Path]:
        """Write one folder per label in GTZAN's layout, ``<directory>/<label>/<label>.000NN.wav``
        (16-bit, each clip at its own sample rate, as recordings come). Returns the paths in order."""
        import soundfile as sf

        counts: dict[str, int] = {}
        paths = []
        for clip in self.clips:
            k = counts[clip.label] = counts.get(clip.label, -1) + 1
            path = Path(directory) / clip.label / f"{clip.label}.{k:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, clip.waveform, clip.sample_rate, subtype="PCM_16")
            paths.append(path)
        return paths


def key_region(instrument: str, key: float) -> str:
    """Which third of ``instrument``'s playing range (:data:`PLAYING_RANGES`) ``key`` lies in.

    Parameters
    ----------
    instrument : str
        A pitched instrument's name.
    key : float
        A MIDI key (a median of keys may fall between two).

    Returns
    -------
    str
        ``"low"``, ``"middle"`` or ``"high"``.
    """
    lo, hi = PLAYING_RANGES[instrument]
    third = (hi - lo + 1) / 3.0
    if key < lo + third:
        return "low"
    return "middle" if key < lo + 2 * third else "high"


def _band(instrument: str, region: str) -> tuple[int, int]:
    """The whole keys (inclusive) of one third of the playing range."""
    lo, hi = PLAYING_RANGES[instrument]
    third = (hi - lo + 1) / 3.0
    j = _REGIONS.index(region)
    return int(np.ceil(lo + j * third)), int(np.ceil(lo + (j + 1) * third)) - 1


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high)))) if high > low else float(low)


def _velocity(rng: np.random.Generator, base: int, spread: float = 8.0) -> int:
    return int(np.clip(round(base + rng.normal(0.0, spread)), 1, 127))


def _clip_length_bin(seconds: float) -> str:
    return "< 1 s" if seconds < 1.0 else ("1-3 s" if seconds < 3.0 else "3-10 s")


def _level_bin(dbfs: float) -> str:
    return "< -20 dBFS" if dbfs < -20.0 else ("-20 to -6 dBFS" if dbfs <= -6.0 else "> -6 dBFS")


def _melody(
    rng: np.random.Generator, instrument: str, region: str, start: float, room: float, wanted: float, base_vel: int, silent: frozenset[int]
) -> tuple[list[Event], str]:
    """3-8 notes of a scale inside one third of the range: steps, some small leaps, a rhythm."""
    scale_name = str(rng.choice(list(SCALES)))
    tonic = int(rng.integers(12))
    b_lo, b_hi = _band(instrument, region)
    keys = [k for k in range(b_lo, b_hi + 1) if (k - tonic) % 12 in SCALES[scale_name] and k not in silent]
    per_octave = len(SCALES[scale_name])
    steps = np.array([0, 1, 2, 3, 4, per_octave])
    step_p = np.array([0.08, 0.45, 0.25, 0.10, 0.07, 0.05])
    idx = int(rng.integers(len(keys)))
    path, direction = [idx], int(rng.choice([-1, 1]))
    k = int(rng.integers(3, 9))
    for _ in range(k - 1):
        size = int(rng.choice(steps, p=step_p))
        last = path[-1] - path[-2] if len(path) > 1 else 0
        if abs(last) >= 3:  # after a leap, turn back (gap fill)
            direction = -int(np.sign(last)) if rng.random() < 0.8 else direction
        elif rng.random() < 0.35:
            direction = -direction
        nxt = idx + direction * size
        if not 0 <= nxt < len(keys):
            direction = -direction
            nxt = idx + direction * size
        if not 0 <= nxt < len(keys):  # a leap wider than the band: one step toward the middle
            nxt = idx + (1 if idx < len(keys) / 2 else -1)
        idx = nxt
        path.append(idx)
    # rhythm: relative lengths; a gap factor (legato 1.0 to detached 1.4) gives the onsets
    rhythm = rng.choice([0.5, 1.0, 1.5, 2.0], size=k, p=[0.2, 0.5, 0.1, 0.2])
    gap = float(rng.uniform(1.0, 1.4))
    unit = float(np.clip(wanted, _NOTE_MIN / rhythm.min(), _NOTE_MAX / rhythm.max()))
    while len(rhythm) > 3 and unit * gap * rhythm.sum() > room:
        rhythm = rhythm[:-1]  # fewer notes fit the clip
    if unit * gap * rhythm.sum() > room:  # shorter notes, down to 50 ms
        unit = room / (gap * rhythm.sum())
        if unit * rhythm.min() < _NOTE_MIN:  # even notes, legato
            rhythm, gap = np.ones(3), 1.0
            unit = room / 3.0
    events: list[Event] = []
    t = start
    for i, r in enumerate(rhythm):
        held = float(np.clip(unit * r, _NOTE_MIN, _NOTE_MAX))
        events.append((t, held, keys[path[i]], _velocity(rng, base_vel)))
        t += held * gap
    return events, f"{scale_name} on {['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][tonic]}"


def _chord(
    rng: np.random.Generator, instrument: str, region: str, start: float, room: float, wanted: float, base_vel: int, silent: frozenset[int]
) -> tuple[list[Event], str]:
    """A dyad, triad or seventh chord whose median key lies in the region, every key in the range."""
    lo, hi = PLAYING_RANGES[instrument]
    b_lo, b_hi = _band(instrument, region)
    for _ in range(50):
        size = int(rng.integers(2, 5))
        name = str(rng.choice(list(CHORDS[size])))
        intervals = CHORDS[size][name]
        middle = float(np.median(intervals))
        first = max(lo, int(np.ceil(b_lo - middle)))
        last = min(hi - intervals[-1], int(np.floor(b_hi - middle)))
        roots = [r for r in range(first, last + 1) if not any(r + iv in silent for iv in intervals)]
        if roots:
            break
    else:  # pragma: no cover - every range is wide enough for every chord
        raise RuntimeError(f"no chord fits the {region} third of the {instrument}")
    root = int(rng.choice(roots))
    roll = float(rng.uniform(0.01, 0.04)) if instrument in _STRUMMED else 0.0
    held = max(_NOTE_MIN, min(wanted, room - roll * (len(intervals) - 1)))
    events: list[Event] = []
    for j, iv in enumerate(intervals):
        onset = start + j * roll + (float(rng.uniform(0.0, 0.008)) if not roll else 0.0)
        events.append((onset, held, root + iv, _velocity(rng, base_vel, 5.0)))
    return sorted(events), name


def _drums(rng: np.random.Generator, instrument: str, kind: str, start: float, room: float, base_vel: int) -> tuple[list[Event], str]:
    """One hit, or 3-8 hits on an eighth- or sixteenth-note grid with accents on the beats."""
    key = int(rng.choice(DRUM_KEYS[instrument]))
    if kind == "hit":
        return [(start, None, key, base_vel)], f"key {key}"
    bpm = float(rng.uniform(70.0, 180.0))
    per_beat = int(rng.choice([2, 4]))
    grid = 60.0 / bpm / per_beat
    k = int(rng.integers(3, 9))
    slots = np.cumsum(np.concatenate([[0], rng.choice([1, 2], size=k - 1, p=[0.7, 0.3])]))
    span = slots[-1] * grid
    if span > 0.9 * room:  # faster, so that the pattern fits the clip
        grid *= 0.9 * room / span
        bpm = 60.0 / grid / per_beat
    events: list[Event] = []
    for s in slots:
        accent = 15 if s % per_beat == 0 else -10
        events.append((start + s * grid, None, key, _velocity(rng, base_vel + accent, 6.0)))
    return events, f"key {key}, {bpm:.0f} BPM, {'eighths' if per_beat == 2 else 'sixteenths'}"


def plan_clip(
    index: int,
    seed: int = 0,
    instrument: str | None = None,
    sample_rates: Sequence[int] = SAMPLE_RATES,
    silent_keys: Iterable[int] = (),
) -> PlayedPlan:
    """Draw what clip ``index`` of seed ``seed`` plays, from its own seed stream.

    Parameters
    ----------
    index : int
        The clip's place in the set; with the seed it fixes every draw.
    seed : int
        The set's seed.
    instrument : str, optional
        The instrument; by default the instruments in turn (``INSTRUMENTS[index % 17]``).
    sample_rates : sequence of int
        The rates a clip's rate is drawn from.
    silent_keys : iterable of int
        Keys of the instrument that the soundfont does not sound (:func:`silent_keys`); none is played.

    Returns
    -------
    PlayedPlan
    """
    if instrument is None:
        instrument = INSTRUMENTS[index % len(INSTRUMENTS)].name
    if instrument not in _BY_NAME:
        raise ValueError(f"unknown instrument {instrument!r}; one of {[i.name for i in INSTRUMENTS]}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM, int(index)]))
    silent = frozenset(int(k) for k in silent_keys)
    drums = _BY_NAME[instrument].drums
    kind = str(rng.choice(_DRUM_KINDS if drums else _PITCHED_KINDS))
    region = NA if drums else str(rng.choice(_REGIONS))
    clip_seconds = _log_uniform(rng, _CLIP_MIN, _CLIP_MAX)
    start = clip_seconds * float(rng.uniform(0.02, 0.3))  # silence before
    room = clip_seconds * (1.0 - float(rng.uniform(0.05, 0.2))) - start  # and after the last release
    peak = float(10.0 ** (rng.uniform(20 * np.log10(_PEAK_MIN), 20 * np.log10(_PEAK_MAX)) / 20.0))
    rate = int(rng.choice(np.asarray(sample_rates)))
    base_vel = int(rng.integers(25, 128))
    # how long notes are held: "short" or "long" half the time each, log-uniform within the bin; the
    # clip's room may shorten it (a long note does not fit a half-second clip)
    wanted = _log_uniform(rng, _NOTE_MIN, _SHORT) if rng.random() < 0.5 else _log_uniform(rng, _SHORT, _NOTE_MAX)
    if drums:
        events, detail = _drums(rng, instrument, kind, start, room, base_vel)
    elif kind == "melody":
        events, detail = _melody(rng, instrument, region, start, room, wanted, base_vel, silent)
    elif kind == "chord":
        events, detail = _chord(rng, instrument, region, start, room, wanted, base_vel, silent)
    else:
        b_lo, b_hi = _band(instrument, region)
        key = int(rng.choice([k for k in range(b_lo, b_hi + 1) if k not in silent]))
        events, detail = [(start, min(wanted, room), key, base_vel)], ""
    if drums:
        note_seconds, note_length = 0.0, NA
    else:
        note_seconds = float(np.median([e[1] for e in events]))
        note_length = "short" if note_seconds < _SHORT else "long"
        region = key_region(instrument, float(np.median([e[2] for e in events])))
    return PlayedPlan(
        index=int(index),
        seed=int(seed),
        label=instrument,
        kind=kind,
        region=region,
        note_length=note_length,
        note_seconds=note_seconds,
        clip_seconds=clip_seconds,
        peak=peak,
        sample_rate=rate,
        events=tuple((float(t), None if d is None else float(d), int(k), int(v)) for t, d, k, v in events),
        detail=detail,
    )


@lru_cache(maxsize=4)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


@lru_cache(maxsize=64)
def silent_keys(instrument: str, soundfont: str = DEFAULT_SOUNDFONT) -> frozenset[int]:
    """Keys of the instrument's playing range that the soundfont does not sound.

    TimGM6mb's saxophone, for one, has no sample for E4 (key 64). Found by pressing every key once
    (0.1 s at 16 kHz); the drums have none.

    Parameters
    ----------
    instrument : str
        An instrument's name.
    soundfont : str
        A name of :data:`skclap.datasets.instruments.SOUNDFONTS` or a path.

    Returns
    -------
    frozenset of int
    """
    inst = _BY_NAME[instrument]
    if inst.drums:
        return frozenset()
    synth = _synth(16000, soundfont, inst.program, False)
    lo, hi = PLAYING_RANGES[instrument]
    quiet = set()
    for key in range(lo, hi + 1):
        synth.noteon(0, key, 100)
        if float(np.abs(np.frombuffer(synth.generate(1600), dtype=np.float32)).max()) < 1e-5:
            quiet.add(key)
        synth.sounds_off()
        synth.generate(160)
    return frozenset(quiet)


@lru_cache(maxsize=16)
def _loaded(rate: int, soundfont: str) -> tuple[Any, int]:
    """A synthesiser at ``rate`` with the soundfont loaded (a compressed ``.sf3`` takes seconds)."""
    try:
        import tinysoundfont
    except ImportError as err:  # pragma: no cover - the instruments extra
        raise ModuleNotFoundError("the user-played set needs 'tinysoundfont': skclap install-extra instruments installs it") from err
    synth = tinysoundfont.Synth(samplerate=rate)
    return synth, synth.sfload(_soundfont_bytes(str(soundfont_path(soundfont))))


def _synth(rate: int, soundfont: str, program: int, drums: bool) -> Any:
    """The synthesiser at ``rate``, silent, with the program on channel 0: whatever an earlier clip
    left sounding is cut and played out first, so that a clip starts as from a fresh synthesiser."""
    synth, sfid = _loaded(rate, str(soundfont))
    synth.sounds_off()
    synth.generate(int(0.05 * rate))
    synth.program_select(0, sfid, 128 if drums else 0, 0 if drums else program, is_drums=drums)
    return synth


def render_plan(plan: PlayedPlan, soundfont: str = DEFAULT_SOUNDFONT, normalise: bool = True) -> np.ndarray:
    """Play a plan through ``tinysoundfont`` at the plan's sample rate.

    Parameters
    ----------
    plan : PlayedPlan
    soundfont : str
        A name of :data:`skclap.datasets.instruments.SOUNDFONTS` or a path to a ``.sf2`` / ``.sf3`` file.
    normalise : bool
        Scale the clip to the plan's peak level (the default); otherwise the synthesiser's own level.

    Returns
    -------
    numpy.ndarray
        Mono float32, ``plan.n_samples`` long.
    """
    rate = plan.sample_rate
    inst = _BY_NAME[plan.label]
    synth = _synth(rate, soundfont, inst.program, inst.drums)
    actions = []  # (sample, order, key, velocity): releases before presses at the same sample
    for onset, held, key, velocity in plan.events:
        actions.append((int(round(onset * rate)), 1, key, velocity))
        if held is not None:
            actions.append((int(round((onset + held) * rate)), 0, key, 0))
    total = plan.n_samples
    parts, pos = [], 0
    for at, press, key, velocity in sorted(actions):
        at = min(at, total)
        if at > pos:
            parts.append(np.frombuffer(synth.generate(at - pos), dtype=np.float32).copy())
            pos = at
        if press:
            synth.noteon(0, key, velocity)
        else:
            synth.noteoff(0, key)
    if total > pos:
        parts.append(np.frombuffer(synth.generate(total - pos), dtype=np.float32).copy())
    wave = np.concatenate(parts).reshape(-1, 2).mean(axis=1).astype(np.float32)
    if normalise:
        top = float(np.abs(wave).max())
        if top <= 0.0:
            raise RuntimeError(f"{soundfont} played nothing for {plan.label} keys {plan.keys}")
        wave = (wave * np.float32(plan.peak / top)).astype(np.float32)
    return wave


def make_played_set(
    n_clips: int,
    seed: int = 0,
    instruments: Sequence[str] | None = None,
    soundfont: str = DEFAULT_SOUNDFONT,
    sample_rates: Sequence[int] = SAMPLE_RATES,
) -> PlayedSet:
    """Render ``n_clips`` user-played clips, the instruments in turn.

    Parameters
    ----------
    n_clips : int
        How many clips; a multiple of the number of instruments balances the classes (340: 20 each).
    seed : int
        Every draw follows from it; clip ``i`` does not depend on ``n_clips``.
    instruments : sequence of str, optional
        The instruments played in turn (default: all 17 of ``INSTRUMENTS``).
    soundfont : str
        A name of :data:`skclap.datasets.instruments.SOUNDFONTS` (``"TimGM6mb"`` by default) or a path.
    sample_rates : sequence of int
        The rates clips come at (16, 22.05, 44.1 and 48 kHz by default).

    Returns
    -------
    PlayedSet
        ``.clips``, ``.items()`` (``(waveform, rate)`` pairs), ``.labels`` and ``.conditions``.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be at least 1; got {n_clips}")
    names = list(instruments) if instruments is not None else [i.name for i in INSTRUMENTS]
    clips = []
    for i in range(int(n_clips)):
        name = names[i % len(names)]
        plan = plan_clip(i, seed, name, sample_rates, silent_keys(name, str(soundfont)))
        wave = render_plan(plan, soundfont)
        clips.append(PlayedClip(waveform=wave, sample_rate=plan.sample_rate, label=plan.label, soundfont=str(soundfont), plan=plan))
    return PlayedSet(clips=clips, seed=int(seed), soundfont=str(soundfont))


def conditions_frame(clips: PlayedSet | Iterable[PlayedClip]) -> pd.DataFrame:
    """One row of conditions per clip (see :attr:`PlayedClip.conditions`)."""
    if isinstance(clips, PlayedSet):
        clips = clips.clips
    return pd.DataFrame([c.conditions for c in clips])


#: The rows of :func:`condition_table`: (condition, column of the conditions frame, values in order).
_TABLE_ROWS: tuple[tuple[str, str, tuple[Any, ...] | None], ...] = (
    ("kind", "kind", _PITCHED_KINDS + _DRUM_KINDS),
    ("region", "region", _REGIONS),
    ("note length", "note_length", ("short", "long")),
    ("clip length", "clip_length", ("< 1 s", "1-3 s", "3-10 s")),
    ("peak level", "level", ("< -20 dBFS", "-20 to -6 dBFS", "> -6 dBFS")),
    ("sample rate", "sample_rate", None),
    ("soundfont", "soundfont", None),
    ("instrument", "label", None),
)


def condition_table(
    clips: PlayedSet | Iterable[PlayedClip] | pd.DataFrame, predicted: Sequence[Any], n_labels: int | None = None
) -> pd.DataFrame:
    """Accuracy overall and per condition, with the number of clips and chance on each row.

    Parameters
    ----------
    clips : PlayedSet, sequence of PlayedClip, or DataFrame
        The clips, or their conditions frame (:attr:`PlayedSet.conditions`: a ``label`` column and
        the condition columns).
    predicted : sequence
        One predicted label per clip, in the clips' order.
    n_labels : int, optional
        How many labels the classifier chose among (chance is ``1 / n_labels``); by default the
        number of instruments (17).

    Returns
    -------
    pandas.DataFrame
        Columns ``condition``, ``value``, ``n``, ``correct``, ``accuracy``, ``chance``. Rows: overall;
        kind; key region and note length (pitched clips; drums have neither); clip length
        (< 1 s, 1-3 s, 3-10 s); peak level (< -20, -20 to -6, > -6 dBFS); sample rate; soundfont
        (when there are several); instrument.
    """
    frame = clips if isinstance(clips, pd.DataFrame) else conditions_frame(clips)
    predicted = list(predicted)
    if len(predicted) != len(frame):
        raise ValueError(f"{len(predicted)} predictions for {len(frame)} clips")
    frame = frame.reset_index(drop=True).assign(correct=np.asarray([p == y for p, y in zip(predicted, frame["label"])], dtype=bool))
    chance = 1.0 / (n_labels or len(INSTRUMENTS))
    rows = [{"condition": "overall", "value": "all", "n": len(frame), "correct": int(frame["correct"].sum())}]
    for condition, column, values in _TABLE_ROWS:
        present = list(pd.unique(frame[column]))
        if condition == "soundfont" and len(present) < 2:
            continue
        if values is None:
            order = [i.name for i in INSTRUMENTS] if column == "label" else sorted(present)
            values = tuple(v for v in order if v in present) + tuple(v for v in present if v not in order)
        for value in values:
            hit = frame.loc[frame[column] == value, "correct"]
            if len(hit):
                shown = f"{value} Hz" if column == "sample_rate" else str(value)
                rows.append({"condition": condition, "value": shown, "n": len(hit), "correct": int(hit.sum())})
    table = pd.DataFrame(rows)
    table["accuracy"] = table["correct"] / table["n"]
    table["chance"] = chance
    return table


def combine_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-seed :func:`condition_table` results as mean and standard deviation over the seeds.

    Parameters
    ----------
    tables : sequence of DataFrame
        One condition table per seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``condition``, ``value``, ``n`` (clips, all seeds together), ``mean``, ``std``
        (sample standard deviation over the seeds, 0 for one seed), ``per_seed`` (the accuracies),
        ``chance``; rows in the first table's order.
    """
    keys = ["condition", "value"]
    stacked = pd.concat([t.assign(_seed=s) for s, t in enumerate(tables)], ignore_index=True)
    order = pd.concat([t[keys] for t in tables]).drop_duplicates()
    rows = []
    for _, key in order.iterrows():
        part = stacked[(stacked["condition"] == key["condition"]) & (stacked["value"] == key["value"])]
        acc = part["accuracy"].to_numpy(float)
        rows.append(
            {
                "condition": key["condition"],
                "value": key["value"],
                "n": int(part["n"].sum()),
                "mean": float(acc.mean()),
                "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "per_seed": tuple(float(a) for a in acc),
                "chance": float(part["chance"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """A :func:`condition_table` or :func:`combine_tables` result as a markdown table (percentages)."""
    combined = "mean" in table.columns
    head = (
        "| condition | value | n | accuracy | chance |"
        if not combined
        else "| condition | value | n, all seeds | accuracy, mean ± std | per seed | chance |"
    )
    lines = [head, "|" + "---|" * (5 if not combined else 6)]
    for row in table.itertuples(index=False):
        if combined:
            seeds = " / ".join(f"{100 * a:.1f}" for a in row.per_seed)
            lines.append(
                f"| {row.condition} | {row.value} | {row.n} | {100 * row.mean:.1f} % ± {100 * row.std:.1f} % | {seeds} | {100 * row.chance:.1f} % |"
            )
        else:
            lines.append(f"| {row.condition} | {row.value} | {row.n} | {100 * row.accuracy:.1f} % | {100 * row.chance:.1f} % |")
    return "\n".join(lines)
