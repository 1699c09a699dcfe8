"""A captioned corpus of real sampled instruments, rendered offline from General MIDI soundfonts.

Notes of real recorded instrument samples, rendered by the PyPI package ``tinysoundfont`` from a
soundfont (:data:`SOUNDFONTS`: ``TimGM6mb.sf2``, shipped by the PyPI package ``pretty-midi``, and two
that Debian packages install), with describable attributes: pitch register (low/high), dynamics
(soft/loud) and articulation (a short note, a long note, repeated notes). Each clip gets several
captions such as "a soft low cello" or "a trumpet playing a short high note". With ``augment``, each
clip is also played as a recording might have caught it: detuned a little, filtered, in a room, over
noise. Deterministic in the seed; rendered waveforms can be cached on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .corpus import CaptionedCorpus, Clip, draw_clips

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_SOUNDFONT",
    "INSTRUMENTS",
    "SOUNDFONTS",
    "Instrument",
    "InstrumentCorpus",
    "attribute_classes",
    "class_parts",
    "instrument_prompts",
    "make_instrument_corpus",
    "note_key",
    "render_events",
    "render_note",
    "soundfont_path",
    "soundfont_presets",
    "value_prompts",
    "value_words",
]


@dataclass(frozen=True)
class Instrument:
    name: str  # the class word(s), e.g. "cello"
    nouns: tuple[str, ...]  # ways a caption names it
    family: str  # the General MIDI family
    program: int  # General MIDI program (melodic) or key of the drum kit (drums)
    # MIDI keys (inclusive) of the low and high registers: "low" lies at or below about A#3 (58) and
    # "high" at or above about F4 (65) for every instrument, so that the words mean one thing
    low: tuple[int, int] = (0, 0)
    high: tuple[int, int] = (0, 0)
    drums: bool = False
    # MIDI keys (inclusive) the instrument is played over: its usual orchestral or keyboard compass
    compass: tuple[int, int] = (0, 0)
    # a drum's General MIDI kit keys (``program`` first): every key the General MIDI percussion map
    # gives that drum, e.g. the closed, pedal and open hi hat
    kit_keys: tuple[int, ...] = ()
    # other presets (bank, program) that play the same instrument where a soundfont holds them, from
    # the GS-style variation banks soundfonts carry beside General MIDI's: another piano, a muted
    # trumpet, a tenor sax, another drum kit (bank 128); chosen by the names the training soundfonts
    # give them, and left out where a preset plays something else under the name (a pulse wave)
    variants: tuple[tuple[int, int], ...] = ()

    @property
    def pitched(self) -> bool:
        return not self.drums

    @property
    def preset(self) -> tuple[int, int]:
        """The General MIDI (bank, program) of the instrument: its program, or the standard kit."""
        return (128, 0) if self.drums else (0, self.program)

    @property
    def keys(self) -> tuple[int, ...]:
        """The MIDI keys it is played on: its compass, or a drum's kit keys."""
        return self.kit_keys if self.drums else tuple(range(self.compass[0], self.compass[1] + 1))


#: The drum kits beside the standard one (GS numbering): room, power, electronic, TR-808, jazz, brush.
#: Not the orchestra kit (48), whose hi hat and cymbal keys play timpani.
_KITS = ((128, 8), (128, 16), (128, 24), (128, 25), (128, 32), (128, 40))

INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        "piano",
        ("piano", "grand piano"),
        "piano",
        0,
        (33, 45),
        (76, 88),
        compass=(21, 108),
        variants=((0, 1), (8, 0), (127, 0), (127, 1)),
    ),
    Instrument("organ", ("organ", "church organ"), "organ", 19, (36, 48), (72, 84), compass=(36, 96), variants=((8, 19), (127, 12))),
    Instrument(
        "guitar", ("guitar", "acoustic guitar"), "guitar", 24, (40, 50), (69, 79), compass=(40, 84), variants=((0, 25), (8, 25), (127, 59))
    ),
    Instrument("harp", ("harp",), "strings", 46, (36, 48), (77, 89), compass=(24, 103), variants=((127, 57),)),
    Instrument("violin", ("violin", "fiddle"), "strings", 40, (55, 60), (81, 91), compass=(55, 103), variants=((0, 110), (8, 40))),
    Instrument("cello", ("cello",), "strings", 42, (36, 45), (67, 76), compass=(36, 84)),
    Instrument("trumpet", ("trumpet",), "brass", 56, (54, 58), (72, 80), compass=(52, 86), variants=((0, 59),)),
    Instrument("trombone", ("trombone",), "brass", 57, (40, 48), (65, 72), compass=(40, 77)),
    Instrument(
        "saxophone",
        ("saxophone", "sax"),
        "reed",
        65,
        (49, 57),
        (72, 80),
        compass=(49, 81),
        variants=((0, 64), (0, 66), (0, 67), (127, 80), (127, 81)),
    ),
    Instrument("clarinet", ("clarinet",), "reed", 71, (50, 57), (77, 86), compass=(50, 94)),
    Instrument("flute", ("flute",), "pipe", 73, (60, 64), (84, 93), compass=(60, 96), variants=((127, 73),)),
    Instrument("marimba", ("marimba",), "chromatic percussion", 12, (45, 55), (77, 89), compass=(45, 96)),
    Instrument(
        "synth", ("synth", "synthesizer"), "synth lead", 81, (36, 48), (72, 84), compass=(36, 96), variants=((0, 80), (8, 80), (20, 81))
    ),
    Instrument("kick drum", ("kick drum", "bass drum"), "drum kit", 36, drums=True, kit_keys=(36, 35), variants=_KITS),
    Instrument("snare drum", ("snare drum", "snare"), "drum kit", 38, drums=True, kit_keys=(38, 40), variants=_KITS),
    Instrument("hi hat", ("hi hat", "hihat"), "drum kit", 42, drums=True, kit_keys=(42, 44, 46), variants=_KITS),
    Instrument("crash cymbal", ("crash cymbal", "cymbal"), "drum kit", 49, drums=True, kit_keys=(49, 57), variants=_KITS),
)
_BY_NAME = {i.name: i for i in INSTRUMENTS}

#: Attribute -> value -> the words captions and prompts use for it.
ATTRIBUTES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "pitch": {"low": ("low", "low pitched", "deep"), "high": ("high", "high pitched", "shrill")},
    "dynamics": {"soft": ("soft", "quiet", "gentle"), "loud": ("loud", "forceful", "powerful")},
}
_ARTICULATION = {
    "short": ("a short {adj}note", "a brief {adj}note", "a staccato {adj}note"),
    "long": ("a long {adj}note", "a sustained {adj}note", "a held {adj}note"),
    "repeated": ("repeated {adj}notes", "a few quick {adj}notes", "{adj}notes played again and again"),
}
_DRUM_ARTICULATION = {"short": ("a single {adj}hit", "one {adj}hit"), "repeated": ("repeated {adj}hits", "a few quick {adj}hits")}
#: Caption and prompt shapes without articulation ({adj} ends with a space when not empty).
TEMPLATES = ("a {adj}{noun}", "the sound of a {adj}{noun}", "{adj}{noun}", "a recording of a {adj}{noun}", "this is a {adj}{noun}")
_PLAYED = ("a {noun} playing {phrase}", "{phrase} on a {noun}", "the sound of a {noun} playing {phrase}")


def _article(text: str) -> str:
    """'a organ' -> 'an organ'."""
    words = text.split()
    for i in range(len(words) - 1):
        if words[i] == "a" and words[i + 1][0] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def value_words(attribute: str, value: str) -> set[str]:
    """The words that say ``value`` and no other value of ``attribute`` ("high", "shrill"; not "pitched")."""
    table = ATTRIBUTES[attribute]
    others = {w for v, phrases in table.items() if v != value for p in phrases for w in p.split()}
    return {w for p in table[value] for w in p.split()} - others


_VALUE_WORDS = {v: w for table in ATTRIBUTES.values() for v, w in table.items()}
#: Prompt shapes for an attribute value on its own ("a high note"), as captions say it of a note.
VALUE_TEMPLATES = ("a {w} note", "{w} notes", "a {w} sound", "{w}")


def class_parts(label: str) -> tuple[str | None, str]:
    """A class's attribute value (None for a bare instrument) and instrument: ``"low cello"`` ->
    ``("low", "cello")``, ``"snare drum"`` -> ``(None, "snare drum")``."""
    value, _, name = label.partition(" ")
    if value in _VALUE_WORDS and name in _BY_NAME:
        return value, name
    if label in _BY_NAME:
        return None, label
    raise ValueError(f"unknown instrument class {label!r}; instruments: {sorted(_BY_NAME)}")


def value_prompts(value: str) -> list[str]:
    """Every way to say an attribute value alone (``"a high note"``, ``"shrill notes"``, ...)."""
    if value not in _VALUE_WORDS:
        raise ValueError(f"unknown attribute value {value!r}; values: {sorted(_VALUE_WORDS)}")
    return [t.format(w=w) for w in _VALUE_WORDS[value] for t in VALUE_TEMPLATES]


def instrument_prompts(label: str) -> list[str]:
    """Every way to say a class: an instrument (``"cello"``) or an attribute value and an instrument
    (``"low cello"``, ``"soft snare drum"``), through the caption templates and synonyms."""
    value, name = class_parts(label)
    adjectives = _VALUE_WORDS[value] if value else ("",)
    return [
        _article(" ".join(t.format(adj=f"{adj} " if adj else "", noun=noun).split()))
        for adj in adjectives
        for noun in _BY_NAME[name].nouns
        for t in TEMPLATES
    ]


def attribute_classes(attribute: str) -> list[str]:
    """The classes of one attribute task: ``"low cello"``, ``"high cello"``, ... for each instrument
    that has the attribute (pitch: the pitched ones), the bare name for the others."""
    out = []
    for inst in INSTRUMENTS:
        if attribute == "pitch" and not inst.pitched:
            out.append(inst.name)
        else:
            out += [f"{v} {inst.name}" for v in ATTRIBUTES[attribute]]
    return out


def _attributes(inst: Instrument, rng: np.random.Generator) -> dict[str, str]:
    attrs = {"dynamics": str(rng.choice(list(ATTRIBUTES["dynamics"])))}
    if inst.pitched:
        attrs["pitch"] = str(rng.choice(list(ATTRIBUTES["pitch"])))
    attrs["articulation"] = str(rng.choice(list(_DRUM_ARTICULATION if inst.drums else _ARTICULATION)))
    return attrs


def caption(
    inst: Instrument,
    attrs: Mapping[str, str],
    rng: np.random.Generator,
    keep: float = 0.7,
    phrases: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """One caption: each attribute said with probability ``keep`` (the same for every instrument and
    value), dynamics before pitch, the articulation as a phrase about the note (``phrases``: the
    articulation's wordings, ``{adj}`` where the attributes go; default the notes' own)."""
    adj = [str(rng.choice(ATTRIBUTES[a][attrs[a]])) for a in ("dynamics", "pitch") if a in attrs and rng.random() < keep]
    adj_text = "".join(w + " " for w in adj)
    noun = str(rng.choice(inst.nouns))
    table = phrases if phrases is not None else _DRUM_ARTICULATION if inst.drums else _ARTICULATION
    if "articulation" in attrs and rng.random() < keep:
        if rng.random() < 0.5:  # the attributes on the note: "a cello playing a soft low note"
            phrase = str(rng.choice(table[attrs["articulation"]])).format(adj=adj_text)
            text = str(rng.choice(_PLAYED)).format(noun=noun, phrase=phrase)
        else:  # on the instrument: "a soft low cello playing a short note"
            phrase = str(rng.choice(table[attrs["articulation"]])).format(adj="")
            text = str(rng.choice(_PLAYED[:1])).format(noun=adj_text + noun, phrase=phrase)
    else:
        text = str(rng.choice(TEMPLATES)).format(adj=adj_text, noun=noun)
    return _article(" ".join(text.split()))


#: The soundfonts the corpus renders from: name -> (how to install it, where it is installed). TimGM6mb
#: is found inside the ``pretty-midi`` package; the others are the files their Debian packages install.
SOUNDFONTS: Mapping[str, tuple[str, str | None]] = {
    "TimGM6mb": ("pip install 'skclap[instruments]' (the PyPI package pretty-midi)", None),
    "MuseScore_General_Lite": ("apt-get install musescore-general-soundfont-small", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    "sf_GMbank": ("apt-get install csound-soundfont", "/usr/share/sounds/sf2/sf_GMbank.sf2"),
}
DEFAULT_SOUNDFONT = "TimGM6mb"


def soundfont_path(name: str = DEFAULT_SOUNDFONT) -> Path:
    """The file of a soundfont of :data:`SOUNDFONTS` (or a path to a ``.sf2`` / ``.sf3`` file)."""
    if name not in SOUNDFONTS:
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no soundfont {name!r}: neither a name of {sorted(SOUNDFONTS)} nor a file")
        return path
    install, where = SOUNDFONTS[name]
    if where is None:  # inside pretty-midi, found without importing it
        spec = importlib.util.find_spec("pretty_midi")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"the real-instrument corpus needs the soundfont {name}: {install}")
        path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
        if not path.is_file():
            raise FileNotFoundError(f"the soundfont {path} is missing from the installed pretty-midi package; reinstall it")
        return path
    path = Path(where)
    if not path.is_file():
        raise FileNotFoundError(f"the soundfont {name} is not installed ({path}): {install}")
    return path


class _Renderer:
    """Renders note events with one tinysoundfont synthesizer per soundfont (loading a compressed
    ``.sf3`` takes seconds). Every clip starts from silence, its program and its pitch bend set
    afresh, so that a clip's samples never depend on what was rendered before it."""

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        try:
            import tinysoundfont
        except ImportError:
            raise ModuleNotFoundError(
                "the real-instrument corpus needs 'tinysoundfont': skclap install-extra instruments installs it "
                "(without its declared pyaudio, which is only for playback and has no wheel)"
            ) from None
        self.rate = sample_rate
        self.soundfont = soundfont
        self._synth = tinysoundfont.Synth(samplerate=sample_rate)
        self._sfid = self._synth.sfload(str(soundfont))

    def has(self, preset: tuple[int, int]) -> bool:
        """Whether the soundfont holds the (bank, program) ``preset``."""
        return self._synth.sfpreset_name(self._sfid, *preset) is not None

    def render(
        self,
        inst: Instrument,
        events: Sequence[tuple[float, float, int, int]],
        seconds: float,
        cents: float = 0.0,
        preset: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """``events``: (onset s, duration s, key, velocity), in any order and overlapping as in a chord
        (a key struck again while it sounds restarts); ``cents``: a detuning of every note (pitched
        instruments); ``preset``: (bank, program), by default the instrument's General MIDI one."""
        synth = self._synth
        synth.sounds_off()  # every voice of an earlier clip fades out within milliseconds ...
        synth.generate(int(0.05 * self.rate))  # ... here, before this clip begins
        channel = 9 if inst.drums else 0
        if preset is not None and not self.has(preset):  # the synthesizer would fall back to another preset, unsaid
            raise ValueError(f"the soundfont {self.soundfont.name} holds no preset {preset} (bank, program) for the {inst.name}")
        bank, program = preset or inst.preset
        synth.program_select(channel, self._sfid, bank, program, is_drums=inst.drums)
        synth.pitchbend_range(channel, 2.0)
        synth.pitchbend(channel, int(round(8192 + 8192 * cents / 200.0)))  # 8192: no bend; +-8192: +-2 semitones

        def block(n: int) -> np.ndarray:
            if n <= 0:
                return np.zeros(0, np.float32)
            return np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2).mean(axis=1)

        total = int(round(seconds * self.rate))
        # note-ons and note-offs on one timeline; at one sample, releases before strikes
        timeline = []
        for onset, duration, key, velocity in events:
            start = int(round(onset * self.rate))
            timeline += [(start, 1, key, velocity), (max(int(round((onset + duration) * self.rate)), start), 0, key, 0)]
        out, pos = [], 0
        for at, strike, key, velocity in sorted(timeline):
            out.append(block(at - pos))
            pos = max(pos, at)
            if strike:
                synth.noteon(channel, key, velocity)
            else:
                synth.noteoff(channel, key)
        out.append(block(total - pos))
        return np.concatenate(out)[:total]


@lru_cache(maxsize=16)
def _renderer(sample_rate: int, soundfont: str = DEFAULT_SOUNDFONT) -> _Renderer:
    return _Renderer(soundfont_path(soundfont), sample_rate)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))


def render_events(
    instrument: str,
    events: Sequence[tuple[float, float, int, int]],
    seconds: float,
    sample_rate: int = 16000,
    soundfont: str = DEFAULT_SOUNDFONT,
    preset: tuple[int, int] | None = None,
) -> np.ndarray:
    """Raw notes of an instrument of :data:`INSTRUMENTS` from a soundfont, uncalibrated: ``events``
    are (onset s, duration s, MIDI key, velocity), sorted, not overlapping; ``preset``: (bank,
    program), by default the instrument's General MIDI one."""
    return _renderer(sample_rate, soundfont).render(_BY_NAME[instrument], events, seconds, preset=preset)


@lru_cache(maxsize=8)
def soundfont_presets(soundfont: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """Per instrument, its presets (:attr:`Instrument.preset`, then its ``variants``) that ``soundfont`` holds."""
    renderer = _renderer(16000, soundfont)
    return {inst.name: tuple(p for p in (inst.preset, *inst.variants) if renderer.has(p)) for inst in INSTRUMENTS}


def sounding_keys(
    inst: Instrument,
    keys: Sequence[int],
    sample_rate: int = 16000,
    soundfont: str = DEFAULT_SOUNDFONT,
    preset: tuple[int, int] | None = None,
) -> set[int]:
    """Of ``keys``, those the soundfont sounds for ``inst`` (its sample zones can leave gaps)."""
    render = _renderer(sample_rate, soundfont).render
    level = {k: _rms_db(render(inst, [(0.0, 0.2, k, 90)], 0.25, preset=preset)) for k in keys}
    # silent below -60 dBFS, or 40 dB under the loudest of the keys for a soundfont recorded quieter,
    # and always below -100 dBFS (a preset with no sample for any of the keys)
    floor = max(-100.0, min(-60.0, max(level.values()) - 40.0))
    return {k for k in keys if level[k] > floor}


def checked_soundfonts(soundfonts: Sequence[str]) -> tuple[str, ...]:
    """``soundfonts`` as a tuple, each one found (a missing one names its package before any work)."""
    fonts = tuple(soundfonts)
    if not fonts:
        raise ValueError("soundfonts is empty; name at least one, e.g. ('TimGM6mb',)")
    for f in fonts:
        soundfont_path(f)
    return fonts


@lru_cache(maxsize=8)
def _playable_keys(sample_rate: int, soundfont: str = DEFAULT_SOUNDFONT) -> dict[tuple[str, str], tuple[int, ...]]:
    """The keys of each register that sound (a soundfont's sample zones can leave gaps)."""
    out = {}
    for inst in INSTRUMENTS:
        if inst.pitched:
            ranges = {"low": range(inst.low[0], inst.low[1] + 1), "high": range(inst.high[0], inst.high[1] + 1)}
            heard = sounding_keys(inst, [k for keys in ranges.values() for k in keys], sample_rate, soundfont)
            for register, keys in ranges.items():
                sounding = tuple(k for k in keys if k in heard)
                if not sounding:  # pragma: no cover - depends on the soundfont
                    raise RuntimeError(f"no key of the {register} register of {inst.name} sounds in {soundfont_path(soundfont)}")
                out[(inst.name, register)] = sounding
    return out


@lru_cache(maxsize=8)
def _calibration(sample_rate: int, soundfont: str = DEFAULT_SOUNDFONT) -> dict[str, float]:
    """Per-instrument gain that brings a medium-velocity note to -26 dBFS RMS, so that
    loudness is said by the dynamics, not by which sample set an instrument has."""
    render = _renderer(sample_rate, soundfont).render
    gains = {}
    for inst in INSTRUMENTS:
        if inst.drums:
            levels = [_rms_db(render(inst, [(0.0, 0.4, inst.program, 90)], 1.2))]
        else:
            keys = _playable_keys(sample_rate, soundfont)
            levels = [_rms_db(render(inst, [(0.0, 1.0, keys[(inst.name, r)][0], 90)], 1.2)) for r in ("low", "high")]
        gains[inst.name] = 10 ** ((-26 - float(np.mean(levels))) / 20)
    return gains


#: Bumped whenever :func:`render_note` changes what it renders (part of the disk-cache key).
_RENDER_VERSION = 2


def _draw_key(clip: Clip, rng: np.random.Generator, sample_rate: int, soundfont: str) -> int:
    inst = _BY_NAME[clip.family]
    if inst.drums:
        return inst.program
    keys = _playable_keys(sample_rate, soundfont)[(inst.name, clip.attributes["pitch"])]
    return keys[int(rng.integers(len(keys)))]


def note_key(clip: Clip, sample_rate: int = 16000, soundfont: str = DEFAULT_SOUNDFONT) -> int:
    """The MIDI key :func:`render_note` plays for ``clip`` from ``soundfont``."""
    return _draw_key(clip, np.random.default_rng(clip.seed), sample_rate, soundfont)


def render_note(
    clip: Clip, sample_rate: int = 16000, seconds: float = 2.0, soundfont: str = DEFAULT_SOUNDFONT, augment: bool = False
) -> np.ndarray:
    """The waveform of a clip of the instrument corpus (float32, mono), from ``soundfont``; with
    ``augment``, as a recording might have caught it (:func:`recording_conditions`)."""
    inst = _BY_NAME[clip.family]
    a = clip.attributes
    rng = np.random.default_rng(clip.seed)
    key = _draw_key(clip, rng, sample_rate, soundfont)
    soft = a["dynamics"] == "soft"

    def velocity() -> int:
        return int(rng.integers(28, 46) if soft else rng.integers(100, 128))

    onset = float(rng.uniform(0.02, 0.15))
    events: list[tuple[float, float, int, int]] = []
    if a["articulation"] == "repeated":
        gap = float(rng.uniform(0.3, 0.42))
        for k in range(int(rng.integers(3, 6))):
            t = onset + k * gap
            if t + 0.1 < seconds:
                events.append((t, float(rng.uniform(0.1, 0.18)), key, velocity()))
    else:
        duration = float(rng.uniform(0.12, 0.28) if a["articulation"] == "short" else rng.uniform(1.2, 1.7))
        events.append((onset, duration, key, velocity()))
    conditions = np.random.default_rng([clip.seed, 1])  # a stream of its own: the notes stay as without augment
    cents = float(conditions.uniform(-25, 25)) if augment and inst.pitched else 0.0
    x = _renderer(sample_rate, soundfont).render(inst, events, seconds, cents).astype(np.float64)
    gain_db = float(rng.uniform(-2, 2)) + (-10.0 if soft else 0.0)
    x *= _calibration(sample_rate, soundfont)[inst.name] * 10 ** (gain_db / 20)
    if augment:
        x = recording_conditions(x, sample_rate, conditions)
    x += rng.standard_normal(len(x)) * 10 ** (-72 / 20)  # a faint noise floor
    return np.clip(x, -1, 1).astype(np.float32)


def recording_conditions(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` as a microphone in a room might have caught it, drawn from ``rng``: a tilt of the
    spectrum (a low and a high shelf, up to 6 dB each), often a room (an exponentially decaying
    noise tail, 0.15 to 0.9 s to fall by 60 dB, mixed in at 10-45 %), sometimes band limits (a
    high-pass at 40-150 Hz, a low-pass at 3-7 kHz), and background noise 20-45 dB under the
    signal. The level of the clip is kept."""
    from scipy import signal

    level = np.sqrt(np.mean(x**2)) + 1e-12
    nyquist = sample_rate / 2
    for kind, lo, hi in (("lowpass", 150.0, 400.0), ("highpass", 2000.0, 5000.0)):  # shelves: x + g * band
        corner = float(rng.uniform(lo, hi))
        gain = 10 ** (float(rng.uniform(-6, 6)) / 20) - 1
        sos = signal.butter(2, min(corner, 0.95 * nyquist), kind, fs=sample_rate, output="sos")
        x = x + gain * signal.sosfilt(sos, x)
    if rng.random() < 0.6:
        rt60 = float(rng.uniform(0.15, 0.9))
        n = int(rt60 * sample_rate)
        tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
        wet = signal.fftconvolve(x, tail / np.sqrt(np.sum(tail**2)))[: len(x)]
        mix = float(rng.uniform(0.1, 0.45))
        x = (1 - mix) * x + mix * wet
    if rng.random() < 0.3:
        x = signal.sosfilt(signal.butter(2, float(rng.uniform(40, 150)), "highpass", fs=sample_rate, output="sos"), x)
    if rng.random() < 0.3:
        cutoff = min(float(rng.uniform(3000, 7000)), 0.95 * nyquist)
        x = signal.sosfilt(signal.butter(4, cutoff, "lowpass", fs=sample_rate, output="sos"), x)
    x = x * (level / (np.sqrt(np.mean(x**2)) + 1e-12))
    if rng.random() < 0.5:
        noise = rng.standard_normal(len(x))
        if rng.random() < 0.5:  # pink: -3 dB per octave
            spectrum = np.fft.rfft(noise)
            spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
            noise = np.fft.irfft(spectrum, len(x))
        x = x + noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * level * 10 ** (-float(rng.uniform(20, 45)) / 20)
    return x


@dataclass
class InstrumentCorpus(CaptionedCorpus):
    """Clips of real sampled instruments with captions; waveforms rendered on demand (or read from
    the disk cache given to :func:`make_instrument_corpus`). A clip is rendered from one of
    ``soundfonts``, chosen by its seed (:meth:`soundfont`)."""

    soundfonts: tuple[str, ...] = (DEFAULT_SOUNDFONT,)
    augment: bool = False  # each clip in its own recording conditions (render_note)
    cache: np.ndarray | None = field(default=None, repr=False)  # rendered waveforms, one row per clip
    _rows: np.ndarray | None = field(default=None, repr=False)  # this corpus's rows of ``cache``

    def soundfont(self, i: int) -> str:
        """The soundfont clip ``i`` is rendered from."""
        return self.soundfonts[self.clips[i].seed % len(self.soundfonts)]

    def waveform(self, i: int) -> np.ndarray:
        if self.cache is not None and self._rows is not None:
            return np.asarray(self.cache[self._rows[i]], dtype=np.float32) / 32767.0
        return self.render(i)

    def render(self, i: int) -> np.ndarray:
        """Clip ``i`` rendered afresh (the disk cache aside)."""
        return render_note(self.clips[i], self.sample_rate, self.seconds, self.soundfont(i), self.augment)

    def subset(self, idx: Sequence[int]) -> InstrumentCorpus:
        rows = None if self._rows is None else self._rows[np.asarray(idx, dtype=int)]
        return replace(self, clips=[self.clips[i] for i in idx], _rows=rows)

    def without_words(self, held_out: Sequence[tuple[str, str]], seed: int = 0, keep: float = 0.7) -> InstrumentCorpus:
        """A copy whose captions never say a held-out (instrument, attribute value) pair: a clip of
        such a combination is described without that attribute (its audio stays)."""
        rng = np.random.default_rng(seed)
        held = set(held_out)
        clips = []
        for c in self.clips:
            said = {k: v for k, v in c.attributes.items() if (c.family, v) not in held}
            if len(said) < len(c.attributes):
                c = replace(c, captions=[caption(_BY_NAME[c.family], said, rng, keep) for _ in c.captions])
            clips.append(c)
        return replace(self, clips=clips)


def _cache_file(cache_dir: str | os.PathLike, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(repr(sorted(key.items())).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"instruments-{digest}.npy"


def make_instrument_corpus(
    n_clips: int,
    seed: int = 0,
    instruments: Sequence[str] | None = None,
    captions_per_clip: int = 3,
    sample_rate: int = 16000,
    seconds: float = 2.0,
    keep: float = 0.7,
    cache_dir: str | os.PathLike | None = None,
    soundfonts: Sequence[str] = (DEFAULT_SOUNDFONT,),
    augment: bool = False,
) -> InstrumentCorpus:
    """``n_clips`` clips spread evenly over ``instruments`` (default all of :data:`INSTRUMENTS`),
    deterministic in ``seed``, each rendered from one of ``soundfonts`` (names of :data:`SOUNDFONTS`
    or files; by the clip's seed) and, with ``augment``, in recording conditions of its own. With
    ``cache_dir``, the rendered waveforms are kept there as one 16-bit array per corpus and
    memory-mapped on the next call with the same arguments."""
    fonts = checked_soundfonts(soundfonts)
    names = list(instruments) if instruments is not None else [i.name for i in INSTRUMENTS]

    def describe(name: str, rng: np.random.Generator) -> tuple[dict[str, str], list[str]]:
        attrs = _attributes(_BY_NAME[name], rng)
        return attrs, [caption(_BY_NAME[name], attrs, rng, keep) for _ in range(captions_per_clip)]

    clips = draw_clips(n_clips, names, _BY_NAME, seed, describe, kind="instruments")
    corpus = InstrumentCorpus(clips, sample_rate, seconds, soundfonts=fonts, augment=augment)
    return cached(corpus, cache_dir, {"renderer": _RENDER_VERSION})


_Corpus = TypeVar("_Corpus", bound="InstrumentCorpus")


def cached(corpus: _Corpus, cache_dir: str | os.PathLike | None, key: Mapping[str, Any]) -> _Corpus:
    """``corpus`` with its waveforms rendered once into ``cache_dir`` (one 16-bit array, memory-mapped
    on the next call with the same clips, soundfonts, settings and ``key``: the renderer's version)."""
    if cache_dir is None:
        return corpus
    clips, fonts = corpus.clips, corpus.soundfonts
    key = {
        **key,
        "kind": type(corpus).__name__,
        "clips": hashlib.sha256(repr([(c.family, sorted(c.attributes.items()), c.seed) for c in clips]).encode()).hexdigest(),
        "instruments": repr(INSTRUMENTS),  # registers, programs: what the samples are rendered from
        "soundfonts": [(f, soundfont_path(f).stat().st_size) for f in fonts],
        "augment": corpus.augment,
        "rate": corpus.sample_rate,
        "seconds": corpus.seconds,
    }
    n_clips = len(clips)
    path = _cache_file(cache_dir, key)
    if not path.is_file():
        from ..fileio import write_atomic

        waves = np.stack([np.round(np.clip(corpus.waveform(i), -1, 1) * 32767).astype(np.int16) for i in range(len(corpus))])
        path.parent.mkdir(parents=True, exist_ok=True)

        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to the temporary name
                np.save(f, waves)

        write_atomic(path, save)
    return replace(corpus, cache=np.load(path, mmap_mode="r"), _rows=np.arange(n_clips))
