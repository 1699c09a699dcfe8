"""Embedding-cache keys cover everything that changes an embedding: weights, front-end and window
settings, backend preprocessing, and the precision of the computation."""

from __future__ import annotations

import numpy as np
import pytest

import skclap.inference as inference
from skclap import CLAPModel, load_model
from skclap.cache import DiskCache
from skclap.inference import audio_fingerprint, embed_audio, precision_label

from .conftest import LAION_DIR, sine


def test_precision_is_part_of_the_key(tiny_model):
    assert precision_label(tiny_model) == "float32"
    assert precision_label(tiny_model, "fp16") == "float16-autocast"
    assert precision_label(tiny_model, "bf16") == "bfloat16-autocast"
    assert audio_fingerprint(tiny_model, "float32") != audio_fingerprint(tiny_model, "float16-autocast")


def test_a_half_precision_run_does_not_share_disk_entries(tiny_model, tmp_path, monkeypatch):
    cache = DiskCache(tmp_path / "cache")
    clips = [sine(f, 1.0, 16000) for f in (300, 900)]
    embed_audio(tiny_model, clips, sample_rate=16000, cache=cache, progress=False)
    assert len(cache) == 2
    # As a float16 CUDA run would label itself (CPUs compute in float32 only):
    monkeypatch.setattr(inference, "precision_label", lambda model, precision="fp32": "float16-autocast")
    embed_audio(tiny_model, clips, sample_rate=16000, cache=cache, progress=False)
    assert len(cache) == 4


def test_front_end_and_window_settings_change_the_key(tiny_model):
    base = audio_fingerprint(tiny_model)
    for field, value in (("hop_length", 200), ("fmax", 7000.0), ("clip_seconds", 2.0), ("mel_filter_rate", 32000)):
        other = CLAPModel(tiny_model.config.replace(frontend={field: value}))
        other.load_state_dict(tiny_model.state_dict())  # the same weights
        assert audio_fingerprint(other) != base, field
    same = CLAPModel(tiny_model.config.replace(text={"max_length": 16}))
    same.load_state_dict(tiny_model.state_dict())
    assert audio_fingerprint(same) == base  # text settings do not touch audio embeddings


def test_laion_preprocessing_changes_the_key():
    model = load_model(LAION_DIR)
    base = audio_fingerprint(model)
    other = load_model(LAION_DIR)
    other.feature_extractor.hop_length = 320
    assert audio_fingerprint(other) != base
    assert audio_fingerprint(load_model(LAION_DIR)) == base


@pytest.mark.parametrize("preset", ["tiny", "tiny-htsat"])
def test_cache_hit_returns_the_computed_vector(preset, tmp_path):
    model = CLAPModel.from_preset(preset)
    cache = DiskCache(tmp_path / preset)
    clips = [sine(500, 1.3, 16000)]
    first = embed_audio(model, clips, sample_rate=16000, cache=cache, progress=False)
    second = embed_audio(model, clips, sample_rate=16000, cache=cache, progress=False)
    np.testing.assert_array_equal(first, second)
    assert len(cache) == 1
