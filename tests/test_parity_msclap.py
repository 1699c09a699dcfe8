"""Parity with the reference code (msclap's own model classes), through the released checkpoint format."""

import dataclasses

import pytest
import torch

from skclap import PRESETS, import_msclap
from skclap.models.tokenizer import load_tokenizer

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
def released_format(tmp_path_factory, msclap_models, local_bert_dir):
    """A full-size CNN14 + local BERT in msclap's classes, saved as CLAP_weights_2022.pth is."""
    from transformers import BertConfig

    torch.manual_seed(0)
    ref = msclap_models.CLAP(
        audioenc_name="Cnn14", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64,
        fmin=50, fmax=14000, classes_num=527, out_emb=2048,
        text_model=str(local_bert_dir), transformer_embed_dim=48, d_proj=1024,
    )
    randomise_batchnorm(ref, torch.Generator().manual_seed(1))
    ref.eval()
    path = tmp_path_factory.mktemp("released") / "CLAP_weights_2022.pth"
    torch.save({"model": ref.state_dict(), "epoch": 1}, path)
    text_config = {"model_type": "bert", **BertConfig.from_pretrained(local_bert_dir).to_diff_dict()}
    config = dataclasses.replace(PRESETS["msclap-2022"], text_config=text_config)
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

    # The reference pads every caption to 100 tokens; skclap pads to the longest of the batch.
    tok = load_tokenizer(local_bert_dir)
    ref_tokens = tok(CAPTIONS, padding="max_length", max_length=100, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        ref_text = ref.caption_encoder(dict(ref_tokens))
        our_text = model.encode_text(CAPTIONS)
    assert (our_text - ref_text).abs().max() <= 1e-4
    assert torch.allclose(model.logit_scale, ref.logit_scale)

    # Similarities as the reference wrapper computes them.
    ref_sim = ref.logit_scale.exp() * torch.nn.functional.normalize(ref_text, dim=-1) @ torch.nn.functional.normalize(ref_audio, dim=-1).T
    assert torch.allclose(model.similarity(our_audio, our_text).T, ref_sim, atol=1e-3)
