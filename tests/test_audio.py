import numpy as np
import pytest
import soundfile as sf
import torch

from skclap import audio
from skclap.exceptions import AudioError

from .conftest import sine


def dominant_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()])


@pytest.mark.parametrize("fmt,ext,rate", [("WAV", "wav", 44100), ("FLAC", "flac", 22050), ("OGG", "ogg", 48000), ("MP3", "mp3", 48000)])
def test_load_formats_resamples_to_target(tmp_path, fmt, ext, rate):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, sine(1000, 1.0, rate), rate, format=fmt)
    wave, sr = audio.load(path, 16000)
    assert sr == 16000
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) < 0.02 * 16000  # mp3 adds codec padding
    assert abs(dominant_freq(wave, 16000) - 1000) < 5


def test_stereo_file_is_averaged_not_concatenated(tmp_path):
    left, right = sine(300, 0.5, 8000), sine(1200, 0.5, 8000, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    wave, sr = audio.load(path)
    assert sr == 8000 and wave.shape == left.shape
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_multichannel_array_is_averaged(layout):
    x = np.stack([np.ones(1000), -np.ones(1000) * 0.5]).astype(np.float32)
    x = x if layout == "channels_first" else x.T
    np.testing.assert_allclose(audio.as_waveform(x), np.full(1000, 0.25), atol=1e-7)


def test_integer_pcm_is_scaled():
    x = np.array([0, 16384, -32768], dtype=np.int16)
    np.testing.assert_allclose(audio.as_waveform(x), [0.0, 0.5, -1.0])


def test_resample_keeps_pitch_and_length():
    y = audio.resample(sine(440, 2.0, 44100), 44100, 16000)
    assert len(y) == 32000
    assert abs(dominant_freq(y, 16000) - 440) < 2


def test_prepare_forms_agree(wav_file):
    target = audio.prepare(str(wav_file), 16000)
    x = sine(440, 1.0, 16000)
    np.testing.assert_allclose(target, x, atol=1e-4)  # PCM_16 quantisation
    np.testing.assert_array_equal(audio.prepare(x, 16000, sample_rate=16000), x)
    np.testing.assert_array_equal(audio.prepare((x, 16000), 16000), x)
    np.testing.assert_array_equal(audio.prepare({"array": x, "sampling_rate": 16000}, 16000), x)
    np.testing.assert_array_equal(audio.prepare(torch.from_numpy(x), 16000, sample_rate=16000), x)
    assert len(audio.prepare((x, 8000), 16000)) == 32000


def test_windows_short_clip_is_repeat_padded():
    x = np.arange(1, 4, dtype=np.float32)
    w = audio.windows(x, 8)
    np.testing.assert_array_equal(w, [[1, 2, 3, 1, 2, 3, 1, 2]])


def test_windows_long_clip_is_cut_consecutively_last_aligned_to_end():
    x = np.arange(10, dtype=np.float32)
    w = audio.windows(x, 4)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]])
    exact = audio.windows(np.arange(8, dtype=np.float32), 4)
    np.testing.assert_array_equal(exact, [[0, 1, 2, 3], [4, 5, 6, 7]])
    # Deterministic: the same call gives the same windows.
    np.testing.assert_array_equal(audio.windows(x, 4), w)


def test_window_spans_in_samples_and_in_seconds():
    """One rule places the windows the model sees and the times ``embed`` reports for them."""
    assert audio.window_spans(10, 4) == [(0, 4), (4, 8), (6, 10)]
    assert audio.window_spans(3, 8) == [(0, 3)]  # one window over all of it, padded to 8
    assert audio.window_spans(25.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
    assert audio.window_spans(7.5, 10.0, count=1) == [(0.0, 7.5)]
    # a count made on the resampled audio wins over the one the duration would give
    assert audio.window_spans(20.5, 10.0, count=2) == [(0.0, 10.0), (10.0, 20.0)]


def test_stream_windows_of_a_file_exactly_one_window_long(tmp_path):
    path = tmp_path / "one.wav"
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 0.1
    sf.write(path, x, 16000, subtype="FLOAT")
    for block in (1, 2):  # the window fills a whole read, or part of one
        got = np.concatenate(list(audio.stream_windows(path, 16000, 1000, block=block)))
        np.testing.assert_array_equal(got, audio.windows(audio.load(path, 16000)[0], 1000))


# ----------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        audio.prepare(str(tmp_path / "nope.wav"), 16000)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        audio.prepare(str(tmp_path), 16000)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav.*empty \(0 bytes\)"):
        audio.prepare(str(p), 16000)


def test_corrupt_file(tmp_path):
    p = tmp_path / "corrupt.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 3)
    with pytest.raises(AudioError, match="corrupt.wav.*could not be decoded"):
        audio.prepare(str(p), 16000)


def test_file_without_samples(tmp_path):
    p = tmp_path / "nosamples.wav"
    sf.write(p, np.zeros((0,), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="nosamples.wav.*no samples"):
        audio.prepare(str(p), 16000)


@pytest.mark.parametrize(
    "item,message",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2]), "NaN or infinite"),
        (np.array([0.1, np.inf]), "NaN or infinite"),
        (np.zeros((2, 3, 4)), "1-D .* or 2-D .* got shape \\(2, 3, 4\\)"),
        (np.array(["a", "b"]), "must be numeric"),
        (np.array([1 + 2j, 3j]), "real-valued"),
        (np.zeros((100, 200)), "more than 64 channels"),
        (None, "missing value"),
        (float("nan"), "missing value"),
    ],
)
def test_bad_arrays_name_the_item(item, message):
    with pytest.raises(AudioError, match=message) as info:
        audio.prepare(item, 16000, sample_rate=16000, name="item 7")
    assert "item 7" in str(info.value)


def test_raw_waveform_needs_a_rate():
    with pytest.raises(AudioError, match="sample_rate"):
        audio.prepare(np.zeros(100, dtype=np.float32), 16000)


def test_unclear_inputs_get_errors_naming_the_item_and_the_fix():
    from skclap import CLAPEmbedder

    emb = CLAPEmbedder(model="preset:tiny", progress=False, cache=False, device="cpu")
    one_second = np.ones(16000, np.float32)
    with pytest.raises(
        AudioError, match=r"item 0 \(array of shape \(16000,\)\): 16000 samples at 1000000000 Hz .* is sample_rate=1000000000 right\?"
    ):
        emb.set_params(sample_rate=10**9).fit_transform([one_second])
    emb.set_params(sample_rate=None)
    with pytest.raises(
        AudioError,
        match=r"item 1 .*\(array, rate\) pair needs the rate as a whole number of Hz; got '16000' \(str\): write \(array, 16000\)",
    ):
        emb.fit_transform([(one_second, 16000), (one_second, "16000")])
    with pytest.raises(AudioError, match=r"got 16000.5 \(float\)"):
        emb.fit_transform([(one_second, 16000.5)])
