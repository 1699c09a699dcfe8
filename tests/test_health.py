"""skclap.check_model: finite outputs, one width, towers that tell their inputs apart."""

from __future__ import annotations

import warnings

import pytest
import torch

from skclap import CLAPModel, check_model
from skclap.health import COLLAPSED_COSINE, PROMPTS


def test_a_working_model_passes_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_model(CLAPModel.from_preset("tiny", seed=0))
    assert report.healthy and report.finite and report.audio_dim == report.text_dim == 64
    assert report.text_cosine < COLLAPSED_COSINE and report.audio_cosine < COLLAPSED_COSINE


def test_a_collapsed_text_tower_is_named_and_warned_about():
    model = CLAPModel.from_preset("tiny", seed=0)
    norm = model.text_encoder.projection.layer_norm
    with torch.no_grad():  # the projection's last layer ignores its input: one vector for every prompt
        norm.weight.mul_(1e-4)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.warns(UserWarning, match=f"collapsed text tower: {len(PROMPTS)} different prompts"):
        report = check_model(model)
    assert not report.healthy and report.text_cosine > COLLAPSED_COSINE
    assert not any("audio" in p for p in report.problems)


def test_non_finite_outputs_are_reported():
    model = CLAPModel.from_preset("tiny", seed=0)
    with torch.no_grad():
        next(model.audio_encoder.parameters()).fill_(float("nan"))
    report = check_model(model, warn=False)
    assert not report.finite and any("non-finite" in p for p in report.problems)
