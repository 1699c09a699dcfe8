"""laion_clap's original .pt files: conversion onto transformers' ClapModel, parity with laion_clap's own
classes (full-size HTS-AT tiny, small RoBERTa), unfused and fused; deterministic fused inference."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from skclap import CheckpointError, CLAPEmbedder, load_model
from skclap.backends import LaionCLAP

from . import reference
from .conftest import drifting_tone, realistic_statistics
from .local_hub import laion_checkpoint, laion_reference, save_protocol_2, save_small_roberta

pytestmark = pytest.mark.parity

RATE = 48000
TEXTS = ["a dog barking", "rain on a roof", "a siren wailing in the distance"]


def clip(seconds: float, seed: int) -> np.ndarray:
    return drifting_tone(seconds, seed, RATE)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    """A small RoBERTa (laion_clap's heads take 768-wide features) and its byte-level tokenizer."""
    return save_small_roberta(tmp_path_factory.mktemp("roberta_small"))


def build_reference(roberta_dir, fused: bool):
    """laion_clap's own CLAP, its networks given the statistics of trained ones."""
    ref = laion_reference(roberta_dir, fused)
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
def pair(request, roberta_dir, large_dir):
    ref = build_reference(roberta_dir, request.param)
    path = large_dir / ("630k-fusion-best.pt" if request.param else "630k-best.pt")
    save_protocol_2(laion_checkpoint(ref, "stand-in"), path)  # as laion_clap's training/main.py saves it
    return request.param, ref, path, load_model(path, tokenizer=str(roberta_dir))


def test_original_file_loads_onto_the_laion_backend(pair):
    fused, _, _, ours = pair
    assert isinstance(ours, LaionCLAP)
    assert ours.clap.config.audio_config.enable_fusion is fused
    assert (ours.config.sample_rate, ours.config.window_samples, ours.config.proj_dim) == (48000, 480000, 512)


def test_audio_embeddings_match_laion_clap(pair):
    fused, ref, _, ours = pair
    wins = torch.from_numpy(np.stack([clip(10.0, s) for s in range(3)]))
    # laion_clap's CLAP_Module rounds the waveform through int16 before either front-end
    ref_pre = reference.laion_clap_preprocessing()
    quantized = ref_pre.int16_to_float32(ref_pre.float32_to_int16(wins.numpy()))
    with torch.inference_mode():
        if fused:
            # laion_clap's fused inference on clips up to 10 s: the four-channel mel, none longer.
            # (Its own mel code needs torchaudio; the features are transformers' feature extractor's.)
            feats = ours.feature_extractor(list(quantized), sampling_rate=RATE, truncation="fusion", return_tensors="pt")["input_features"]
            inputs = {"longer": torch.zeros(len(wins), dtype=torch.bool), "mel_fusion": feats}
        else:
            inputs = {"waveform": torch.from_numpy(quantized)}  # its own front-end (torchlibrosa) takes it
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
    """The same clip embedded alone, in a batch, and again: identical, whatever the random state,
    which embedding leaves where it was."""
    _, _, _, ours = pair
    clips = [clip(3.0, s) for s in range(4)]
    emb = CLAPEmbedder(model=ours, sample_rate=RATE, cache=False, progress=False, device="cpu", batch_size=4)
    np.random.seed(0)
    together = emb.fit_transform(clips)
    np.random.seed(1)
    again = emb.fit_transform(clips)
    drawn_after = np.random.random()
    np.random.seed(1)
    assert drawn_after == np.random.random()  # numpy's global random stream was not drawn from
    alone = np.stack(
        [
            CLAPEmbedder(model=ours, sample_rate=RATE, cache=False, progress=False, device="cpu", batch_size=1).fit_transform([c])[0]
            for c in clips[::-1]
        ]
    )[::-1]
    assert np.abs(together - again).max() <= 1e-6
    assert np.abs(together - alone).max() <= 1e-6


def test_mel_filters_and_foreign_keys_are_checked(pair, large_dir, roberta_dir):
    from skclap.checkpoints import read_state_dict

    _, _, path, _ = pair
    state = read_state_dict(path)
    bad = dict(state)
    bad["audio_branch.logmel_extractor.melW"] = torch.rand(513, 64)
    broken = large_dir / "broken-mel.pt"
    torch.save({"state_dict": bad}, broken)
    with pytest.raises(CheckpointError, match="mel filterbank"):
        load_model(broken, tokenizer=str(roberta_dir))
    broken.unlink()
    bad = dict(state)
    bad["text_head.weight"] = torch.zeros(1)
    broken = large_dir / "broken-keys.pt"
    torch.save({"state_dict": bad}, broken)
    with pytest.raises(CheckpointError, match="not part of the laion_clap CLAP model: \\['text_head.weight'\\]"):
        load_model(broken, tokenizer=str(roberta_dir))
    broken.unlink()


def test_files_embed_as_laion_clap_embeds_them(pair, tmp_path, roberta_dir):
    """End to end from files, as ``CLAP_Module.get_audio_embedding_from_filelist`` does: librosa
    loads at 48 kHz (mono: the channel mean), int16 round trip, ``get_audio_features`` pads with
    whole repeats then zeros; texts as its tokenizer cuts them (77 tokens). Clips shorter than and
    equal to one window, mono and stereo, at 48 kHz and at 44.1 kHz. (The fused model's features
    need torchaudio in laion_clap; its front-end is compared in the tests above.)"""
    import librosa
    import soundfile as sf
    from transformers import AutoTokenizer

    fused, ref, _, ours = pair
    if fused:
        pytest.skip("laion_clap computes the fused model's mel with torchaudio, which is not installed")
    pre = reference.laion_clap_preprocessing()
    files = {
        "mono-3s.wav": (clip(3.0, 1), 48000),
        "stereo-7s.wav": (np.stack([clip(7.0, 2), 0.5 * clip(7.0, 3)], axis=1), 48000),
        "mono-10s.wav": (clip(10.0, 4), 48000),
        "mono-5s-44k.wav": (drifting_tone(5.0, 5, 44100), 44100),
        "loud-2s.wav": (2.5 * clip(2.0, 6), 48000),  # beyond full scale: int16 clips it
    }
    for name, (wave, rate) in files.items():
        sf.write(tmp_path / name, wave, rate, subtype="FLOAT")
    paths = [str(tmp_path / n) for n in files]
    with torch.inference_mode():
        inputs = []
        for p in paths:
            wave, _ = librosa.load(p, sr=48000)
            wave = pre.int16_to_float32(pre.float32_to_int16(wave))
            inputs.append(pre.get_audio_features({}, torch.from_numpy(wave).float(), 480000, "rand_trunc", "repeatpad", {}))
        theirs = ref.get_audio_embedding(inputs).numpy()
    mine = CLAPEmbedder(model=ours, cache=False, progress=False, device="cpu").fit_transform(paths)
    assert np.abs(mine - theirs).max() <= 1e-4, np.abs(mine - theirs).max(axis=1)
    tok = AutoTokenizer.from_pretrained(roberta_dir)
    texts = ["a dog barking", "a siren wailing " * 30]
    with torch.inference_mode():
        tokens = tok(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
        theirs_t = ref.get_text_embedding(dict(tokens)).numpy()
    mine_t = CLAPEmbedder(model=ours, modality="text", progress=False, device="cpu").fit_transform(texts)
    assert len(tok(texts[1])["input_ids"]) > 77
    assert np.abs(mine_t - theirs_t).max() <= 1e-4


def test_score_protocols_embed_as_laion_clap_does(pair, tmp_path):
    """A protocol runs the released file's model as its tool runs laion_clap's ``CLAP_Module``:
    ``get_audio_embedding_from_data(x, use_tensor=True)``, which skips laion_clap's own 16-bit
    rounding (fadtk rounds before it, frechet-audio-distance never). The rounding that loading the
    .pt file switches on (as laion_clap's file loader rounds) stays out of the protocols' path. (Unfused: the fused features need
    torchaudio in laion_clap.)"""
    import soundfile as sf

    from skclap.score_protocols import get_protocol, protocol_frames

    fused, ref, _, ours = pair
    if fused:
        pytest.skip("laion_clap computes the fused model's mel with torchaudio, which is not installed")
    assert ours.quantize_int16  # as laion_clap's .pt files are used by CLAP_Module's file loader
    hook = reference.laion_clap_module_methods()
    me = types.SimpleNamespace(model=ref, enable_fusion=False, model_cfg={"audio_cfg": {}})
    sf.write(tmp_path / "a.wav", np.stack([clip(4.0, 7), 0.3 * clip(4.0, 8)], axis=1), RATE, subtype="FLOAT")
    loud = clip(2.5, 9)
    sf.write(tmp_path / "b.wav", 1.7 * loud / np.abs(loud).max(), RATE, subtype="FLOAT")  # past full scale: int16 rounding clips it
    paths = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    plain = None
    for name in ("frechet-audio-distance", "fadtk:clap-laion-audio"):
        proto = get_protocol(name)
        frames, _ = protocol_frames(proto, paths, ours, device="cpu")
        plain = frames if plain is None else plain
        with torch.inference_mode():
            for path, mine in zip(paths, frames):
                wins = torch.from_numpy(proto.windows(proto.load(path)))
                theirs = torch.cat([hook.get_audio_embedding_from_data(me, w[None], use_tensor=True) for w in wins]).numpy()
                assert mine.shape == theirs.shape
                assert np.abs(mine - theirs).max() <= 1e-4, (name, path)
    window = torch.from_numpy(get_protocol("frechet-audio-distance").windows(get_protocol("frechet-audio-distance").load(paths[1])))
    with torch.inference_mode():
        rounded = ours.encode_audio(window, normalize=True).numpy()  # the .pt file's own rounding, on
    assert np.abs(rounded - plain[1]).max() > 1e-3  # which the protocol keeps out: it would move the embedding


def test_fused_long_clips_embed_as_laion_clap_embeds_them(pair):
    """A clip over 10 s through the fused model's fusion branch (``longer``: the shrunk whole mel
    and three chunks, laion_clap's attentional feature fusion): the converted model gives laion_clap's
    own embedding of the same features. (The features are skclap's fusion_input; the score-protocol
    tests check them against laion_clap's get_audio_features.)"""
    from skclap.backends.laion import fusion_input

    fused, ref, _, ours = pair
    if not fused:
        pytest.skip("an unfused model crops long clips")
    for seconds, pick in ((25.0, lambda ranges: [r[len(r) // 2] for r in ranges]), (13.0, lambda ranges: [r[0] for r in ranges])):
        feats, longer = fusion_input(ours.feature_extractor, clip(seconds, 11), pick)
        assert longer
        mel = torch.from_numpy(feats)[None]
        with torch.inference_mode():
            theirs = ref.audio_projection(ref.encode_audio({"longer": torch.tensor([True]), "mel_fusion": mel}, device="cpu")["embedding"])
            mine = ours.encode_fusion(mel, torch.tensor([True]))
            global_only = ours.encode_fusion(mel, torch.tensor([False]))
        assert (mine - theirs).abs().max() <= 1e-4
        assert (mine - global_only).abs().max() > 100 * 1e-4  # the chunks count


def test_released_file_exports_to_onnx(pair, tmp_path):
    """A laion_clap .pt file (full-size HTS-AT tiny): its 16-bit rounding is in the audio graph, and
    the graph gives the model's embeddings through onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    from skclap.onnx_export import export_onnx

    fused, _, _, ours = pair
    if fused:
        pytest.skip("the fused global branch is exported in test_onnx_export.py")
    assert ours.quantize_int16
    out = export_onnx(ours, tmp_path / "onnx")
    session = ort.InferenceSession(str(out / "audio.onnx"), providers=["CPUExecutionProvider"])
    wins = np.stack([clip(10.0, 20), 1.5 * clip(10.0, 21) / np.abs(clip(10.0, 21)).max()])  # the second past full scale
    with torch.inference_mode():
        expected = ours.encode_audio(torch.from_numpy(wins)).numpy()
    assert np.abs(session.run(None, {"waveform": wins})[0] - expected).max() <= 1e-4
