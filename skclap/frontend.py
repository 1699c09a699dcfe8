"""Log-mel spectrogram front-end in torch: ``torch.stft`` + a Slaney mel filterbank + dB.

Numerically the same as the torchlibrosa front-end of the released CLAP model (Hann window, centre
padding by reflection, power spectrum, librosa's default mel filters, ``10 * log10(max(x, amin))``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["LogMel", "mel_filterbank"]


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's ``htk=False``)."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``.

    The same filters as ``librosa.filters.mel(sr, n_fft, n_mels=..., fmin=..., fmax=...)``.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2; got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(np.asarray(fmin)), _hz_to_mel(np.asarray(fmax)), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """Waveforms ``(batch, samples)`` -> log-mel spectrograms ``(batch, 1, frames, n_mels)`` in dB."""

    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        fmin: float,
        fmax: float,
        amin: float = 1e-10,
        ref: float = 1.0,
        filter_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.amin = amin
        self.ref_db = 10.0 * float(np.log10(max(amin, ref)))
        # Derived from the config, so they are not part of the state dict.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        # ``filter_rate``: the rate the filters are laid out for, when a model was built with filters
        # for another rate than its audio's (msclap 2023: 32 kHz filters on 44.1 kHz audio).
        fb = mel_filterbank(filter_rate or sample_rate, n_fft, n_mels, fmin, fmax)
        self.register_buffer("mel_basis", torch.from_numpy(fb.T.copy()), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (batch, freq, frames)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.mel_basis)  # (batch, frames, n_mels)
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=self.amin)) - self.ref_db
        return logmel.unsqueeze(1)
