"""The training corpus of instruments as people play them: any key of the compass, notes, melodies and
chords, at any level and rate, captioned only with what is true of each clip."""

from __future__ import annotations

import numpy as np
import pytest

from skclap.datasets import performances as perf
from skclap.datasets.instruments import INSTRUMENTS, render_events
from skclap.datasets.performances import make_performance_corpus, plan_phrase, trained_presets

from .helpers import needs_debian_soundfonts

BY_NAME = {i.name: i for i in INSTRUMENTS}
N = 17 * 24


@pytest.fixture(scope="module")
def corpus():
    return make_performance_corpus(N, seed=5, seconds=1.0)


def test_deterministic_in_the_seed_and_independent_of_render_order(corpus):
    again = make_performance_corpus(N, seed=5, seconds=1.0)
    assert [c.captions for c in again.clips] == [c.captions for c in corpus.clips]
    alone = again.waveform(40)
    corpus.waveform(3), corpus.waveform(200)  # other clips first, on the shared synthesizers
    np.testing.assert_array_equal(corpus.waveform(40), alone)
    other = make_performance_corpus(N, seed=6, seconds=1.0)
    assert [c.seed for c in other.clips] != [c.seed for c in corpus.clips]


def test_every_kind_is_played_and_keys_cover_the_compass(corpus):
    phrases = [corpus.phrase(i) for i in range(len(corpus))]
    for inst in INSTRUMENTS:  # plans are cheap: enough of them that the rarest kind (10 %) is all but sure to come
        assert {plan_phrase(inst, s, 1.0).kind for s in range(200)} == set(perf.KINDS[inst.pitched]), inst.name
    for inst in (i for i in INSTRUMENTS if i.pitched):
        keys = [k for c, p in zip(corpus.clips, phrases) if c.family == inst.name for k in p.keys]
        assert min(keys) >= inst.compass[0] and max(keys) <= inst.compass[1]
        # keys between the two extreme registers are played too, not only the registers
        assert any(inst.low[1] < k < inst.high[0] for k in keys), inst.name
    assert {p.rate for p in phrases} == set(perf.RENDER_RATES)


def test_drums_play_every_key_the_general_midi_kit_gives_them(corpus):
    """The percussion map has two bass drums, two snares, a closed, pedal and open hi hat and two
    crash cymbals: a corpus of one key each would leave the others unheard."""
    for inst in (i for i in INSTRUMENTS if i.drums):
        keys = {k for i, c in enumerate(corpus.clips) if c.family == inst.name for k in corpus.phrase(i).keys}
        assert keys == set(inst.kit_keys), inst.name
    assert set(BY_NAME["hi hat"].kit_keys) == {42, 44, 46}


def test_chords_sound_their_notes_together(corpus):
    chords = [(i, p) for i in range(len(corpus)) if (p := corpus.phrase(i)).kind == "chord" and len(set(p.keys)) >= 2]
    assert chords
    for _, p in chords[:20]:
        onsets = sorted(e[0] for e in p.events[: len(set(p.keys))])
        assert onsets[-1] - onsets[0] < 0.2  # struck at once, or strummed
    # and the synthesizer holds them at once: a chord is louder than its lowest note alone
    i, p = chords[0]
    inst = corpus.clips[i].family
    first = [e for e in p.events if e[0] <= p.events[0][0] + 0.2]
    together = render_events(inst, [(0.0, 0.5, e[2], 100) for e in first], 0.5)
    lowest = render_events(inst, [(0.0, 0.5, min(e[2] for e in first), 100)], 0.5)
    assert np.sqrt(np.mean(together**2)) > 1.2 * np.sqrt(np.mean(lowest**2))


def test_captions_say_a_register_only_where_every_key_lies_in_it(corpus):
    for i, clip in enumerate(corpus.clips):
        inst, keys = BY_NAME[clip.family], corpus.phrase(i).keys
        pitch = clip.attributes.get("pitch")
        if pitch == "low":
            assert max(keys) <= inst.low[1]
        elif pitch == "high":
            assert min(keys) >= inst.high[0]
        elif inst.pitched:
            assert not (max(keys) <= inst.low[1] or min(keys) >= inst.high[0])
        said = " ".join(clip.captions)
        assert any(noun in said for noun in inst.nouns)


def test_levels_name_no_instrument(corpus):
    """A clip's peak is the level its plan drew, and every instrument draws from the same wide range."""
    for i in range(0, len(corpus), 7):
        w = corpus.waveform(i)
        assert len(w) == 16000 and np.isfinite(w).all()
        assert 20 * np.log10(np.abs(w).max()) == pytest.approx(corpus.phrase(i).peak_db, abs=0.5)  # and a faint noise floor
    levels = {inst.name: [plan_phrase(inst, s, 1.0).peak_db for s in range(300)] for inst in INSTRUMENTS}
    for name, p in levels.items():
        assert min(p) < -30 and max(p) > -3, name
    medians = [np.median(p) for p in levels.values()]
    assert max(medians) - min(medians) < 6


def test_notes_struck_before_the_clip_ring_into_it():
    inst = BY_NAME["piano"]
    led = [s for s in range(400) if (p := plan_phrase(inst, s, 1.0)).lead > 0 and p.events[0][0] < p.lead]
    assert led  # some clips begin mid-note, as the later windows of a long recording do
    corpus = make_performance_corpus(1, seed=0, instruments=["piano"])
    corpus.clips[0] = type(corpus.clips[0])("piano", {}, ["a piano"], led[0])
    assert np.abs(corpus.waveform(0)[:160]).max() > 1e-3  # sound from the first samples


@needs_debian_soundfonts
def test_clips_are_played_on_every_preset_of_the_instrument_the_soundfont_holds():
    """Half the clips of an instrument with other presets play one of them (another piano, another
    kit), so that one soundfont's one recording of an instrument is not all that its name means."""
    fonts = ("MuseScore_General_Lite", "sf_GMbank")
    names = ["piano", "saxophone", "cello", "hi hat"]
    corpus = make_performance_corpus(4 * 60, seed=3, soundfonts=fonts, instruments=names)
    used: dict[tuple[str, str], set] = {}
    for i, clip in enumerate(corpus.clips):
        used.setdefault((clip.family, corpus.soundfont(i)), set()).add(corpus.phrase(i).preset)
    assert len(used) == 8
    for (name, font), presets in used.items():
        assert presets == set(trained_presets(name, font)), (name, font)  # every one, and no other
    assert used[("cello", "sf_GMbank")] == {(0, 42)}  # an instrument without variants plays its own
    # a variant is another recording, or the same samples voiced otherwise: never the default again
    default = render_events("piano", [(0.0, 0.5, 60, 100)], 0.5, 16000, "MuseScore_General_Lite")
    for preset in trained_presets("piano", "MuseScore_General_Lite")[1:]:
        other = render_events("piano", [(0.0, 0.5, 60, 100)], 0.5, 16000, "MuseScore_General_Lite", preset)
        assert np.corrcoef(default, other)[0, 1] < 0.99, preset


@needs_debian_soundfonts
def test_a_preset_the_soundfont_lacks_is_refused_not_replaced():
    """The synthesizer would play the bank's default instead, under the variant's name."""
    assert (8, 0) not in trained_presets("piano", "sf_GMbank")
    with pytest.raises(ValueError, match=r"sf_GMbank.*\(8, 0\).*piano"):
        render_events("piano", [(0.0, 0.5, 60, 100)], 0.5, 16000, "sf_GMbank", (8, 0))


@pytest.mark.parametrize(
    "font", ["TimGM6mb", *(pytest.param(f, marks=needs_debian_soundfonts) for f in ("MuseScore_General_Lite", "sf_GMbank"))]
)
def test_drum_kits_play_their_pieces_not_other_drums(font):
    """Each kit a drum is drawn from sounds like that piece on every one of its keys: a hi hat or a
    cymbal rings high (the training soundfonts' orchestra kit, left out, puts timpani on those keys)."""
    for name in ("hi hat", "crash cymbal"):
        inst = BY_NAME[name]
        for preset in trained_presets(name, font):
            for key in inst.kit_keys:
                x = render_events(name, [(0.0, 0.3, key, 100)], 0.6, 16000, font, preset)
                spectrum = np.abs(np.fft.rfft(x))
                centroid = (spectrum * np.fft.rfftfreq(len(x), 1 / 16000)).sum() / spectrum.sum()
                assert centroid > 2500, (name, preset, key)
