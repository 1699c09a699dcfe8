"""Level and register descriptors beside the CNN14: the experiment's audio tower ``cnn14-descriptors``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.composition.descriptors import TOWER, Descriptors, DescriptorsCnn14
from experiments.composition.protocol import model_config
from skclap import CLAPModel, load_model
from skclap.frontend import LogMel
from skclap.models.fused import fused_audio_encoder

RATE = 16000
N_MELS = 48


@pytest.fixture(scope="module")
def frontend() -> LogMel:
    return LogMel(RATE, 512, 256, N_MELS, 20.0, 8000.0)


def measure(frontend: LogMel, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return Descriptors(N_MELS).measure(frontend(torch.as_tensor(wave, dtype=torch.float32)[None]))[0].numpy()


def tone(f0: float, seconds: float = 1.0, partials=(1.0,), amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(partials))


def reference(logmel: np.ndarray, loud_db: float = 20.0, partial_db: float = 30.0) -> np.ndarray:
    """The four descriptors of one log-mel (frames x mels, dB), frame by frame in plain numpy."""
    positions = np.linspace(-1, 1, logmel.shape[1])
    frame_db = np.array([10 * np.log10(np.sum(10 ** (row / 10))) for row in logmel])
    peak = frame_db.max()
    loud = [t for t in range(len(frame_db)) if frame_db[t] >= peak - loud_db]
    lowest, centroid = [], []
    for t in loud:
        row = logmel[t]
        lowest.append(positions[next(m for m in range(len(row)) if row[m] >= row.max() - partial_db)])
        power = 10 ** (row / 10)
        centroid.append(np.sum(power * positions) / np.sum(power))
    return np.array([peak, np.mean(frame_db[loud]), np.mean(lowest), np.mean(centroid)])


def test_descriptors_equal_a_frame_by_frame_reference():
    rng = np.random.default_rng(0)
    logmel = rng.normal(-40, 15, size=(3, 1, 30, N_MELS))
    logmel[0, 0, 10:] -= 35  # a note that ends: later frames fall out of the loud ones
    with torch.no_grad():
        got = Descriptors(N_MELS).measure(torch.as_tensor(logmel, dtype=torch.float32)).numpy()
    want = np.stack([reference(x[0]) for x in logmel])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_level_follows_gain_and_register_follows_the_fundamental(frontend):
    note = tone(196.0, partials=(0.4, 1.0, 0.7, 0.5, 0.3))  # G3 with a weak fundamental
    quiet = measure(frontend, note * 10 ** (-10 / 20))
    loud = measure(frontend, note)
    np.testing.assert_allclose(loud[:2] - quiet[:2], 10.0, atol=0.05)  # peak and mean level, dB
    np.testing.assert_allclose(loud[2:], quiet[2:], atol=1e-3)  # register and brightness do not move
    # the register is the fundamental's, not the strongest partial's, and rises with it
    assert measure(frontend, tone(196.0))[2] == pytest.approx(loud[2], abs=1.01 * 2 / (N_MELS - 1))  # one mel bin
    high = measure(frontend, tone(392.0, partials=(0.4, 1.0, 0.7, 0.5, 0.3)))
    assert high[2] > loud[2] + 2 / (N_MELS - 1)


def test_silence_after_a_note_leaves_its_level(frontend):
    short = tone(440.0, seconds=0.3)
    padded = np.concatenate([short, np.zeros(RATE - len(short))])
    a, b = measure(frontend, tone(440.0)), measure(frontend, padded)
    assert b[0] == pytest.approx(a[0], abs=0.5) and b[1] == pytest.approx(a[1], abs=1.0)
    assert b[2] == pytest.approx(a[2], abs=1 / (N_MELS - 1))  # within half a mel bin (the cut-off clicks)


def test_a_model_with_the_descriptors_tower(tmp_path):
    config = model_config("small", seconds=1.0, descriptors=True)
    assert config.audio["name"] == TOWER and config.audio["freq_position"]  # the small preset's CNN14 options kept
    model = CLAPModel(config)
    encoder = model.audio_encoder
    assert isinstance(encoder.backbone, DescriptorsCnn14)
    assert encoder.projection.linear1.in_features == config.audio["dim"] + Descriptors.size
    waves = torch.as_tensor(np.stack([tone(f, amplitude=a) for f in (110.0, 660.0) for a in (0.01, 0.3)]), dtype=torch.float32)
    model.train()
    with torch.no_grad():
        model.encode_audio(waves)  # batch statistics of the descriptors
    model.eval()
    with torch.inference_mode():
        ref = model.encode_audio(waves)
        torch.testing.assert_close(fused_audio_encoder(model)(waves), ref, atol=1e-4, rtol=1e-4)
        before = ref.clone()
        encoder.projection.linear1.weight[:, -Descriptors.size :].zero_()  # cut the descriptors
        assert (model.encode_audio(waves) - before).abs().max() > 1e-3
    model.save_pretrained(tmp_path / "m")
    again = load_model(tmp_path / "m").eval()  # the tower is registered: importing the experiment did it
    assert again.config.audio["name"] == TOWER
    assert torch.equal(again.audio_encoder.backbone.descriptors.norm.running_mean, encoder.backbone.descriptors.norm.running_mean)
    with torch.inference_mode():
        torch.testing.assert_close(again.encode_audio(waves), model.encode_audio(waves))
