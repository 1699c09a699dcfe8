import librosa
import numpy as np
import pytest
import torch
from torchlibrosa.stft import LogmelFilterBank, Spectrogram

from skclap.frontend import LogMel, mel_filterbank


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax", [(44100, 1024, 64, 50, 14000), (16000, 512, 32, 20, 8000), (22050, 2048, 128, 0, 11025)]
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_logmel_matches_torchlibrosa():
    sr, n_fft, hop, n_mels, fmin, fmax = 44100, 1024, 320, 64, 50, 14000
    torch.manual_seed(0)
    wave = torch.randn(2, sr) * 0.1
    spec = Spectrogram(n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=True, pad_mode="reflect")
    mel = LogmelFilterBank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, ref=1.0, amin=1e-10, top_db=None)
    ref = mel(spec(wave))
    ours = LogMel(sr, n_fft, hop, n_mels, fmin, fmax)(wave)
    assert ours.shape == ref.shape == (2, 1, sr // hop + 1, n_mels)
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=1e-4)  # dB; fp32 STFT vs conv-STFT


def test_logmel_puts_a_tone_in_the_right_bin():
    sr = 16000
    fb = mel_filterbank(sr, 512, 32, 20, 8000)
    t = torch.arange(sr) / sr
    logmel = LogMel(sr, 512, 160, 32, 20, 8000)(torch.sin(2 * np.pi * 1000 * t)[None])
    centre_bin = int(np.argmax(fb[:, int(round(1000 * 512 / sr))]))
    assert int(logmel[0, 0].mean(0).argmax()) == centre_bin
