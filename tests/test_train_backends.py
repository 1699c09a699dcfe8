"""Training on every backend (CNN14 + BERT, HTS-AT + GPT-2, LAION's ClapModel): gradient caching,
data parallelism, exact resume, learning, supervised fine-tuning; and where a run starts from."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial

import numpy as np
import pytest
import torch

from skclap import CLAPLinearProbe, CLAPModel, UnknownModelError, load_model
from skclap.backends import LaionCLAP
from skclap.datasets import make_corpus
from skclap.registry import PRETRAINED
from skclap.training import TrainConfig, Trainer, contrastive_backward, train

from .conftest import LAION_DIR
from .helpers import Killed, assert_same_grads, crash_at, grads, msclap_state, two_rank_step

BACKENDS = ["tiny", "tiny-htsat", pytest.param("laion", marks=pytest.mark.backends)]


def make(backend: str, seed: int = 1):
    if backend == "laion":
        return load_model(LAION_DIR)
    return CLAPModel.from_preset(backend, seed=seed)


def corpus(n: int, seed: int = 0):
    c = make_corpus(n, seed=seed, seconds=1.0)
    return c.waveforms(), c.captions


def batch(backend: str, n: int = 8):
    model = make(backend).to(torch.float64).eval()  # batch norm on running statistics, no dropout
    g = torch.Generator().manual_seed(0)
    waves = (torch.randn(n, model.config.window_samples, generator=g) * 0.1).to(torch.float64)
    texts = [f"caption {i}: a {w} sound" for i, w in enumerate("dog rain bell siren drum hiss click buzz".split()[:n])]
    return model, waves, model.tokenize(texts)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_cache_equals_full_batch(backend):
    model, waves, tokens = batch(backend)
    full_loss = contrastive_backward(model, waves, tokens)
    full = grads(model)
    model.zero_grad()
    cached_loss = contrastive_backward(model, waves, tokens, micro_batch=3)
    assert float(cached_loss) == pytest.approx(float(full_loss), abs=1e-6)
    assert_same_grads(full, grads(model), atol=1e-5)
    audio = [k for k, v in full.items() if k.startswith(("audio_encoder.", "clap.audio_model.")) and v.abs().max() > 0]
    assert audio, "the audio tower gets gradients"


@pytest.mark.multiprocess
@pytest.mark.parametrize("backend", ["tiny-htsat", "laion"])
def test_two_processes_match_one_process(backend):
    got = two_rank_step(partial(batch, backend), micro=2)
    model, waves, tokens = batch(backend)
    loss = contrastive_backward(model, waves, tokens)
    assert float(got["loss"]) == pytest.approx(float(loss), abs=1e-5)
    assert_same_grads(grads(model), got["grads"], atol=1e-5)


def run(backend: str, out_dir, steps: int, resume: bool = False, callbacks=(), pairs: int = 24, **kw) -> Trainer:
    cfg = TrainConfig(batch_size=8, max_steps=steps, warmup_steps=2, progress=False, log_every=1, **{"lr": 1e-3, **kw})
    trainer = Trainer(make(backend), cfg, out_dir)
    trainer.fit(corpus(pairs), item_rate=16000, resume=resume, callbacks=callbacks)
    return trainer


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_is_exact(tmp_path, backend):
    straight = run(backend, tmp_path / "straight", 7)

    with pytest.raises(Killed):
        run(backend, tmp_path / "resumed", 7, checkpoint_every=4, callbacks=[crash_at(5)])
    resumed = run(backend, tmp_path / "resumed", 7, resume=True, checkpoint_every=4)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    reloaded = load_model(tmp_path / "resumed")
    assert type(reloaded) is type(straight.model)
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in b.items())


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_decreases_and_freezing_holds(tmp_path, backend):
    """One batch of 8 pairs seen again and again (random windows and captions of the same clips):
    the loss falls, and ends below chance (log 8), which undoing the first steps' rise does not."""
    trainer = run(backend, None, 30 if backend == "laion" else 50, pairs=8, lr=3e-3, freeze_text=True)
    losses = [r["loss"] for r in trainer.history]
    assert np.mean(losses[-5:]) < 0.88 * np.mean(losses[:5]), losses
    assert np.mean(losses[-10:]) < math.log(8) - 0.15, losses
    assert all(not p.requires_grad for p in trainer.model.text_backbone.parameters())


@pytest.mark.parametrize("backend", BACKENDS)
def test_finetuned_linear_probe_on_every_backend(backend):
    base = make(backend)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    waves, _ = corpus(16)
    y = np.array(["tone" if i % 2 else "noise" for i in range(16)])
    probe = CLAPLinearProbe(
        model=base,
        sample_rate=16000,
        finetune=True,
        progress=False,
        device="cpu",
        finetune_params={"epochs": 2, "batch_size": 8, "lr": 1e-3},
    ).fit(waves, y)
    tuned = probe.finetuned_model_
    assert tuned is not base and isinstance(tuned, type(base))
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    assert probe.predict(waves).shape == (16,) and len(probe.finetune_history_) >= 1


def test_released_name_starts_from_the_released_weights(tmp_path, monkeypatch):
    """train(model="msclap-2022") fine-tunes the release: here a release of the tiny architecture
    placed where the offline error says, so that the test runs in seconds."""
    released = CLAPModel.from_preset("tiny", seed=7)
    home = tmp_path / "home"
    (home / "msclap-2022").mkdir(parents=True)
    torch.save({"model": msclap_state(released)}, home / "msclap-2022" / "CLAP_weights_2022.pth")
    monkeypatch.setenv("SKCLAP_HOME", str(home))
    monkeypatch.setitem(PRETRAINED, "msclap-2022", dataclasses.replace(PRETRAINED["msclap-2022"], preset="tiny", tokenizer="skclap-basic"))
    trainer = train(
        corpus(16), None, model="msclap-2022", item_rate=16000, batch_size=8, max_steps=1, lr=0.0, weight_decay=0.0, progress=False
    )
    start = dict(released.named_parameters())
    assert all(torch.equal(p, start[n]) for n, p in trainer.model.named_parameters())
    assert trainer.model.source == "msclap-2022"
    random_init = train(
        corpus(16), None, model="preset:tiny", item_rate=16000, batch_size=8, max_steps=1, lr=0.0, weight_decay=0.0, progress=False
    )
    assert not torch.equal(random_init.model.audio_encoder.projection.linear1.weight, start["audio_encoder.projection.linear1.weight"])
    with pytest.raises(UnknownModelError, match="pass 'preset:tiny'"):
        train(corpus(16), None, model="tiny", batch_size=8, max_steps=1)


def test_laion_backend_saves_and_reloads_in_the_transformers_format(tmp_path):
    model = make("laion")
    model.tokenize(["a dog", "a much longer text about a dog that barks"])  # leaves padding on a fast tokenizer
    model.save_pretrained(tmp_path / "saved")
    again = load_model(tmp_path / "saved")
    assert isinstance(again, LaionCLAP)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    saved = json.loads((tmp_path / "saved" / "tokenizer.json").read_text())  # as it loads, not as the last call left it
    assert saved["padding"] is None and saved["truncation"] is None
