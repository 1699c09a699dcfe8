"""LAION CLAP through transformers' ClapModel: loading, parity with its own calls, the estimators."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from skclap import CheckpointError, CLAPEmbedder, CLAPLinearProbe, CLAPZeroShotClassifier, load_model
from skclap.audio import windows
from skclap.backends import LaionCLAP, is_laion_checkpoint

from .conftest import LAION_DIR


@pytest.fixture(scope="module")
def laion_dir() -> Path:
    return LAION_DIR


@pytest.fixture(scope="module")
def reference(laion_dir):
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    return (
        ClapModel.from_pretrained(laion_dir).eval(),
        ClapFeatureExtractor.from_pretrained(laion_dir),
        AutoTokenizer.from_pretrained(laion_dir),
    )


def clip(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(48000 * seconds)) * 0.1).astype(np.float32)


def test_resolution_and_shape(laion_dir, tmp_path):
    assert is_laion_checkpoint(laion_dir) and is_laion_checkpoint("laion/clap-htsat-unfused")
    model = load_model(laion_dir)
    assert isinstance(model, LaionCLAP)
    assert (model.config.sample_rate, model.config.window_samples, model.config.proj_dim) == (48000, 480000, 24)
    with pytest.raises(
        CheckpointError, match="not in the local Hugging Face cache, and HF_HUB_OFFLINE is set.*hf download laion/clap-htsat-fused"
    ):
        load_model("laion/clap-htsat-fused")  # not cached, hub offline in the tests


def test_embeddings_match_clapprocessor_end_to_end(laion_dir, reference, tmp_path):
    """From the raw clip, as transformers' own pipeline embeds it: ``ClapProcessor``'s feature
    extractor pads a clip shorter than 10 s with whole repeats, then zeros. Clips shorter than, equal
    to and (within one hop) around one window; raw arrays and files, mono and stereo."""
    import soundfile as sf

    ref, fe, tok = reference
    clips = {"3 s": clip(3.0, 1), "7 s": clip(7.0, 4), "10 s": clip(10.0, 2), "0.4 s": clip(0.4, 5)}
    stereo = np.stack([clip(4.0, 6), 0.5 * clip(4.0, 7)], axis=1)  # (samples, channels), as soundfile writes
    sf.write(tmp_path / "mono.wav", clips["3 s"], 48000, subtype="FLOAT")
    sf.write(tmp_path / "stereo.wav", stereo, 48000, subtype="FLOAT")
    emb = CLAPEmbedder(model=str(laion_dir), sample_rate=48000, cache=False, progress=False, device="cpu")
    got = emb.fit_transform(list(clips.values()))
    got_files = emb.fit_transform([str(tmp_path / "mono.wav"), str(tmp_path / "stereo.wav")])
    with torch.inference_mode():

        def theirs(wave: np.ndarray) -> np.ndarray:
            feats = fe(wave, sampling_rate=48000, truncation="rand_trunc", padding="repeatpad", return_tensors="pt")
            return ref.get_audio_features(**feats).pooler_output[0].numpy()

        expected = np.stack([theirs(w) for w in clips.values()])
        expected_files = np.stack([theirs(clips["3 s"]), theirs(stereo.mean(axis=1).astype(np.float32))])
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(got_files - expected_files).max() <= 1e-4
    # the check can fail: tiling the 3 s clip to 10 s, as msclap pads, gives another embedding
    with torch.inference_mode():
        tiled = theirs(windows(clips["3 s"], 480000, "repeat")[0])
    assert np.abs(tiled - expected[0]).max() > 10 * 1e-4

    # longer than one window: the mean of consecutive windows (transformers crops at random)
    long = clip(23.0, 3)
    with torch.inference_mode():
        feats = fe(list(windows(long, 480000)), sampling_rate=48000, truncation="rand_trunc", return_tensors="pt")
        pooled = ref.audio_projection(ref.audio_model(**feats).pooler_output).mean(0)
    np.testing.assert_allclose(emb.fit_transform([long])[0], (pooled / pooled.norm()).numpy(), atol=1e-5)

    # texts: as the tokenizer pads and cuts them for ClapModel, past laion_clap's 77 tokens. The hub's
    # tokenizers cut at 512 tokens, what RoBERTa's 514 positions hold; this small tower has 80.
    texts = ["a dog barking", "rain on a roof", "a siren " * 20]
    got_t = CLAPEmbedder(model=str(laion_dir), modality="text", progress=False, device="cpu").fit_transform(texts)
    limit = ref.config.text_config.max_position_embeddings - 2
    with torch.inference_mode():
        tokens = tok(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        exp_t = ref.get_text_features(**tokens).pooler_output.numpy()
    assert len(tok(texts[2])["input_ids"]) > 77
    np.testing.assert_allclose(got_t, exp_t, atol=1e-5)


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_window_features_are_the_feature_extractors_bit_for_bit(fused):
    """``window_log_mel`` against ``ClapFeatureExtractor.__call__`` itself, with transformers' default
    settings and with laion_clap's (50 Hz floor), on noise at several levels, a pure tone, silence,
    a full-scale square wave and int16-rounded audio: every value identical, not merely close."""
    from transformers import ClapFeatureExtractor

    from skclap.audio import quantize_int16
    from skclap.backends.laion import window_log_mel
    from skclap.checkpoints import laion_feature_extractor

    t = np.arange(480000) / 48000
    signals = [clip(10.0, seed) * level for seed, level in ((0, 1.0), (1, 1e-3), (2, 9.0))]
    signals += [0.3 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t), np.sign(np.sin(2 * np.pi * 50 * t))]
    signals = [s.astype(np.float32) for s in signals]
    signals.append(quantize_int16(signals[0]))
    mode = "fusion" if fused else "rand_trunc"
    for extractor in (ClapFeatureExtractor(), laion_feature_extractor(fused)):
        expected = extractor(signals, sampling_rate=48000, truncation=mode, return_tensors="np")["input_features"]
        got = np.stack([window_log_mel(extractor, s, fused) for s in signals])
        assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape == (7, 4 if fused else 1, 1001, 64)
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="a window of 480000 samples"):
        window_log_mel(ClapFeatureExtractor(), signals[0][:1000], fused)


def test_short_clips_are_padded_with_zeros_after_whole_repeats():
    from skclap.audio import windows

    wave = np.arange(1, 4, dtype=np.float32)
    np.testing.assert_array_equal(windows(wave, 8, "repeatpad")[0], [1, 2, 3, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(windows(wave, 8, "repeat")[0], [1, 2, 3, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(windows(wave, 3, "repeatpad")[0], wave)
    with pytest.raises(ValueError, match="padding must be one of"):
        windows(wave, 8, "zeros")


def test_estimators_run_on_the_laion_backend(laion_dir):
    rng = np.random.default_rng(0)
    t = np.arange(48000 * 2) / 48000
    X = [(0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32) for f in [200] * 6 + [3000] * 6]
    y = np.array(["low"] * 6 + ["high"] * 6)
    kw = dict(model=str(laion_dir), sample_rate=48000, progress=False, device="cpu")
    zs = CLAPZeroShotClassifier(labels=["low", "high"], **kw).fit()
    proba = zs.predict_proba(X)
    assert proba.shape == (12, 2) and np.allclose(proba.sum(1), 1)
    scale = float(load_model(laion_dir).clap.logit_scale_a.exp())
    assert zs.logit_scale_ == pytest.approx(scale)
    probe = CLAPLinearProbe(**kw).fit(X, y)
    assert (probe.predict(X) == y).mean() == 1.0
    again = pickle.loads(pickle.dumps(probe))
    np.testing.assert_allclose(again.predict_proba(X), probe.predict_proba(X), atol=1e-6)
