"""templates="auto": the zero-shot classifier chooses prompt templates on labelled clips."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from skclap import CLAPZeroShotClassifier
from skclap.prompting import DEFAULT_TEMPLATES, TEMPLATE_POOL

from .conftest import sine
from .fake_model import TableModel

GOOD = "a recording of {}."
CLASSES = ["dog", "rain", "siren"]


def good_template_prompts(text: str) -> np.ndarray:
    """A prompt of GOOD points at its class's axis, any other template's at another class's axis."""
    k = next(i for i, c in enumerate(CLASSES) if c in text)
    good = text in {GOOD.format(c) for c in CLASSES}
    noise = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(8)  # the same for the same text
    return np.eye(8)[k if good else (k + 1) % 3] + 0.05 * noise


def crafted(n_per_class: int = 6) -> tuple[list[np.ndarray], np.ndarray, TableModel]:
    """Audio of class k lies near axis k; the prompts of one template (GOOD) point at their class's
    axis, every other template's prompts point at another class's axis: only GOOD separates them."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n_per_class)
    audio = np.eye(8)[y] + 0.2 * rng.standard_normal((len(y), 8))
    model = TableModel(good_template_prompts, dim=8, window_samples=8000)
    X = [sine(300 + 100 * i, 0.5, 16000) for i in range(len(y))]
    model.add(X, audio / np.linalg.norm(audio, axis=1, keepdims=True))
    return X, np.array(CLASSES)[y], model


def test_auto_chooses_the_template_that_separates_the_classes():
    X, y, model = crafted()
    kw = dict(model=model, sample_rate=16000, progress=False, device="cpu")
    default = CLAPZeroShotClassifier(**kw).fit(X, y)
    auto = CLAPZeroShotClassifier(templates="auto", **kw).fit(X, y)
    assert default.templates_ == list(DEFAULT_TEMPLATES) and default.score(X, y) < 0.2
    assert auto.templates_ == [GOOD] and auto.score(X, y) == 1.0
    assert auto.prompts_[0] == [GOOD.format("dog")]
    assert auto.template_scores_[GOOD] == 1.0 and set(auto.template_scores_) == set(TEMPLATE_POOL)
    assert auto.template_cv_score_ == pytest.approx(1.0)


def test_auto_without_labels_is_the_default():
    _, _, model = crafted()
    kw = dict(model=model, sample_rate=16000, progress=False, device="cpu", labels=CLASSES)
    auto = CLAPZeroShotClassifier(templates="auto", **kw).fit()
    plain = CLAPZeroShotClassifier(**kw).fit()
    assert auto.templates_ == list(DEFAULT_TEMPLATES)
    np.testing.assert_array_equal(auto.class_embeddings_, plain.class_embeddings_)
    assert not hasattr(auto, "template_scores_")
