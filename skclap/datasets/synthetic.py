"""A synthetic captioned audio corpus: deterministic by seed, numpy only.

Sound families with audible, describable attributes (pitch, tempo, loudness, length), each clip with
several natural-language captions. It stands in for AudioCaps/Clotho where nothing can be
downloaded, and it is hard enough that a model has to listen: families differ in timbre, spectrum
and rhythm, and the attributes cut across families.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .corpus import CaptionedCorpus, Clip, draw_clips

__all__ = ["FAMILIES", "SyntheticCorpus", "attribute_words", "class_prompts", "make_corpus", "pitched_labels", "render"]


@dataclass(frozen=True)
class Family:
    name: str  # class label
    nouns: tuple[str, ...]  # ways to name it in a caption
    pitched: bool  # has a pitch attribute (low/high)
    rhythmic: bool  # has a tempo attribute (slow/fast)
    synth: Callable[[np.random.Generator, np.ndarray, int, dict], np.ndarray]


def _tone(wave: str):
    def synth(rng, t, rate, a):
        phase = 2 * np.pi * a["f0"] * t
        if wave == "sine":
            return np.sin(phase)
        if wave == "square":
            return np.sign(np.sin(phase)) * 0.6
        return 2 * ((a["f0"] * t) % 1.0) - 1.0  # sawtooth

    return synth


def _noise(colour: str):
    def synth(rng, t, rate, a):
        white = rng.standard_normal(len(t))
        if colour == "white":
            return white * 0.5
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(len(t), 1 / rate), 20.0)
        spec /= np.sqrt(f) if colour == "pink" else f
        x = np.fft.irfft(spec, n=len(t))
        return x / (np.abs(x).max() + 1e-9)

    return synth


def _chirp(direction: int):
    def synth(rng, t, rate, a):
        lo, hi = a["f0"], a["f0"] * 4
        f_start, f_end = (lo, hi) if direction > 0 else (hi, lo)
        dur = t[-1] + 1 / rate
        k = np.log(f_end / f_start) / dur
        return np.sin(2 * np.pi * f_start * (np.exp(k * t) - 1) / k)

    return synth


def _siren(rng, t, rate, a):
    f = a["f0"] * (1.5 + 0.5 * np.sin(2 * np.pi * a["rate"] / 2 * t))
    return np.sin(2 * np.pi * np.cumsum(f) / rate)


def _bell(rng, t, rate, a):
    period = 1.0 / a["rate"] * 2
    local = t % period
    partials = [1.0, 2.76, 5.40, 8.93]
    x = sum(np.sin(2 * np.pi * a["f0"] * p * t) * np.exp(-local * (3 + 2 * i)) / (i + 1) for i, p in enumerate(partials))
    return x


def _clicks(rng, t, rate, a):
    x = np.zeros(len(t))
    step = max(1, int(rate / (a["rate"] * 2)))
    for s in range(int(rng.integers(0, step)), len(t), step):
        n = min(len(t) - s, int(0.003 * rate))
        x[s : s + n] += np.hanning(2 * n)[n:] * (rng.random() * 0.4 + 0.6)
    return x


def _drum(rng, t, rate, a):
    x = np.zeros(len(t))
    step = max(1, int(rate / a["rate"]))
    n = int(0.12 * rate)
    tt = np.arange(n) / rate
    hit = np.sin(2 * np.pi * a["f0"] * 0.5 * tt * np.exp(-tt * 8)) * np.exp(-tt * 30) + 0.3 * rng.standard_normal(n) * np.exp(-tt * 60)
    for s in range(0, len(t), step):
        m = min(n, len(t) - s)
        x[s : s + m] += hit[:m]
    return x


def _tremolo(rng, t, rate, a):
    return np.sin(2 * np.pi * a["f0"] * t) * (0.55 + 0.45 * np.sin(2 * np.pi * a["rate"] * 2 * t))


def _vibrato(rng, t, rate, a):
    return np.sin(2 * np.pi * a["f0"] * t + (a["f0"] * 0.03 / 6) * np.sin(2 * np.pi * 6 * t) * 2 * np.pi)


def _formant(rng, t, rate, a):
    """A buzzing glottal pulse train through vowel-like resonances that change: speech-like."""
    f0 = a["f0"] * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))
    src = 2 * ((np.cumsum(f0) / rate) % 1.0) - 1.0
    vowels = [(700, 1200), (300, 2300), (500, 900)]
    seg = max(1, len(t) // 6)
    out = np.zeros(len(t))
    for i in range(0, len(t), seg):
        f1, f2 = vowels[rng.integers(len(vowels))]
        chunk = src[i : i + seg]
        spec = np.fft.rfft(chunk)
        f = np.fft.rfftfreq(len(chunk), 1 / rate)
        gain = np.exp(-(((f - f1) / 120) ** 2)) + 0.7 * np.exp(-(((f - f2) / 180) ** 2))
        out[i : i + seg] = np.fft.irfft(spec * gain, n=len(chunk))
    return out / (np.abs(out).max() + 1e-9)


FAMILIES: tuple[Family, ...] = (
    Family("sine tone", ("sine tone", "pure tone", "steady beep"), True, False, _tone("sine")),
    Family("square wave", ("square wave", "buzzy square tone", "hollow buzzing tone"), True, False, _tone("square")),
    Family("sawtooth wave", ("sawtooth wave", "bright saw tone", "harsh sawtooth buzz"), True, False, _tone("saw")),
    Family("white noise", ("white noise", "static hiss", "hissing noise"), False, False, _noise("white")),
    Family("brown noise", ("brown noise", "rumbling noise", "muffled rumble"), False, False, _noise("brown")),
    Family("rising chirp", ("rising chirp", "upward sweep", "tone sweeping up"), True, False, _chirp(+1)),
    Family("falling chirp", ("falling chirp", "downward sweep", "tone sweeping down"), True, False, _chirp(-1)),
    Family("siren", ("siren", "wailing siren", "alarm siren"), True, True, _siren),
    Family("bell", ("bell", "ringing bell", "chiming bell"), True, True, _bell),
    Family("clicks", ("clicks", "clicking", "ticking clicks"), False, True, _clicks),
    Family("drum", ("drum", "drum hits", "drum beat"), True, True, _drum),
    Family("tremolo tone", ("tremolo tone", "pulsing tone", "throbbing tone"), True, True, _tremolo),
    Family("vibrato tone", ("vibrato tone", "warbling tone", "wavering tone"), True, False, _vibrato),
    Family("speech-like buzz", ("speech-like buzz", "voice-like humming", "talking buzz"), True, False, _formant),
)
_BY_NAME = {f.name: f for f in FAMILIES}

_PITCH = {"low": ("low", "low pitched", "deep"), "high": ("high", "high pitched", "shrill")}
_TEMPO = {"slow": ("slow", "slowly repeating", "leisurely"), "fast": ("fast", "rapid", "quickly repeating")}
_LOUD = {"quiet": ("quiet", "soft", "faint"), "loud": ("loud", "strong", "powerful")}
_LEN = {"short": ("short", "brief"), "long": ("long", "sustained")}
_TEMPLATES = (
    "a {adj}{noun}",
    "the sound of a {adj}{noun}",
    "you can hear a {adj}{noun}",
    "a recording of a {adj}{noun}",
    "{adj}{noun} in the recording",
    "this is a {adj}{noun}",
)


def attribute_words(attribute: str) -> set[str]:
    """Every word the captions use for an attribute ("pitch", "tempo", "loudness", "length")."""
    tables: dict[str, Mapping[str, Sequence[str]]] = {"pitch": _PITCH, "tempo": _TEMPO, "loudness": _LOUD, "length": _LEN}
    table = tables[attribute]
    return {w for synonyms in table.values() for phrase in synonyms for w in phrase.split()}


def pitched_labels() -> list[str]:
    """Every family x pitch class, e.g. ``["low sine tone", "high sine tone", ..., "white noise"]``."""
    out = []
    for fam in FAMILIES:
        out += [f"{p} {fam.name}" for p in _PITCH] if fam.pitched else [fam.name]
    return out


def class_prompts(label: str) -> list[str]:
    """Ways to say a class (family or ``"pitch family"``) with the corpus's own synonyms."""
    pitch, _, name = label.partition(" ")
    if pitch not in _PITCH or name not in _BY_NAME:
        pitch, name = "", label
    if name not in _BY_NAME:
        raise ValueError(f"unknown class {label!r}")
    adjectives = _PITCH[pitch] if pitch else ("",)
    return [" ".join(f"{adj} {noun}".split()) for adj in adjectives for noun in _BY_NAME[name].nouns]


def _attributes(fam: Family, rng: np.random.Generator) -> dict[str, str]:
    attrs = {"loudness": str(rng.choice(list(_LOUD))), "length": str(rng.choice(list(_LEN)))}
    if fam.pitched:
        attrs["pitch"] = str(rng.choice(list(_PITCH)))
    if fam.rhythmic:
        attrs["tempo"] = str(rng.choice(list(_TEMPO)))
    return attrs


def _captions(fam: Family, attrs: dict[str, str], rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = []
        for key, table in (("loudness", _LOUD), ("pitch", _PITCH), ("tempo", _TEMPO), ("length", _LEN)):
            if key in attrs and rng.random() < 0.75:
                words.append(str(rng.choice(table[attrs[key]])))
        rng.shuffle(words)
        adj = "".join(w + " " for w in words)
        noun = str(rng.choice(fam.nouns))
        text = str(rng.choice(_TEMPLATES)).format(adj=adj, noun=noun)
        out.append(" ".join(text.split()))
    return out


def render(clip: Clip, sample_rate: int = 16000, seconds: float = 2.0) -> np.ndarray:
    """The waveform of a clip (float32, mono, in [-1, 1])."""
    fam = _BY_NAME[clip.family]
    rng = np.random.default_rng(clip.seed)
    a = clip.attributes
    dur = seconds * (0.5 if a.get("length") == "short" else 1.0)
    n = int(round(dur * sample_rate))
    t = np.arange(n) / sample_rate
    params = {
        "f0": (rng.uniform(150, 300) if a.get("pitch") == "low" else rng.uniform(900, 1800)),
        "rate": (rng.uniform(1.5, 2.5) if a.get("tempo") == "slow" else rng.uniform(6, 9)),
    }
    x = np.asarray(fam.synth(rng, t, sample_rate, params), dtype=np.float64)
    ramp = min(n // 2, int(0.01 * sample_rate))
    if ramp:
        env = np.ones(n)
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
        x *= env
    gain = 0.08 if a.get("loudness") == "quiet" else 0.6
    x = gain * x / (np.abs(x).max() + 1e-9)
    x += rng.standard_normal(n) * 0.002  # a faint noise floor
    return x.astype(np.float32)


@dataclass
class SyntheticCorpus(CaptionedCorpus):
    """Synthetic clips with labels and captions; waveforms rendered on demand."""

    def waveform(self, i: int) -> np.ndarray:
        return render(self.clips[i], self.sample_rate, self.seconds)

    def without_words_for(self, attribute: str, labels: Sequence[str], seed: int = 0) -> SyntheticCorpus:
        """A copy whose clips of ``labels`` (``pitched_label``) are re-captioned without mentioning
        ``attribute``: the audio stays, the words for that combination never appear."""
        rng = np.random.default_rng(seed)
        clips = []
        for c in self.clips:
            if c.pitched_label in labels:
                kept = {k: v for k, v in c.attributes.items() if k != attribute}
                c = Clip(c.family, c.attributes, _captions(_BY_NAME[c.family], kept, rng, len(c.captions)), c.seed)
            clips.append(c)
        return SyntheticCorpus(clips, self.sample_rate, self.seconds)


def make_corpus(
    n_clips: int,
    seed: int = 0,
    families: Sequence[str] | None = None,
    captions_per_clip: int = 3,
    sample_rate: int = 16000,
    seconds: float = 2.0,
) -> SyntheticCorpus:
    """``n_clips`` clips spread evenly over ``families`` (default all), deterministic in ``seed``."""
    names = list(families) if families is not None else [f.name for f in FAMILIES]

    def describe(name: str, rng: np.random.Generator) -> tuple[dict[str, str], list[str]]:
        attrs = _attributes(_BY_NAME[name], rng)
        return attrs, _captions(_BY_NAME[name], attrs, rng, captions_per_clip)

    return SyntheticCorpus(draw_clips(n_clips, names, _BY_NAME, seed, describe), sample_rate, seconds)
