"""The real-instrument corpus: rendered from the soundfont, deterministic, captioned by its attributes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from skclap.datasets import instruments as ins
from skclap.datasets.instruments import ATTRIBUTES, INSTRUMENTS, attribute_classes, instrument_prompts, make_instrument_corpus

from .helpers import needs_debian_soundfonts


def _words(attribute: str, value: str) -> set[str]:
    words = ins.value_words(attribute, value)
    assert words and "pitched" not in words
    return words


def _db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def _centroid(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float((spec * f).sum() / (spec.sum() + 1e-12))


def test_deterministic_and_independent_of_render_order():
    a = make_instrument_corpus(40, seed=3, seconds=1.0)
    b = make_instrument_corpus(40, seed=3, seconds=1.0)
    assert [c.captions for c in a.clips] == [c.captions for c in b.clips]
    alone = b.waveform(17)
    a.waveforms()  # render everything else first
    np.testing.assert_array_equal(a.waveform(17), alone)
    c = make_instrument_corpus(40, seed=4, seconds=1.0)
    assert [x.captions for x in c.clips] != [x.captions for x in a.clips]


def test_a_clip_sounds_the_same_after_any_other_from_the_shared_synthesizer():
    """One synthesizer per soundfont renders every clip: nothing of the clip before may sound into
    the next (a fresh synthesizer is the reference)."""
    corpus = make_instrument_corpus(40, seed=3, seconds=1.0)
    shared = ins._renderer(16000, "TimGM6mb")
    fresh = ins._Renderer(ins.soundfont_path(), 16000)
    cello, marimba = ins._BY_NAME["cello"], ins._BY_NAME["marimba"]
    events = [(0.0, 0.2, 50, 40)]
    reference = fresh.render(marimba, events, 1.0)
    shared.render(cello, [(0.0, 0.95, 40, 127)], 1.0)  # a loud note still sounding when its clip ends
    np.testing.assert_array_equal(shared.render(marimba, events, 1.0), reference)
    for i in (0, 2, 29):
        alone = ins.render_note(corpus.clips[i], 16000, 1.0)
        shared.render(ins._BY_NAME["crash cymbal"], [(0.0, 0.9, 49, 127)], 1.0)
        np.testing.assert_array_equal(ins.render_note(corpus.clips[i], 16000, 1.0), alone)


@needs_debian_soundfonts
def test_clips_are_rendered_from_the_soundfonts_asked_for():
    fonts = ("MuseScore_General_Lite", "sf_GMbank")
    corpus = make_instrument_corpus(34, seed=2, seconds=1.0, soundfonts=fonts)
    used = [corpus.soundfont(i) for i in range(len(corpus))]
    assert set(used) == set(fonts) and all(u == fonts[c.seed % 2] for u, c in zip(used, corpus.clips))
    tim = make_instrument_corpus(34, seed=2, seconds=1.0)  # the same clips (notes, captions) from TimGM6mb
    assert [c.captions for c in tim.clips] == [c.captions for c in corpus.clips]
    gaps: dict[str, list[float]] = {f: [] for f in fonts}
    for i in range(len(corpus)):
        x, y = corpus.waveform(i), tim.waveform(i)
        gaps[used[i]].append(_db(x) - _db(y))
        if used[i] == "MuseScore_General_Lite":  # other samples (sf_GMbank shares some of TimGM6mb's)
            assert np.abs(x - y).max() > 1e-3
    for font, gap in gaps.items():  # calibrated alike: a soundfont recorded quieter is brought up
        assert abs(np.mean(gap)) < 3 and np.max(np.abs(gap)) < 20, (font, gap)  # one note may decay faster
    # a subset keeps each clip's soundfont
    sub = corpus.subset([3, 0])
    assert [sub.soundfont(0), sub.soundfont(1)] == [used[3], used[0]]
    np.testing.assert_array_equal(sub.waveform(0), corpus.waveform(3))


def test_augmented_clips_keep_their_notes_and_level_in_conditions_of_their_own():
    plain = make_instrument_corpus(34, seed=5, seconds=1.0)
    aug = make_instrument_corpus(34, seed=5, seconds=1.0, augment=True)
    again = make_instrument_corpus(34, seed=5, seconds=1.0, augment=True)
    assert [c.captions for c in aug.clips] == [c.captions for c in plain.clips]
    diffs = []
    for i in range(len(aug)):
        x, y = aug.waveform(i), plain.waveform(i)
        np.testing.assert_array_equal(x, again.waveform(i))  # deterministic in the clip
        assert abs(_db(x) - _db(y)) < 1.5  # the level (soft or loud) is kept
        diffs.append(np.abs(x - y).max())
    assert min(diffs) > 1e-3  # every clip is changed
    rng = np.random.default_rng(0)
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 0.1
    out = ins.recording_conditions(tone, 16000, rng)
    assert out.shape == tone.shape and abs(_db(out) - _db(tone)) < 0.5


def test_a_missing_soundfont_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setitem(ins.SOUNDFONTS, "sf_GMbank", (ins.SOUNDFONTS["sf_GMbank"][0], str(tmp_path / "none.sf2")))  # the real install hint
    with pytest.raises(FileNotFoundError, match="apt-get install csound-soundfont"):
        make_instrument_corpus(4, soundfonts=("TimGM6mb", "sf_GMbank"))
    with pytest.raises(FileNotFoundError, match="neither a name"):
        ins.soundfont_path("no-such-font")
    with pytest.raises(ValueError, match="soundfonts is empty"):
        make_instrument_corpus(4, soundfonts=())


def test_captions_say_only_the_clips_own_attributes():
    corpus = make_instrument_corpus(400, seed=0, seconds=0.5)
    said = {"pitch": 0, "dynamics": 0}
    for clip in corpus.clips:
        for cap in clip.captions:
            words = set(cap.split())
            assert any(noun in cap for noun in ins._BY_NAME[clip.family].nouns), cap
            for attribute, table in ATTRIBUTES.items():
                for value in table:
                    if words & _words(attribute, value):
                        assert clip.attributes.get(attribute) == value, (cap, clip.attributes)
                        said[attribute] += 1
    assert said["pitch"] > 300 and said["dynamics"] > 300


def test_dynamics_and_register_are_audible():
    rate = 16000
    corpus = make_instrument_corpus(17 * 16, seed=1, sample_rate=rate, seconds=1.0)
    by = {}
    for clip, x in zip(corpus.clips, corpus.waveforms()):
        by.setdefault((clip.family, "dynamics", clip.attributes["dynamics"]), []).append(_db(x))
        if "pitch" in clip.attributes and clip.attributes["dynamics"] == "loud":
            by.setdefault((clip.family, "pitch", clip.attributes["pitch"]), []).append(_centroid(x, rate))
    for inst in INSTRUMENTS:
        soft, loud = by.get((inst.name, "dynamics", "soft")), by.get((inst.name, "dynamics", "loud"))
        if soft and loud:
            assert np.mean(loud) - np.mean(soft) > 10, inst.name  # soft clips are clearly quieter
    # the high register is brighter than the low one, instrument by instrument
    pairs = [
        (np.median(by[(i.name, "pitch", "low")]), np.median(by[(i.name, "pitch", "high")]))
        for i in INSTRUMENTS
        if i.pitched and (i.name, "pitch", "low") in by and (i.name, "pitch", "high") in by
    ]
    assert len(pairs) >= 8 and sum(hi > lo for lo, hi in pairs) >= len(pairs) - 1


def test_real_samples_not_silence():
    corpus = make_instrument_corpus(34, seed=2, seconds=1.0)
    for clip, x in zip(corpus.clips, corpus.waveforms()):
        assert x.dtype == np.float32 and x.shape == (16000,) and np.isfinite(x).all()
        assert _db(x) > -60 and np.abs(x).max() <= 1.0, clip


def test_folders_in_gtzan_layout_hold_each_clip_under_its_label(tmp_path):
    import soundfile as sf

    corpus = make_instrument_corpus(9, seed=4, seconds=0.5, instruments=["piano", "snare drum", "flute"])
    paths = corpus.write_folders(tmp_path / "genres")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == sorted(
        f"genres/{n}/{n}.{k:05d}.wav" for n in ("piano", "snare drum", "flute") for k in range(3)
    )
    for path, clip, wave in zip(paths, corpus.clips, corpus.waveforms()):
        assert path.parent.name == clip.label
        data, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and sf.info(path).subtype == "PCM_16"
        np.testing.assert_allclose(data, wave, atol=1 / 32767)


def test_disk_cache_is_reused(tmp_path):
    first = make_instrument_corpus(20, seed=5, seconds=0.5, cache_dir=tmp_path)
    files = list(tmp_path.glob("instruments-*.npy"))
    assert len(files) == 1
    second = make_instrument_corpus(20, seed=5, seconds=0.5, cache_dir=tmp_path)
    assert isinstance(second.cache, np.memmap)
    plain = make_instrument_corpus(20, seed=5, seconds=0.5)
    for i in (0, 7, 19):
        np.testing.assert_allclose(second.waveform(i), plain.waveform(i), atol=1 / 32767)
        np.testing.assert_array_equal(first.waveform(i), second.waveform(i))
    sub = second.subset([19, 7])
    np.testing.assert_array_equal(sub.waveform(0), second.waveform(19))
    make_instrument_corpus(20, seed=6, seconds=0.5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("instruments-*.npy"))) == 2


def test_disk_cache_key_follows_what_is_rendered(tmp_path, monkeypatch):
    make_instrument_corpus(10, seed=0, seconds=0.5, cache_dir=tmp_path)
    lowered = tuple(replace(i, high=(i.high[0] - 12, i.high[1] - 12)) if i.pitched else i for i in INSTRUMENTS)
    monkeypatch.setattr(ins, "INSTRUMENTS", lowered)
    monkeypatch.setattr(ins, "_BY_NAME", {i.name: i for i in lowered})
    ins._playable_keys.cache_clear()
    try:
        moved = make_instrument_corpus(10, seed=0, seconds=0.5, cache_dir=tmp_path)
        assert len(list(tmp_path.glob("instruments-*.npy"))) == 2  # not served the old registers' samples
        fresh = make_instrument_corpus(10, seed=0, seconds=0.5)
        np.testing.assert_allclose(moved.waveform(3), fresh.waveform(3), atol=1 / 32767)
    finally:
        ins._playable_keys.cache_clear()


def test_without_words_drops_only_the_held_out_pairs():
    corpus = make_instrument_corpus(400, seed=0, seconds=0.5)
    held = [("cello", "low"), ("flute", "soft")]
    out = corpus.without_words(held, seed=0)
    for before, after in zip(corpus.clips, out.clips):
        low_cello = before.family == "cello" and before.attributes.get("pitch") == "low"
        soft_flute = before.family == "flute" and before.attributes["dynamics"] == "soft"
        if low_cello or soft_flute:
            banned = _words("pitch", "low") if low_cello else _words("dynamics", "soft")
            assert not any(set(cap.split()) & banned for cap in after.captions), after.captions
            assert after.attributes == before.attributes and after.seed == before.seed
        else:
            assert after.captions == before.captions


def test_classes_and_prompts():
    pitch, dyn = attribute_classes("pitch"), attribute_classes("dynamics")
    assert len(pitch) == 2 * 13 + 4 and "low cello" in pitch and "kick drum" in pitch
    assert len(dyn) == 2 * 17 and "soft snare drum" in dyn
    prompts = instrument_prompts("high cello")
    assert "a high cello" in prompts and "a high pitched cello" in prompts and all("cello" in p for p in prompts)
    assert "an organ" in instrument_prompts("organ")
    with pytest.raises(ValueError, match="banjo"):
        instrument_prompts("high banjo")


def test_missing_soundfont_says_what_to_install(monkeypatch):
    monkeypatch.setattr(ins.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'skclap\[instruments\]'"):
        ins.soundfont_path()
