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
    with pytest.raises(CheckpointError, match="could not be loaded.*huggingface-cli download laion/clap-htsat-fused"):
        load_model("laion/clap-htsat-fused")  # not cached, hub offline in the tests


def test_embeddings_match_clapmodel_calls(laion_dir, reference):
    ref, fe, tok = reference
    short, exact, long = clip(3.0, 1), clip(10.0, 2), clip(23.0, 3)
    got = CLAPEmbedder(model=str(laion_dir), sample_rate=48000, cache=False, progress=False, device="cpu").fit_transform(
        [short, exact, long]
    )
    expected = []
    with torch.inference_mode():
        for wave in (short, exact, long):
            wins = windows(wave, 480000)  # skclap's deterministic windows: repeat-pad, then consecutive
            feats = fe(list(wins), sampling_rate=48000, truncation="rand_trunc", return_tensors="pt")
            emb = ref.get_audio_features(**feats).pooler_output  # normalised per window
            raw = ref.audio_projection(ref.audio_model(**feats).pooler_output)
            torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), emb)
            pooled = raw.mean(0)
            expected.append((pooled / pooled.norm()).numpy())
    assert len(windows(long, 480000)) == 3
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)

    texts = ["a dog barking", "rain on a roof", "a siren"]
    got_t = CLAPEmbedder(model=str(laion_dir), modality="text", progress=False, device="cpu").fit_transform(texts)
    with torch.inference_mode():
        exp_t = ref.get_text_features(**tok(texts, padding=True, return_tensors="pt")).pooler_output.numpy()
    np.testing.assert_allclose(got_t, exp_t, atol=1e-5)


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
