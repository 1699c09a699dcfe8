"""laion_clap's original .pt files: conversion onto transformers' ClapModel, parity with laion_clap's own
classes (full-size HTS-AT tiny, small RoBERTa), unfused and fused; deterministic fused inference."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from skclap import CheckpointError, CLAPEmbedder, load_model
from skclap.backends import LaionCLAP

from .conftest import byte_level_alphabet, drifting_tone, realistic_statistics

pytestmark = pytest.mark.slow

RATE = 48000
TEXTS = ["a dog barking", "rain on a roof", "a siren wailing in the distance"]


def clip(seconds: float, seed: int) -> np.ndarray:
    return drifting_tone(seconds, seed, RATE)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    """A small RoBERTa (laion_clap's heads take 768-wide features) and its byte-level tokenizer."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    out = tmp_path_factory.mktemp("roberta_small")
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *byte_level_alphabet()])}
    RobertaTokenizer(vocab=vocab, merges=[]).save_pretrained(out)
    cfg = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=96,
        max_position_embeddings=80,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
    )
    with torch.random.fork_rng():
        torch.manual_seed(4)
        RobertaModel(cfg).save_pretrained(out)
    return out


def build_reference(module, roberta_dir, fused: bool, monkeypatch_roberta):
    from transformers import RobertaModel

    audio_cfg = dict(
        model_type="HTSAT",
        model_name="tiny",
        sample_rate=RATE,
        audio_length=1024,
        window_size=1024,
        hop_size=480,
        fmin=50,
        fmax=14000,
        class_num=527,
        mel_bins=64,
        clip_samples=480000,
    )
    text_cfg = dict(context_length=77, vocab_size=50265, width=512, heads=8, layers=12, model_type="roberta")
    monkeypatch_roberta(module, types.SimpleNamespace(from_pretrained=lambda *a, **k: RobertaModel.from_pretrained(roberta_dir)))
    torch.manual_seed(10 + fused)
    ref = module.CLAP(
        embed_dim=768,
        audio_cfg=audio_cfg,
        text_cfg=text_cfg,
        enable_fusion=fused,
        fusion_type="aff_2d" if fused else "None",
        joint_embed_shape=512,
        mlp_act="relu",
    ).eval()
    branch = ref.audio_branch
    with torch.no_grad():
        waves = torch.from_numpy(np.stack([clip(10.0, s) for s in range(3)]))
        logmel = branch.logmel_extractor(branch.spectrogram_extractor(waves))
        gen = torch.Generator().manual_seed(2 + fused)
        realistic_statistics(ref.audio_branch, logmel, gen)
        for name, p in ref.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return ref


@pytest.fixture(scope="module", params=[False, True], ids=["unfused", "fused"])
def pair(request, laion_clap_model_module, roberta_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        ref = build_reference(laion_clap_model_module, roberta_dir, request.param, lambda m, v: mp.setattr(m, "RobertaModel", v))
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("laion") / ("630k-fusion-best.pt" if request.param else "630k-best.pt")
    # As laion_clap saves them: {"epoch", "state_dict" with the DataParallel prefix}, pickle protocol 4.
    torch.save({"epoch": 45, "state_dict": {"module." + k: v for k, v in ref.state_dict().items()}}, path, pickle_protocol=4)
    return request.param, ref, path, load_model(path, tokenizer=str(roberta_dir))


def test_original_file_loads_onto_the_laion_backend(pair):
    fused, _, _, ours = pair
    assert isinstance(ours, LaionCLAP)
    assert ours.clap.config.audio_config.enable_fusion is fused
    assert (ours.config.sample_rate, ours.config.window_samples, ours.config.proj_dim) == (48000, 480000, 512)


def test_audio_embeddings_match_laion_clap(pair):
    fused, ref, _, ours = pair
    wins = torch.from_numpy(np.stack([clip(10.0, s) for s in range(3)]))
    with torch.inference_mode():
        if fused:
            # laion_clap's fused inference on clips up to 10 s: the four-channel mel, none longer.
            # (Its own mel code needs torchaudio; the features are the feature extractor's.)
            feats = ours.features(wins)["input_features"]
            inputs = {"longer": torch.zeros(len(wins), dtype=torch.bool), "mel_fusion": feats}
        else:
            inputs = {"waveform": wins}  # laion_clap's own front-end (torchlibrosa) from the waveform
        theirs = ref.audio_projection(ref.encode_audio(inputs, device="cpu")["embedding"])
        mine = ours.encode_audio(wins)
    assert (mine - theirs).abs().max() <= 1e-4
    assert (theirs[0] - theirs[1]).abs().max() > 100 * 1e-4


def test_text_embeddings_match_laion_clap(pair, roberta_dir):
    from transformers import AutoTokenizer

    _, ref, _, ours = pair
    tokens = AutoTokenizer.from_pretrained(roberta_dir)(TEXTS, padding="max_length", max_length=77, return_tensors="pt")
    with torch.inference_mode():
        theirs = ref.encode_text(dict(tokens), device="cpu")
        mine = ours.encode_text(TEXTS)
    assert (mine - theirs).abs().max() <= 1e-4
    assert (theirs[0] - theirs[2]).abs().max() > 100 * 1e-4
    assert torch.equal(ours.logit_scale.detach(), ref.logit_scale_a.detach())


def test_fused_and_unfused_windows_are_deterministic(pair):
    """The same clip embedded alone, in a batch, and again: identical, whatever the random state."""
    _, _, _, ours = pair
    clips = [clip(3.0, s) for s in range(4)]
    emb = CLAPEmbedder(model=ours, sample_rate=RATE, cache=False, progress=False, device="cpu", batch_size=4)
    np.random.seed(0)
    together = emb.fit_transform(clips)
    np.random.seed(1)
    again = emb.fit_transform(clips)
    alone = np.stack(
        [
            CLAPEmbedder(model=ours, sample_rate=RATE, cache=False, progress=False, device="cpu", batch_size=1).fit_transform([c])[0]
            for c in clips[::-1]
        ]
    )[::-1]
    assert np.abs(together - again).max() <= 1e-6
    assert np.abs(together - alone).max() <= 1e-6


def test_mel_filters_and_foreign_keys_are_checked(pair, tmp_path, roberta_dir):
    from skclap.checkpoints import read_state_dict

    _, _, path, _ = pair
    state = read_state_dict(path)
    bad = dict(state)
    bad["audio_branch.logmel_extractor.melW"] = torch.rand(513, 64)
    torch.save({"state_dict": bad}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="mel filterbank"):
        load_model(tmp_path / "a.pt", tokenizer=str(roberta_dir))
    bad = dict(state)
    bad["text_head.weight"] = torch.zeros(1)
    torch.save({"state_dict": bad}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="not part of the laion_clap CLAP model: \\['text_head.weight'\\]"):
        load_model(tmp_path / "b.pt", tokenizer=str(roberta_dir))
