"""Inference speed-ups keep the numbers: fused CNN14 (folded batch norm, channels-last) and streamed
long files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from skclap import AudioError, CLAPModel, audio
from skclap.batching import normalize_rows
from skclap.inference import embed_audio
from skclap.models.fused import ShiftGemmConv3x3, fold_batchnorm, fused_audio_encoder


def randomise_batchnorm(model: CLAPModel, seed: int = 0) -> CLAPModel:
    """Non-trivial running statistics and affine parameters, as trained weights have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.audio_encoder.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):  # the CNN's and the descriptors'
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("preset", ["tiny", "small", pytest.param("msclap-2022", marks=pytest.mark.parity)])
def test_fused_encoder_equals_the_module(preset):
    model = randomise_batchnorm(CLAPModel.from_preset(preset, seed=1))
    wave = torch.randn(2, model.config.window_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        ref = model.encode_audio(wave)
        got = fused_audio_encoder(model)(wave)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), (got - ref).abs().max()


def test_fold_batchnorm_is_exact_for_one_layer():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 7, 6)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(conv, bn)(x), bn(conv(x)), atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 16, 21, 2), (2, 8, 1, 1), (1, 4, 5, 3), (2, 6, 1, 7)])
def test_shift_gemm_convolution_equals_conv2d(shape):
    b, c, h, w = shape
    conv = torch.nn.Conv2d(c, 12, 3, padding=1, bias=True)
    x = torch.randn(b, c, h, w).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = ShiftGemmConv3x3(conv)(x)
        assert torch.allclose(got, conv(x), atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_fused_encoder_follows_weight_updates_and_leaves_the_model_mode_alone():
    model = randomise_batchnorm(CLAPModel.from_preset("tiny", seed=0))
    wave = torch.randn(3, model.config.window_samples) * 0.1
    first = fused_audio_encoder(model)
    with torch.no_grad():
        model.audio_encoder.backbone.conv_block2.conv1.weight.mul_(1.7)  # an in-place update
        model.audio_encoder.backbone.conv_block4.bn2.running_var.mul_(3.0)
    with torch.inference_mode():
        assert torch.allclose(fused_audio_encoder(model)(wave), model.encode_audio(wave), atol=1e-4)
        assert not torch.allclose(first(wave), model.encode_audio(wave), atol=1e-3)  # the old copy is stale
    model.load_state_dict(CLAPModel.from_preset("tiny", seed=5).state_dict())
    with torch.inference_mode():
        assert torch.allclose(fused_audio_encoder(model)(wave), model.encode_audio(wave), atol=1e-4)
    model.train()
    fused_audio_encoder(model)
    assert model.audio_encoder.projection.training and model.audio_encoder.frontend.training


def test_other_models_use_their_own_encoder():
    class Other(torch.nn.Module):
        def encode_audio(self, wave):
            return wave[:, :4]

    other = Other()
    assert fused_audio_encoder(other) == other.encode_audio


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "target", "length"),
    [(23.3, 44100, 2, 16000, 32000), (20.0, 16000, 1, 16000, 16000), (1.5, 44100, 1, 16000, 32000), (10.0, 48000, 2, 44100, 220500)],
)
def test_stream_windows_equal_whole_file_windows(tmp_path, seconds, rate, channels, target, length):
    x = np.random.default_rng(1).standard_normal((int(seconds * rate), channels)).astype(np.float32) * 0.1
    path = tmp_path / "long.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    ref = audio.windows(audio.load(path, target)[0], length)
    chunks = list(audio.stream_windows(path, target, length, block=3))
    assert all(len(c) <= 3 for c in chunks)
    got = np.concatenate(chunks)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_stream_windows_errors_name_the_file(tmp_path):
    bad = tmp_path / "nan.wav"
    x = np.zeros(48000, dtype=np.float32)
    x[40000] = np.nan
    sf.write(bad, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        list(audio.stream_windows(bad, 16000, 16000, block=1))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="junk.wav.*could not be decoded"):
        list(audio.stream_windows(junk, 16000, 16000))


def test_long_files_are_streamed_with_the_same_embedding(tmp_path, monkeypatch):
    model = randomise_batchnorm(CLAPModel.from_preset("tiny", seed=0))
    rate = 22050
    x = (np.random.default_rng(0).standard_normal(int(7.3 * rate)) * 0.1).astype(np.float32)
    path = tmp_path / "recording.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    whole = embed_audio(model, [(x, rate)], progress=False)  # an array: windows of the whole waveform
    monkeypatch.setattr(audio, "STREAM_SECONDS", 5.0)
    assert audio.long_file_seconds(path) == pytest.approx(7.3, abs=1e-3)
    loaded = []
    monkeypatch.setattr(audio, "load", lambda *a, **k: loaded.append(a) or (_ for _ in ()).throw(AssertionError("read whole")))
    short = tmp_path / "short.wav"
    sf.write(short, x[: rate * 2], rate, subtype="FLOAT")
    streamed = embed_audio(model, [str(path), str(path)], batch_size=3, progress=False, workers=2)
    np.testing.assert_allclose(streamed, np.vstack([whole, whole]), atol=1e-5)
    assert not loaded
    with pytest.raises(AssertionError, match="read whole"):  # short files are still read at once
        embed_audio(model, [str(short)], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_autocast_matches_fp32():
    model = randomise_batchnorm(CLAPModel.from_preset("small", seed=0)).to("cuda")
    waves = [np.random.default_rng(i).standard_normal(40000).astype(np.float32) * 0.1 for i in range(6)]
    ref = embed_audio(model, waves, sample_rate=16000, progress=False, precision="fp32")
    half = embed_audio(model, waves, sample_rate=16000, progress=False)  # the default on CUDA
    cos = (normalize_rows(ref) * normalize_rows(half)).sum(1)
    assert cos.min() > 0.999 and not np.array_equal(ref, half)


def test_fp16_is_refused_on_cpu():
    model = CLAPModel.from_preset("tiny").train()
    with pytest.raises(ValueError, match="CUDA"):
        embed_audio(model, [np.zeros(16000, np.float32)], sample_rate=16000, progress=False, precision="fp16")
    assert model.training  # left as it was


def test_quiet_windows_are_left_out_of_the_mean_where_the_model_says_so(tmp_path):
    """A model whose ``quiet_window_db`` is set pools only the windows within that many dB of the
    item's loudest (the silence before and after the playing); windows, batches and streaming stay
    as they are, and the cache tells the two settings apart."""
    from skclap.cache import MemoryCache
    from skclap.inference import audio_fingerprint

    plain = randomise_batchnorm(CLAPModel.from_preset("tiny", seed=0))
    gated = randomise_batchnorm(CLAPModel.from_config(plain.config.replace(frontend={"quiet_window_db": 30.0}), seed=0))
    gated.load_state_dict(plain.state_dict())
    rng = np.random.default_rng(1)
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # about -9 dB RMS
    softer = (tone * 10 ** (-20 / 20)).astype(np.float32)  # 20 dB under: kept
    hiss = (rng.standard_normal(rate) * 1e-3).astype(np.float32)  # -60 dB RMS: left out
    clip = np.concatenate([hiss, tone, softer, hiss, hiss])
    windows = plain.encode_audio(torch.from_numpy(np.stack([hiss, tone, softer]))).detach().numpy()
    for batch in (1, 2, 32):
        every = embed_audio(plain, [(clip, rate)], batch_size=batch, progress=False)[0]
        loud = embed_audio(gated, [(clip, rate)], batch_size=batch, progress=False)[0]
        np.testing.assert_allclose(every, (3 * windows[0] + windows[1] + windows[2]) / 5, atol=1e-5)
        np.testing.assert_allclose(loud, (windows[1] + windows[2]) / 2, atol=1e-5)
    one = embed_audio(gated, [(tone, rate)], progress=False)  # a single window is its own loudest
    np.testing.assert_allclose(one, embed_audio(plain, [(tone, rate)], progress=False), atol=1e-6)
    assert audio_fingerprint(plain) != audio_fingerprint(gated)
    cache = MemoryCache()
    embed_audio(plain, [(clip, rate)], progress=False, cache=cache)
    np.testing.assert_allclose(embed_audio(gated, [(clip, rate)], progress=False, cache=cache)[0], loud, atol=1e-6)
    with pytest.raises(ValueError, match="quiet_window_db must be a positive"):
        plain.config.replace(frontend={"quiet_window_db": 0})
