"""Configs as nested data: old flat checkpoints load unchanged, and audio towers plug in by name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from skclap import CheckpointError, CLAPModel, load_model
from skclap.inference import embed_audio
from skclap.models import PRESETS, CLAPConfig, audio_towers, register_audio_tower
from skclap.models.config import upgrade_flat_config

FLAT = Path(__file__).parent / "fixtures" / "flat_config"
sys.path.insert(0, str(FLAT))
from make import TEXTS, probe_waves  # noqa: E402  (the inputs the fixtures' expected embeddings were computed on)


@pytest.mark.parametrize("name", ["cnn14-freq-position", "tiny-htsat"])
def test_flat_config_checkpoints_load_with_identical_embeddings(name):
    """The fixtures were saved by skclap 0.1 (flat config.json); see fixtures/flat_config/make.py."""
    flat = json.loads((FLAT / name / "config.json").read_text())
    assert "sample_rate" in flat and "frontend" not in flat  # really the old form
    model = CLAPModel.from_pretrained(FLAT / name)
    expected = np.load(FLAT / name / "expected.npz")
    waves = probe_waves(model.config.sample_rate, model.config.window_samples)
    # The fixture's numbers were computed on one CPU; kernels for other instruction sets (AVX2 against
    # AVX-512) sum in another order, so agreement is to float rounding, far below what a misread config
    # or a weight left at its initial value would change.
    with torch.no_grad():
        np.testing.assert_allclose(model.encode_audio(waves, normalize=True).numpy(), expected["audio"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(model.encode_text(TEXTS, normalize=True).numpy(), expected["text"], rtol=0, atol=1e-5)
    # through the inference core (the fused CNN14 where the tower offers it), to float rounding
    got = embed_audio(model, list(waves.numpy()), sample_rate=model.config.sample_rate, cache=None, progress=False)
    np.testing.assert_allclose(got / np.linalg.norm(got, axis=1, keepdims=True), expected["audio"], atol=1e-5)
    # the option moved into its tower's section
    if name == "cnn14-freq-position":
        assert model.config.audio == {"name": "cnn14", "channels": [4, 8, 8, 16, 16, 16], "dim": 16, "classes": 0, "freq_position": True}
    else:
        assert model.config.audio["name"] == "htsat" and model.config.audio["depths"] == [1, 1]


def test_flat_checkpoint_saved_again_is_nested_and_equal(tmp_path):
    model = CLAPModel.from_pretrained(FLAT / "cnn14-freq-position")
    model.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert sorted(saved) == ["audio", "format", "frontend", "space", "text"]
    again = CLAPModel.from_pretrained(tmp_path / "again")
    assert again.config == model.config
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_checkpoint_needing_what_left_the_package_says_where_it_went(tmp_path):
    with pytest.raises(CheckpointError, match=r"descriptors.*audio_descriptors.*'cnn14-descriptors' of experiments/composition/"):
        load_model(FLAT / "descriptors")
    with pytest.raises(ValueError, match=r"unknown CLAP config keys: \['audio_pitch'\]"):
        upgrade_flat_config({"sample_rate": 16000, "audio_pitch": True})


class MeanTower(nn.Module):
    """A tower from outside the package: the mean log-mel frame through a linear layer."""

    def __init__(self, n_mels: int, dim: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.linear = nn.Linear(n_mels, dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.linear(mel.mean(dim=(1, 2)))


def test_an_audio_tower_registered_from_outside_trains_saves_and_loads(tmp_path):
    register_audio_tower("test-mean", lambda options, frontend: MeanTower(frontend.n_mels, **options))
    assert "test-mean" in audio_towers() and {"cnn14", "htsat"} <= set(audio_towers())
    model = CLAPModel.from_preset("tiny", seed=0, audio={"name": "test-mean", "dim": 12})
    assert isinstance(model.audio_encoder.backbone, MeanTower) and model.audio_encoder.projection.linear1.in_features == 12
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["audio"] == {"name": "test-mean", "dim": 12}
    again = load_model(tmp_path / "m")
    wave = torch.randn(2, model.config.window_samples)
    with torch.no_grad():
        torch.testing.assert_close(again.encode_audio(wave), model.encode_audio(wave))
    # no inference form: the inference core runs the model's own encoder
    got = embed_audio(again, list(wave.numpy()), sample_rate=16000, cache=None, progress=False)
    np.testing.assert_allclose(got, model.encode_audio(wave).detach().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="already registered"):
        register_audio_tower("test-mean", lambda options, frontend: MeanTower(frontend.n_mels, 3))


def test_a_checkpoint_of_an_unregistered_tower_names_the_registry(tmp_path):
    shutil.copytree(FLAT / "cnn14-freq-position", tmp_path / "m")
    cfg = PRESETS["tiny"].to_dict()
    cfg["audio"] = {"name": "my-tower"}
    (tmp_path / "m" / "config.json").write_text(json.dumps({"format": "skclap-clap", **cfg}))
    with pytest.raises(CheckpointError, match=r"config.json: no audio tower named 'my-tower' is registered.*register_audio_tower"):
        load_model(tmp_path / "m")


def test_config_sections_are_checked():
    with pytest.raises(ValueError, match='the "audio" section names its tower'):
        CLAPConfig(audio={"channels": [1]})
    with pytest.raises(ValueError, match="unknown CLAP config sections"):
        CLAPConfig.from_dict({**CLAPConfig().to_dict(), "extra": {}})
    with pytest.raises(ValueError, match="HTS-AT takes at most"):
        CLAPModel.from_preset("tiny-htsat", frontend={"clip_seconds": 30.0})
    assert CLAPConfig.from_dict(CLAPConfig().to_dict()) == CLAPConfig()
