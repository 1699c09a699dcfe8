"""Input that is surely a mistake is refused with the fix named, and input read once is read once
(issue 48, items 3 and 4): a rate in kHz, a transposed recording, text where audio goes, a generator."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from skclap import AudioError, CLAPEmbedder, CLAPZeroShotClassifier, clap_score
from skclap.inputs import as_items

from .conftest import sine

KW = dict(progress=False, device="cpu", cache=False)


def test_a_sample_rate_in_khz_is_refused_naming_the_rate_in_hz(tiny_model_dir):
    waves = np.stack([sine(440, 1.0, 16000)] * 2)
    with pytest.raises(AudioError, match="sample_rate 16 is below 1000 Hz.*write sample_rate=16000"):
        CLAPEmbedder(model=str(tiny_model_dir), sample_rate=16, **KW).fit(waves)  # at fit, before any audio is embedded
    with pytest.raises(AudioError, match=r"write sample_rate=44100"):
        CLAPEmbedder(model=str(tiny_model_dir), sample_rate=44.1, **KW).fit_transform(waves)
    with pytest.raises(AudioError, match=r"an \(array, rate\) pair's rate 48 .*write \(array, 48000\)"):
        CLAPEmbedder(model=str(tiny_model_dir), **KW).fit_transform([(waves[0], 48)])
    with pytest.raises(AudioError, match="below 1000 Hz"):
        clap_score(list(waves), ["a tone", "a tone"], model=str(tiny_model_dir), sample_rate=22, device="cpu")
    # the lowest real rates pass
    assert CLAPEmbedder(model=str(tiny_model_dir), sample_rate=8000, **KW).fit_transform(waves[:, :8000]).shape[0] == 2


def test_a_transposed_recording_is_refused_saying_what_to_pass(tiny_model_dir):
    stereo = np.stack([sine(440, 1.0, 16000), sine(660, 1.0, 16000)], axis=1)  # (samples, channels), as soundfile reads
    with pytest.raises(ValueError, match=r"shape \(16000, 2\).*16000 clips of 2 sample.*pass \[X\].*X\.T"):
        CLAPEmbedder(model=str(tiny_model_dir), sample_rate=16000, **KW).fit_transform(stereo)
    # what the message says to pass works: one clip, its channels averaged; or one clip per channel
    emb = CLAPEmbedder(model=str(tiny_model_dir), sample_rate=16000, **KW)
    assert emb.fit_transform([stereo]).shape[0] == 1 and emb.fit_transform(stereo.T).shape[0] == 2
    # a matrix of many short clips of a few samples each is still what scikit-learn's checks pass
    assert len(as_items(np.zeros((300, 4)))) == 300


def test_text_given_as_audio_says_where_text_goes(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'a piano'.*reads as text.*CLAPEmbedder\(modality='text'\)"):
        CLAPEmbedder(model=str(tiny_model_dir), **KW).fit_transform(["a piano", "a dog barking."])
    with pytest.raises(FileNotFoundError, match=r"'a piano'.*reads as text.*X holds audio"):
        CLAPZeroShotClassifier(model=str(tiny_model_dir), labels=["a", "b"], **KW).fit(["a piano"], ["a"])
    # a missing file with a path's look keeps the loader's error; a file named like text that exists is audio
    with pytest.raises(FileNotFoundError, match="audio file not found: 'missing.wav'"):
        CLAPEmbedder(model=str(tiny_model_dir), **KW).fit_transform(["missing.wav"])
    named = tmp_path / "a piano"
    sf.write(named, sine(440, 1.0, 16000), 16000, format="WAV")
    assert CLAPEmbedder(model=str(tiny_model_dir), **KW).fit_transform([str(named)]).shape[0] == 1


def test_a_generator_is_read_once(tiny_model_dir, tmp_path):
    for i, f in enumerate((300, 900, 2000)):
        sf.write(tmp_path / f"{i}.wav", sine(f, 1.0, 16000), 16000)
    files = sorted(tmp_path.glob("*.wav"))
    emb = CLAPEmbedder(model=str(tiny_model_dir), **KW)
    expected = emb.fit_transform(files)
    np.testing.assert_array_equal(emb.fit_transform(sorted(tmp_path.glob("*.wav"))), expected)
    np.testing.assert_array_equal(emb.fit_transform(tmp_path.glob("*.wav")).shape, expected.shape)  # glob's own order
    np.testing.assert_array_equal(emb.fit_transform(iter(files)), expected)
    text = CLAPEmbedder(model=str(tiny_model_dir), modality="text", **KW)
    assert text.fit_transform(t for t in ["a dog", "rain"]).shape[0] == 2
    # a classifier fitted on a generator reads it once too (templates chosen on the clips)
    clf = CLAPZeroShotClassifier(model=str(tiny_model_dir), templates="auto", sample_rate=16000, **KW)
    clf.fit(iter(files), ["low", "high", "high"])
    assert clf.templates_ and set(clf.classes_) == {"low", "high"}
    with pytest.raises(ValueError, match="an iterator that yielded nothing: was it already consumed"):
        spent = iter(files)
        list(spent)
        emb.fit_transform(spent)


def test_the_classes_every_classifier_fits_come_from_one_rule():
    """:func:`skclap.inputs.resolve_classes`: sorted names, the values of y, an indicator matrix's
    columns in their order, and errors that name the estimator and what it takes."""
    from skclap.inputs import class_codes, resolve_classes

    classes, tags = resolve_classes(["rain", "dog", "rain"], ["rain", "dog", "cat"], "Est")
    assert classes.tolist() == ["cat", "dog", "rain"] and not tags
    assert resolve_classes([2, 1, 2], None, "Est")[0].tolist() == [1, 2]
    assert resolve_classes(None, None, "Est", default=["b", "a"], hint="h")[0].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"Est requires y to be passed, but the target y is None \(or name them\)"):
        resolve_classes(None, None, "Est", hint="name them")
    with pytest.raises(ValueError, match=r"Est takes one label per clip \(1-D y\); got a list of label lists"):
        resolve_classes([["a"], ["a", "b"]], None, "Est")
    columns, tags = resolve_classes(np.array([[1, 0, 0], [0, 1, 1]]), ["violin", "piano", "flute"], "Est", multilabel="auto")
    assert columns.tolist() == ["violin", "piano", "flute"] and tags
    assert resolve_classes([["b"], ["a", "b"]], None, "Est", multilabel="auto")[0].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="multilabel=False"):
        resolve_classes([["b"], ["a", "b"]], None, "Est", multilabel=False)
    classes, codes = class_codes(["rain", "dog", "rain"], ["rain", "dog"], "Est")
    assert classes.tolist() == ["dog", "rain"] and codes.tolist() == [1, 0, 1]
