"""The user-played test set: deterministic, every condition reached, what it says it plays is in the audio,
and written apart from the training sampler."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pandas as pd
import pytest

from skclap.audio import prepare
from skclap.datasets import instruments as ins
from skclap.datasets import played
from skclap.datasets.instruments import INSTRUMENTS
from skclap.datasets.played import (
    DRUM_KEYS,
    PLAYING_RANGES,
    SAMPLE_RATES,
    combine_tables,
    condition_table,
    key_region,
    make_played_set,
    markdown_table,
    plan_clip,
    render_plan,
    silent_keys,
)

pytest.importorskip("tinysoundfont")

N_PLANS = 17 * 40  # plans are cheap: only drawn, not rendered
PITCHED = [i.name for i in INSTRUMENTS if i.pitched]
DRUMS = [i.name for i in INSTRUMENTS if i.drums]


@pytest.fixture(scope="module")
def plans() -> list[played.PlayedPlan]:
    out = []
    for i in range(N_PLANS):
        name = INSTRUMENTS[i % len(INSTRUMENTS)].name
        out.append(plan_clip(i, 5, name, silent_keys=silent_keys(name)))
    return out


@pytest.fixture(scope="module")
def small_set() -> played.PlayedSet:
    return make_played_set(34, seed=11)


def _spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 17))
    return np.fft.rfftfreq(1 << 17, 1.0 / rate), spec


def _band_peak(f: np.ndarray, spec: np.ndarray, hz: float, tol: float = 0.015) -> float:
    return float(spec[(f > hz * (1 - tol)) & (f < hz * (1 + tol))].max())


def _hz(key: int) -> float:
    return 440.0 * 2.0 ** ((key - 69) / 12.0)


def _find(plans, want, limit: int = 4) -> list[played.PlayedPlan]:
    found = [p for p in plans if want(p)]
    assert len(found) >= limit, f"only {len(found)} plans of the kind wanted"
    return found[:limit]


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_arrays_and_clip_i_does_not_depend_on_n():
    a = make_played_set(5, seed=3)
    b = make_played_set(5, seed=3)
    longer = make_played_set(8, seed=3)
    for x, y, z in zip(a.clips, b.clips, longer.clips[:5]):
        assert x.plan == y.plan == z.plan
        assert x.waveform.dtype == np.float32 and x.waveform.ndim == 1
        np.testing.assert_array_equal(x.waveform, y.waveform)
        np.testing.assert_array_equal(x.waveform, z.waveform)
    other = make_played_set(5, seed=4)
    assert [c.plan for c in other.clips] != [c.plan for c in a.clips]
    # a clip drawn alone is the same clip
    alone = render_plan(plan_clip(4, 3, silent_keys=silent_keys(a.clips[4].label)))
    np.testing.assert_array_equal(alone, a.clips[4].waveform)


def test_the_set_gives_items_labels_and_conditions(small_set):
    items = small_set.items()
    assert len(items) == len(small_set) == 34
    assert small_set.labels == [INSTRUMENTS[i % 17].name for i in range(34)]
    for (wave, rate), clip in zip(items, small_set.clips):
        assert wave is clip.waveform and rate == clip.sample_rate and isinstance(rate, int)
        assert abs(len(prepare((wave, rate), 16000)) - len(wave) * 16000 / rate) <= 1  # what the estimators do with X
    frame = small_set.conditions
    assert isinstance(frame, pd.DataFrame) and len(frame) == 34
    for column in ("label", "kind", "region", "note_length", "clip_seconds", "clip_length", "peak", "level", "sample_rate", "soundfont"):
        assert column in frame.columns
    assert set(frame["soundfont"]) == {"TimGM6mb"}
    clip = small_set.clips[0]
    assert (clip.kind, clip.region, clip.note_length, clip.clip_seconds, clip.peak) == (
        clip.plan.kind,
        clip.plan.region,
        clip.plan.note_length,
        clip.plan.clip_seconds,
        clip.plan.peak,
    )


# --- conditions ----------------------------------------------------------------------------------


def test_every_condition_is_reached(plans):
    frame = pd.DataFrame(
        {
            "label": [p.label for p in plans],
            "kind": [p.kind for p in plans],
            "region": [p.region for p in plans],
            "note_length": [p.note_length for p in plans],
            "clip": [played._clip_length_bin(p.clip_seconds) for p in plans],
            "level": [played._level_bin(20 * np.log10(p.peak)) for p in plans],
            "rate": [p.sample_rate for p in plans],
        }
    )
    pitched = frame[frame["label"].isin(PITCHED)]
    drums = frame[frame["label"].isin(DRUMS)]
    assert set(pitched["kind"]) == {"note", "melody", "chord"} and set(drums["kind"]) == {"hit", "pattern"}
    assert set(pitched["region"]) == {"low", "middle", "high"} and set(drums["region"]) == {"n/a"}
    assert set(pitched["note_length"]) == {"short", "long"} and set(drums["note_length"]) == {"n/a"}
    assert set(frame["clip"]) == {"< 1 s", "1-3 s", "3-10 s"}
    assert set(frame["level"]) == {"< -20 dBFS", "-20 to -6 dBFS", "> -6 dBFS"}
    assert set(frame["rate"]) == set(SAMPLE_RATES)
    # every pitched instrument is played in every kind and every region, and no cell is rare
    for name in PITCHED:
        mine = pitched[pitched["label"] == name]
        assert set(mine["kind"]) == {"note", "melody", "chord"}, name
        assert set(mine["region"]) == {"low", "middle", "high"}, name
    for column in ("kind", "region", "note_length", "clip", "level", "rate"):
        shares = pitched[column].value_counts(normalize=True)
        assert shares.min() > 0.12, (column, shares.to_dict())


def test_keys_lengths_and_levels_are_in_their_ranges(plans):
    steps = []
    for p in plans:
        assert 0.5 <= p.clip_seconds <= 10.0
        assert 0.03 <= p.peak <= 0.95 and p.sample_rate in SAMPLE_RATES
        onsets = [e[0] for e in p.events]
        assert onsets == sorted(onsets) and onsets[0] >= 0.02 * p.clip_seconds - 1e-9  # silence before
        if p.label in DRUM_KEYS:
            assert all(e[1] is None and e[2] in DRUM_KEYS[p.label] for e in p.events)
            assert (p.kind == "hit") == (len(p.events) == 1) and len(p.events) <= 8
            assert onsets[-1] < 0.95 * p.clip_seconds
            continue
        lo, hi = PLAYING_RANGES[p.label]
        assert all(lo <= k <= hi for k in p.keys), (p.label, p.keys)
        assert not set(p.keys) & silent_keys(p.label)
        assert all(0.05 - 1e-9 <= e[1] <= 3.0 + 1e-9 for e in p.events)
        assert max(e[0] + e[1] for e in p.events) <= 0.95 * p.clip_seconds + 1e-6  # silence after the last release
        assert p.region == key_region(p.label, float(np.median(p.keys)))
        assert p.note_length == ("short" if p.note_seconds < 0.3 else "long")
        if p.kind == "note":
            assert len(p.events) == 1
        elif p.kind == "melody":
            assert 3 <= len(p.events) <= 8
            assert all(a[0] + a[1] <= b[0] + 1e-9 for a, b in zip(p.events, p.events[1:]))  # one note after another
            thirds = {key_region(p.label, k) for k in p.keys}
            assert thirds == {p.region}  # a melody keeps to its third of the range
            steps += [abs(b - a) for a, b in zip(p.keys, p.keys[1:])]
        else:
            assert 2 <= len(p.events) <= 4 and len(set(p.keys)) == len(p.keys)
            assert max(onsets) - min(onsets) <= 0.13  # struck together (a strum at most)
            assert len({e[1] for e in p.events}) == 1
    steps = np.asarray(steps)
    assert np.mean(steps <= 4) > 0.6 and np.mean(steps <= 2) > 0.35  # mostly steps and small leaps
    assert np.mean(steps >= 7) < 0.2


def test_each_key_of_every_range_sounds_or_is_known_silent():
    assert silent_keys("saxophone") == frozenset({64})  # TimGM6mb has no sample for the alto sax's E4
    for name in PITCHED:
        assert len(silent_keys(name)) <= 1, name


# --- measured from the audio ----------------------------------------------------------------------


def test_audio_has_its_peak_rate_length_and_silence_before(small_set):
    for clip in small_set.clips:
        p, x = clip.plan, clip.waveform
        assert clip.sample_rate == p.sample_rate and len(x) == p.n_samples
        assert np.isfinite(x).all()
        assert abs(float(np.abs(x).max()) - p.peak) <= 1e-6 * max(1.0, p.peak)
        frame = max(1, p.sample_rate // 100)  # 10 ms
        env = np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame).astype(np.float64) ** 2, axis=1))
        loud = np.nonzero(env > p.peak * 1e-3)[0]
        first = loud[0] * frame / p.sample_rate
        onset = p.events[0][0]
        assert onset - 0.011 <= first <= onset + 0.1, (p.label, first, onset)
        assert float(np.abs(x[: max(0, int((onset - 0.005) * p.sample_rate))]).max(initial=0.0)) == 0.0


def test_the_sample_rate_is_the_audio_rate(plans):
    """A held note's fundamental lies where the key says, read at the clip's own rate."""
    for rate in SAMPLE_RATES:
        for p in _find(
            plans,
            lambda p, rate=rate: (
                p.label in ("organ", "flute", "violin") and p.kind == "note" and p.note_seconds >= 0.3 and p.sample_rate == rate
            ),
            limit=1,
        ):
            x = render_plan(p)
            onset, held, key, _ = p.events[0]
            seg = x[int((onset + 0.05) * rate) : int((onset + min(held, 1.0)) * rate)]
            f, spec = _spectrum(seg, rate)
            spec[f < 50] = 0
            top = f[int(np.argmax(spec))]
            harmonic = top / _hz(key)
            assert abs(harmonic - round(harmonic)) < 0.03 and 1 <= round(harmonic) <= 6, (p.label, key, rate, top)


def test_chords_sound_several_pitches_at_once(plans):
    """The FFT of a chord shows a strong peak at two or more of its fundamentals that are not harmonics
    of one another; a single note of the same instrument shows no peak at the others."""
    harmonic_intervals = {12, 19, 24, 28, 31, 36}
    chords = _find(
        plans,
        lambda p: p.label in ("organ", "flute") and p.kind == "chord" and len(p.events) >= 3 and p.note_seconds >= 0.3,
        limit=3,
    )
    for p in chords:
        x = render_plan(p)
        start = max(e[0] for e in p.events) + 0.05
        seg = x[int(start * p.sample_rate) : int((start + min(p.note_seconds - 0.06, 1.0)) * p.sample_rate)]
        f, spec = _spectrum(seg, p.sample_rate)
        strong = [k for k in sorted(p.keys) if _band_peak(f, spec, _hz(k)) > 0.05 * spec.max()]
        independent = [k for k in strong if not any(k - j in harmonic_intervals for j in strong if j < k)]
        assert len(independent) >= 2, (p.label, p.detail, p.keys, strong)
        # the lowest note alone has no such peaks at the other notes' fundamentals
        low = min(p.keys)
        solo = played.PlayedPlan(
            0,
            0,
            p.label,
            "note",
            p.region,
            "long",
            1.0,
            p.clip_seconds,
            p.peak,
            p.sample_rate,
            ((p.events[0][0], p.note_seconds, low, 100),),
        )
        y = render_plan(solo)
        seg1 = y[int(start * p.sample_rate) : int(start * p.sample_rate) + len(seg)]
        f1, spec1 = _spectrum(seg1, p.sample_rate)
        others = [k for k in independent if k != low and (k - low) not in harmonic_intervals]
        assert others and all(_band_peak(f1, spec1, _hz(k)) < 0.05 * spec1.max() for k in others), (p.detail, p.keys)


def test_drum_patterns_are_several_hits():
    kicks = [plan_clip(i, 0) for i in range(13, 17 * 30, 17)]  # clip 13 of every 17 is a kick drum
    p = next(p for p in kicks if p.kind == "pattern" and p.clip_seconds < 4)
    x = render_plan(p)
    rate = p.sample_rate
    energy = [float(np.abs(x[int(t * rate) : int(t * rate) + int(0.02 * rate)]).max()) for t, *_ in p.events]
    gaps = [float(np.abs(x[int((t - 0.004) * rate) : int(t * rate)]).max(initial=0.0)) for t, *_ in p.events[1:]]
    assert len(p.events) >= 3 and min(energy) > 0.1 * p.peak
    assert all(g < e for g, e in zip(gaps, energy[1:]))  # each hit starts anew


# --- written apart from the training sampler --------------------------------------------------------


def test_the_training_sampler_is_never_named_or_called(monkeypatch):
    source = inspect.getsource(played)
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    forbidden = {
        "make_instrument_corpus",
        "render_note",
        "render_events",
        "draw_clips",
        "recording_conditions",
        "note_key",
        "InstrumentCorpus",
        "CaptionedCorpus",
        "_renderer",
        "_Renderer",
        "_draw_key",
        "_playable_keys",
        "_calibration",
    }
    assert not (names | {a for _, a in imported}) & forbidden
    from_skclap = {
        (m, a)
        for m, a in imported
        if m and not m.startswith(("__future__", "collections", "dataclasses", "functools", "pathlib", "typing"))
    }
    assert from_skclap <= {("instruments", "DEFAULT_SOUNDFONT"), ("instruments", "INSTRUMENTS"), ("instruments", "soundfont_path")}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attributes & {"low", "high"}  # Instrument.low / .high: the corpus's registers
    # and at run time: the training sampler's functions may raise, the set is still drawn
    for name in ("make_instrument_corpus", "render_note", "render_events", "draw_clips", "recording_conditions", "_renderer"):
        if hasattr(ins, name):
            monkeypatch.setattr(ins, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("training sampler called")))
    assert len(make_played_set(3, seed=1)) == 3


# --- the table -------------------------------------------------------------------------------------


def test_condition_table_counts_and_chance(small_set):
    truth = small_set.labels
    wrong = ["piano" if y != "piano" else "organ" for y in truth]
    right = condition_table(small_set, truth)
    assert (right["accuracy"] == 1.0).all() and np.allclose(right["chance"], 1 / 17)
    none = condition_table(small_set.conditions, wrong)
    assert (none["accuracy"] == 0.0).all()
    half = [t if i % 2 else w for i, (t, w) in enumerate(zip(truth, wrong))]
    table = condition_table(small_set, half)
    overall = table.iloc[0]
    assert (overall["condition"], overall["n"], overall["accuracy"]) == ("overall", 34, 0.5)
    for condition in ("kind", "clip length", "peak level", "sample rate", "instrument"):
        assert table.loc[table["condition"] == condition, "n"].sum() == 34, condition
    for condition in ("region", "note length"):  # pitched clips only
        assert table.loc[table["condition"] == condition, "n"].sum() == 26, condition
    assert list(table.loc[table["condition"] == "instrument", "value"]) == [i.name for i in INSTRUMENTS]
    assert list(table.loc[table["condition"] == "instrument", "n"]) == [2] * 17
    with pytest.raises(ValueError, match="predictions"):
        condition_table(small_set, truth[:-1])
    both = combine_tables([right, none, table])
    assert list(both["value"]) == list(right["value"])
    first = both.iloc[0]
    assert first["mean"] == pytest.approx(0.5) and first["std"] == pytest.approx(0.5) and first["per_seed"] == (1.0, 0.0, 0.5)
    text = markdown_table(both)
    assert text.splitlines()[2].startswith("| overall | all | 102 | 50.0 % ± 50.0 %")
    assert "| instrument | crash cymbal |" in markdown_table(table)


def test_written_folders_hold_each_clip_at_its_own_rate(tmp_path):
    import soundfile as sf

    played = make_played_set(10, seed=2, instruments=["piano", "snare drum"])
    paths = played.write_folders(tmp_path / "genres")
    assert [p.parent.name for p in paths] == played.labels
    assert paths[2].name == "piano.00001.wav"
    for path, clip in zip(paths, played.clips):
        wave, rate = sf.read(path, dtype="float32")
        assert rate == clip.sample_rate and len(wave) == len(clip.waveform)
        np.testing.assert_allclose(wave, clip.waveform, atol=1 / 32767)
