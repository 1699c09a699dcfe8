"""The one seam between a model and its consumers: the model contract, the Encoder's runtime
settings, models used where they are, and the caches a process keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skclap import CLAPEmbedder, CLAPModel, CLAPZeroShotClassifier, Encoder, clear_caches
from skclap.cache import memory_cache
from skclap.checkpoints import resolve_model
from skclap.devices import same_device
from skclap.models.protocol import ClapModelProtocol, check_clap_model

from .conftest import TINY_DIR, sine
from .fake_model import TableModel

RATE = 16000


def axis(k: int, dim: int = 4) -> np.ndarray:
    return np.eye(dim)[k]


def table() -> tuple[TableModel, list[np.ndarray]]:
    """Four one-window tones, tone k at axis k; a text naming k points at axis k."""
    model = TableModel(lambda t: axis(int(t.split()[-1])), dim=4, window_samples=RATE // 4)
    clips = [sine(300 + 200 * k, 0.25, RATE) for k in range(4)]
    model.add(clips, np.stack([2.0 * axis(k) for k in range(4)]))
    return model, clips


def test_any_model_of_the_contract_serves_every_consumer():
    model, clips = table()
    assert isinstance(model, ClapModelProtocol) and not isinstance(object(), ClapModelProtocol)
    enc = Encoder(model, sample_rate=RATE, cache=False)
    np.testing.assert_allclose(enc.audio(clips), np.eye(4), atol=1e-6)  # normalised
    np.testing.assert_allclose(enc.audio(clips, normalize=False), 2 * np.eye(4), atol=1e-6)
    np.testing.assert_allclose(enc.text(["tone 2", "tone 0"]), np.stack([axis(2), axis(0)]))
    emb = CLAPEmbedder(model=model, sample_rate=RATE, cache=False).fit_transform(clips)
    np.testing.assert_allclose(emb, np.eye(4), atol=1e-6)
    clf = CLAPZeroShotClassifier(model=model, labels=["3", "1", "0", "2"], templates="tone {}", sample_rate=RATE, cache=False).fit()
    assert clf.classes_.tolist() == ["0", "1", "2", "3"]
    assert clf.predict(clips).tolist() == ["0", "1", "2", "3"]


def test_a_model_outside_the_contract_is_refused_naming_what_it_lacks():
    class Half(torch.nn.Module):
        config = None

        def encode_audio(self, wave):
            return wave

    with pytest.raises(TypeError, match="lacks audio_encoder, device, logit_scale.*encode_text"):
        check_clap_model(Half())
    with pytest.raises(TypeError, match="Half is not a CLAP model"):
        Encoder(Half())


def test_a_given_model_is_never_moved_or_copied():
    """A device that differs from the model's is refused, and the caller's model stays where it was
    (moving it would move it under every other estimator and clone that shares it)."""
    model = CLAPModel.from_preset("tiny", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="the model is on cpu and device='meta'.*does not move"):
        CLAPEmbedder(model=model, device="meta", sample_rate=RATE).fit_transform([sine(440, 0.5, RATE)])
    assert model.device == torch.device("cpu")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # "auto" uses it where it is; "cpu:0" names the CPU it is on
    for device in ("auto", "cpu:0", "cpu"):
        assert Encoder(model, device=device).model is model


def test_device_names_compare_with_their_index():
    assert same_device("cpu", "cpu:0") and same_device(torch.device("cpu"), "cpu")
    assert same_device("cuda", "cuda:0") == (not torch.cuda.is_available() or torch.cuda.current_device() == 0)
    assert not same_device("cuda:0", "cuda:1") and not same_device("cpu", "meta")


def test_clear_caches_forgets_models_and_vectors():
    clips = [sine(440, 0.5, RATE), sine(660, 0.5, RATE)]
    first = resolve_model(str(TINY_DIR), "cpu")
    assert resolve_model(str(TINY_DIR), "cpu") is first  # loaded once for the process
    Encoder(str(TINY_DIR), device="cpu", cache=True, sample_rate=RATE).audio(clips)
    assert len(memory_cache()) >= 2
    clear_caches()
    assert len(memory_cache()) == 0
    assert resolve_model(str(TINY_DIR), "cpu") is not first


def test_vectors_do_not_depend_on_the_batch_or_the_cache():
    clips = [sine(f, s, RATE) for f, s in ((220, 0.3), (440, 2.5), (880, 1.0), (1760, 4.2), (300, 0.7))]
    texts = ["a dog", "a long sentence about a dog barking at a passing car", "rain", "a loud siren wailing", "x"]
    model = CLAPModel.from_preset("tiny", seed=0)
    one = Encoder(model, batch_size=1, cache=False, sample_rate=RATE)
    many = Encoder(model, batch_size=7, cache=False, sample_rate=RATE)
    np.testing.assert_allclose(one.audio(clips), many.audio(clips), atol=1e-5)
    np.testing.assert_allclose(one.text(texts), many.text(texts), atol=1e-5)
    cached = Encoder(model, batch_size=3, cache=True, sample_rate=RATE)
    np.testing.assert_allclose(cached.audio(clips), cached.audio(clips[::-1])[::-1], atol=1e-5)


def test_runtime_settings_are_checked_where_they_are_given():
    model, _ = table()
    with pytest.raises(ValueError, match="precision must be one of"):
        Encoder(model, precision="half")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Encoder(model, batch_size=0)
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        Encoder(model, precision="fp16")
