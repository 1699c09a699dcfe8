"""Parity with the reference code (msclap's own model classes), through the released checkpoint format."""

import numpy as np
import pytest
import torch

from skclap import PRESETS, CLAPEmbedder, import_msclap
from skclap.models.tokenizer import load_tokenizer

from .conftest import calibrate_batchnorm, drifting_tone

pytestmark = pytest.mark.parity

CAPTIONS = ["this is a sound of dog barking.", "rain falling on a tin roof", "a short high beep"]


def randomise_batchnorm(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every batch norm non-trivial statistics so that a mistake in bn0 or the blocks shows."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def released_format(large_dir, msclap_models, local_bert_dir):
    """A full-size CNN14 + local BERT in msclap's classes, saved as CLAP_weights_2022.pth is."""
    from transformers import BertConfig

    torch.manual_seed(0)
    ref = msclap_models.CLAP(
        audioenc_name="Cnn14",
        sample_rate=44100,
        window_size=1024,
        hop_size=320,
        mel_bins=64,
        fmin=50,
        fmax=14000,
        classes_num=527,
        out_emb=2048,
        text_model=str(local_bert_dir),
        transformer_embed_dim=48,
        d_proj=1024,
    )
    waves = torch.from_numpy(np.stack([drifting_tone(5.0, s, 44100) for s in range(8)]))
    calibrate_batchnorm(ref, lambda: ref.audio_encoder(waves), torch.Generator().manual_seed(1))
    path = large_dir / "CLAP_weights_2022.pth"
    torch.save({"model": ref.state_dict(), "epoch": 1}, path)
    text_config = {"model_type": "bert", **BertConfig.from_pretrained(local_bert_dir).to_diff_dict()}
    config = PRESETS["msclap-2022"].replace(text={"transformer": text_config})
    return ref, path, config


def test_full_size_audio_and_text_embeddings_match_reference(released_format, local_bert_dir):
    ref, path, config = released_format
    model = import_msclap(path, tokenizer=local_bert_dir, config=config)

    gen = torch.Generator().manual_seed(2)
    t = torch.arange(5 * 44100) / 44100
    wave = torch.stack([0.3 * torch.randn(5 * 44100, generator=gen), 0.5 * torch.sin(2 * torch.pi * 440 * t)])
    with torch.inference_mode():
        ref_audio, _ = ref.audio_encoder(wave)
        our_audio = model.encode_audio(wave)
    assert our_audio.shape == (2, 1024)
    assert (our_audio - ref_audio).abs().max() <= 1e-4
    assert (ref_audio[0] - ref_audio[1]).abs().max() >= 100 * 1e-4  # the inputs are told apart

    # The reference pads every caption to 100 tokens; skclap pads to the longest of the batch.
    tok = load_tokenizer(local_bert_dir)
    ref_tokens = tok(CAPTIONS, padding="max_length", max_length=100, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        ref_text = ref.caption_encoder(dict(ref_tokens))
        our_text = model.encode_text(CAPTIONS)
    assert (our_text - ref_text).abs().max() <= 1e-4
    assert torch.allclose(model.logit_scale, ref.logit_scale)
    # a caption past the reference's 100 tokens: it pads to 100 but never truncates
    long = "rain falling on a tin roof " * 18
    long_tokens = tok([long], padding="max_length", max_length=100, return_tensors="pt")
    assert 100 < long_tokens["input_ids"].shape[1] <= 128  # within this BERT's positions
    with torch.inference_mode():
        assert (model.encode_text([long]) - ref.caption_encoder(dict(long_tokens))).abs().max() <= 1e-4

    # Similarities as the reference wrapper computes them.
    ref_sim = ref.logit_scale.exp() * torch.nn.functional.normalize(ref_text, dim=-1) @ torch.nn.functional.normalize(ref_audio, dim=-1).T
    assert torch.allclose(model.similarity(our_audio, our_text).T, ref_sim, atol=1e-3)


def reference_windows(wave: np.ndarray, rate: int = 44100, seconds: int = 5) -> list[np.ndarray]:
    """The reference's own input for a clip up to 5 s (repeated, then trimmed), or skclap's consecutive
    windows for a longer clip, the last aligned to its end (the reference crops those at random)."""
    n = rate * seconds
    if len(wave) <= n:
        return [np.tile(wave, -(-n // len(wave)))[:n]]
    return [wave[min(i * n, len(wave) - n) : min(i * n, len(wave) - n) + n] for i in range(-(-len(wave) // n))]


def test_clips_of_any_length_match_the_reference_windows_and_pooling(released_format, local_bert_dir):
    """Short clips are repeat-padded, long ones cut into end-aligned windows whose raw embeddings are
    averaged before normalisation; the clips' embeddings differ by far more than the tolerance, so
    zero-padding, a misaligned last window or pooling after normalisation would fail here."""
    ref, path, config = released_format
    model = import_msclap(path, tokenizer=local_bert_dir, config=config)
    clips = [drifting_tone(2.0, 1, 44100), drifting_tone(5.0, 2, 44100), drifting_tone(12.3, 3, 44100)]
    got = CLAPEmbedder(model=model, sample_rate=44100, cache=False, progress=False, device="cpu").fit_transform(clips)
    expected = []
    with torch.inference_mode():
        for wave in clips:
            raw = ref.audio_encoder(torch.from_numpy(np.stack(reference_windows(wave))))[0].mean(0)
            expected.append((raw / raw.norm()).numpy())
    expected = np.stack(expected)
    assert np.abs(got - expected).max() <= 1e-4
    assert min(np.abs(expected[i] - expected[j]).max() for i in range(3) for j in range(i)) >= 100 * 1e-4
