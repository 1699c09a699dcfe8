"""templates="auto": the zero-shot classifier chooses prompt templates on labelled clips."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from skclap import CLAPZeroShotClassifier
from skclap.prompting import DEFAULT_TEMPLATES, TEMPLATE_POOL

from .conftest import sine

GOOD = "a recording of {}."
CLASSES = ["dog", "rain", "siren"]


def crafted(monkeypatch, n_per_class: int = 6):
    """Audio of class k lies near axis k; the prompts of one template (GOOD) point at their class's
    axis, every other template's prompts point at another class's axis: only GOOD separates them."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n_per_class)
    audio = np.eye(8)[y] + 0.2 * rng.standard_normal((len(y), 8))

    def embed_audio(self, X, normalize=True):
        return (audio / np.linalg.norm(audio, axis=1, keepdims=True)).astype(np.float32)

    def embed_text(self, texts, normalize=True):
        out = []
        for text in texts:
            k = next(i for i, c in enumerate(CLASSES) if c in text)
            good = text in {GOOD.format(c) for c in CLASSES}
            noise = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(8)  # the same for the same text
            out.append(np.eye(8)[k if good else (k + 1) % 3] + 0.05 * noise)
        out = np.asarray(out)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(CLAPZeroShotClassifier, "_embed_audio", embed_audio)
    monkeypatch.setattr(CLAPZeroShotClassifier, "_embed_text", embed_text)
    X = [sine(300 + 100 * i, 0.5, 16000) for i in range(len(y))]
    return X, np.array(CLASSES)[y]


def test_auto_chooses_the_template_that_separates_the_classes(monkeypatch):
    X, y = crafted(monkeypatch)
    kw = dict(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
    default = CLAPZeroShotClassifier(**kw).fit(X, y)
    auto = CLAPZeroShotClassifier(templates="auto", **kw).fit(X, y)
    assert default.templates_ == list(DEFAULT_TEMPLATES) and default.score(X, y) < 0.2
    assert auto.templates_ == [GOOD] and auto.score(X, y) == 1.0
    assert auto.prompts_[0] == [GOOD.format("dog")]
    assert auto.template_scores_[GOOD] == 1.0 and set(auto.template_scores_) == set(TEMPLATE_POOL)
    assert auto.template_cv_score_ == pytest.approx(1.0)


def test_auto_without_labels_is_the_default(monkeypatch):
    crafted(monkeypatch)
    kw = dict(model="preset:tiny", sample_rate=16000, progress=False, device="cpu", labels=CLASSES)
    auto = CLAPZeroShotClassifier(templates="auto", **kw).fit()
    plain = CLAPZeroShotClassifier(**kw).fit()
    assert auto.templates_ == list(DEFAULT_TEMPLATES)
    np.testing.assert_array_equal(auto.class_embeddings_, plain.class_embeddings_)
    assert not hasattr(auto, "template_scores_")
