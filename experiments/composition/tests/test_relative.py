"""Gradable words judged relative to the noun (the experiment's RelativeCompositionalClassifier)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from experiments.composition.relative import RelativeCompositionalClassifier
from skclap import CLAPCompositionalClassifier, CLAPModel
from tests.helpers import PARTS


def sine(freq: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model():
    return CLAPModel.from_preset("tiny", seed=0)


def test_relative_parts_judge_the_word_against_the_noun(tiny_model):
    """A class's pitch is scored by the audio's similarity to "high" / "low" minus its own instrument
    prompt's similarity to them, softmaxed per instrument; the instrument part, and the uniform
    missing part, are as before. Checked against a direct computation."""
    templates = ["this is a sound of {}."]
    kw = dict(model=tiny_model, label_parts=PARTS, templates=templates, sample_rate=16000, progress=False, device="cpu", cache=False)
    clf = RelativeCompositionalClassifier(relative_to=1, **kw).fit()
    X = np.stack([sine(f) for f in (200, 1000, 4000, 300, 2500)])
    with torch.inference_mode():
        audio = tiny_model.encode_audio(torch.from_numpy(X), normalize=True).numpy().astype(np.float64)
        text = tiny_model.encode_text([templates[0].format(w) for w in ("high", "low", "flute", "cello", "snare drum")], normalize=True)
        text = text.numpy().astype(np.float64)
        scale = float(tiny_model.logit_scale.exp())
    pitch, instrument = text[:2], text[2:]

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p_inst = softmax(scale * audio @ instrument.T)
    # pitch relative to each instrument: the instrument prompt's own similarity to the pitch words is taken off
    p_pitch = {k: softmax(scale * (audio @ pitch.T - instrument[k] @ pitch.T)) for k in range(2)}
    product = np.stack(  # the classes sorted: high cello, high flute, low cello, low flute, snare drum
        [
            p_pitch[1][:, 0] * p_inst[:, 1],
            p_pitch[0][:, 0] * p_inst[:, 0],
            p_pitch[1][:, 1] * p_inst[:, 1],
            p_pitch[0][:, 1] * p_inst[:, 0],
            0.5 * p_inst[:, 2],
        ],
        axis=1,
    )
    np.testing.assert_allclose(clf.predict_proba(X), product / product.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(clf.decision_function(X), np.log(product) / scale, atol=1e-5)
    np.testing.assert_allclose(clf.part_offsets_[0][2], instrument[1] @ pitch.T, atol=1e-6)  # "high cello": cello's offsets
    assert not clf.part_offsets_[1].any()
    absolute = CLAPCompositionalClassifier(**kw).fit()
    assert np.abs(absolute.decision_function(X) - clf.decision_function(X)).max() > 1e-4  # the offsets matter
    # the noun position must exist, and every class must have a noun to be judged against
    with pytest.raises(ValueError, match="relative_to=2 but the labels have 2 parts"):
        clone(clf).set_params(relative_to=2).fit()
    with pytest.raises(ValueError, match="relative_to=0: the label 'snare drum' has no part in that position"):
        clone(clf).set_params(relative_to=0).fit()
    with pytest.raises(ValueError, match="The 'relative_to' parameter"):
        clone(clf).set_params(relative_to=-1).fit()
