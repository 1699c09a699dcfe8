"""msclap 2023 (HTS-AT + GPT-2): parity with the reference code's own classes, through its file format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skclap import CLAPEmbedder, load_model
from skclap.models.clap import preset_config

from .conftest import drifting_tone, realistic_statistics

pytestmark = pytest.mark.parity

RATE, SECONDS = 44100, 7
CAPTIONS = ["this is a sound of dog barking", "wow! a siren wails", "rain on a tin roof, then thunder"]


def clip(seconds: float, seed: int) -> np.ndarray:
    return drifting_tone(seconds, seed, RATE)


@pytest.fixture(scope="module")
def reference(msclap_models, local_gpt2_dir, large_dir):
    """The reference model (full-size HTS-AT, small GPT-2) saved as CLAP_weights_2023.pth is."""
    import sys

    torch.manual_seed(0)
    # The yml's front-end settings (fmax 8000) are passed and ignored by the reference HTS-AT.
    ref = msclap_models.CLAP(
        audioenc_name="HTSAT",
        sample_rate=RATE,
        window_size=1024,
        hop_size=320,
        mel_bins=64,
        fmin=50,
        fmax=8000,
        classes_num=527,
        out_emb=768,
        text_model=str(local_gpt2_dir),
        transformer_embed_dim=48,
        d_proj=1024,
    ).eval()
    htsat = ref.audio_encoder.base.htsat
    with torch.no_grad():
        waves = torch.from_numpy(np.stack([clip(SECONDS, s) for s in range(4)]))
        logmel = htsat.logmel_extractor(htsat.spectrogram_extractor(waves))
        gen = torch.Generator().manual_seed(1)
        realistic_statistics(ref, logmel, gen)
        for name, p in ref.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    path = large_dir / "CLAP_weights_2023.pth"
    torch.save({"model": {"module." + k: v for k, v in ref.state_dict().items()}, "epoch": 3}, path)
    assert "msclap.models.htsat" in sys.modules
    return ref, path


@pytest.fixture(scope="module")
def ours(reference, local_gpt2_dir):
    from transformers import GPT2Config

    cfg = preset_config("msclap-2023")
    cfg.text.transformer = {"model_type": "gpt2", **GPT2Config.from_pretrained(local_gpt2_dir).to_diff_dict()}
    return load_model(reference[1], tokenizer=str(local_gpt2_dir), config=cfg)


def reference_windows(wave: np.ndarray) -> list[np.ndarray]:
    """The reference's own input for a clip up to 7 s (repeat, then trim), or skclap's consecutive
    windows for a longer one (the reference crops those at random, so no single window is its own)."""
    n = RATE * SECONDS
    if len(wave) <= n:
        return [np.tile(wave, -(-n // len(wave)))[:n]]
    starts = [min(i * n, len(wave) - n) for i in range(-(-len(wave) // n))]
    return [wave[s : s + n] for s in starts]


def test_audio_embeddings_match_the_reference(reference, ours):
    ref, _ = reference
    clips = [clip(3.0, 1), clip(7.0, 2), clip(10.5, 3)]
    got = CLAPEmbedder(model=ours, sample_rate=RATE, cache=False, progress=False, device="cpu").fit_transform(clips)
    expected = []
    with torch.inference_mode():
        for wave in clips:
            wins = torch.from_numpy(np.stack(reference_windows(wave)))
            emb = ref.audio_encoder(wins)[0].mean(0)  # projected, pooled over windows, then normalised
            expected.append((emb / emb.norm()).numpy())
    expected = np.stack(expected)
    assert np.abs(got - expected).max() <= 1e-4
    # The parity is informative: the clips' embeddings differ by far more than the tolerance.
    assert np.abs(expected[0] - expected[1]).max() > 100 * 1e-4


def test_raw_window_embeddings_and_similarity(reference, ours):
    ref, _ = reference
    wins = torch.from_numpy(np.stack([clip(SECONDS, s) for s in range(3)]))
    with torch.inference_mode():
        theirs = ref.audio_encoder(wins)[0]
        mine = ours.encode_audio(wins)
    assert mine.shape == (3, 1024)
    assert (mine - theirs).abs().max() <= 1e-4
    assert torch.equal(ours.logit_scale.detach(), ref.logit_scale.detach())


def test_text_embeddings_match_the_reference_preprocessing(reference, ours, local_gpt2_dir):
    """The reference appends ' <|endoftext|>', pads to 77 with '!' (id 0) and pools the hidden state at
    (count of non-zero ids) - 1; skclap pads to the longest text, which a causal model does not see."""
    from transformers import AutoTokenizer

    ref, _ = reference
    tok = AutoTokenizer.from_pretrained(local_gpt2_dir)
    tok.add_special_tokens({"pad_token": "!"})
    assert tok.pad_token_id == 0
    # The reference calls encode_plus (gone from transformers 5), i.e. the tokenizer on one text.
    rows = [tok(t + " <|endoftext|>", max_length=77, padding="max_length", return_tensors="pt") for t in CAPTIONS]
    batch = {k: torch.cat([r[k] for r in rows]) for k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        theirs = ref.caption_encoder(batch)
        mine = ours.encode_text(CAPTIONS)
    assert (mine - theirs).abs().max() <= 1e-4
    assert (theirs[0] - theirs[2]).abs().max() > 100 * 1e-4


def test_the_exclamation_mark_quirk_is_kept(ours):
    """'!' inside a text is id 0 too, so the pooled position moves one token back, as in the reference."""
    tokens = ours.tokenize(["wow! a siren"])
    ids = tokens["input_ids"][0]
    assert int((ids == 0).sum()) == 1 and int(tokens["attention_mask"].sum()) == len(ids)
    hidden = ours.text_encoder.backbone.model(**tokens)[0]
    with torch.inference_mode():
        pooled = ours.text_encoder.backbone(**tokens)
    torch.testing.assert_close(pooled, hidden[0, len(ids) - 2][None].detach())


def test_front_end_is_the_reference_htsat_one(ours):
    """32 kHz mel filters, 50-14000 Hz, on 44.1 kHz audio: what the reference's HTS-AT builds."""
    from skclap.frontend import mel_filterbank

    fb = ours.audio_encoder.frontend.mel_basis.numpy().T
    np.testing.assert_allclose(fb, mel_filterbank(32000, 1024, 64, 50, 14000), atol=1e-7)
    assert not np.allclose(fb, mel_filterbank(44100, 1024, 64, 50, 8000), atol=1e-4)


def test_the_import_reports_foreign_and_missing_keys(reference, tmp_path, local_gpt2_dir):
    from skclap import CheckpointError
    from skclap.checkpoints import read_state_dict

    state = read_state_dict(reference[1])
    bad = dict(state)
    del bad["audio_encoder.base.htsat.layers.1.blocks.0.attn.qkv.weight"]
    bad["caption_encoder.base.h.0.extra"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save({"model": bad}, path)
    cfg = preset_config("msclap-2023")
    from transformers import GPT2Config

    cfg.text.transformer = {"model_type": "gpt2", **GPT2Config.from_pretrained(local_gpt2_dir).to_diff_dict()}
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: .*layers\.1\.blocks\.0\.attention\.self\.key\.weight.*unexpected keys: text_encoder\.backbone\.model\.h\.0\.extra",
    ):
        load_model(path, tokenizer=str(local_gpt2_dir), config=cfg)


def test_long_captions_match_the_reference_and_keep_the_pooled_token(reference, ours, local_gpt2_dir):
    """The reference pads to 77 tokens but never truncates, so a longer caption keeps its appended
    ``<|endoftext|>``, the token its pooling reads; skclap gives the same embedding up to the tower's
    positions, and past them cuts the text before that token, never the token itself."""
    from transformers import AutoTokenizer

    ref, _ = reference
    tok = AutoTokenizer.from_pretrained(local_gpt2_dir)
    tok.add_special_tokens({"pad_token": "!"})
    long = "a siren wails " * 7  # 98 tokens with the suffix: past 77, within this tower's 128 positions
    row = tok(long + " <|endoftext|>", max_length=77, padding="max_length", return_tensors="pt")
    assert row["input_ids"].shape[1] > 77
    with torch.inference_mode():
        theirs = ref.caption_encoder({k: row[k] for k in ("input_ids", "attention_mask")})
        mine = ours.encode_text([long, "rain"])[:1]
    assert (mine - theirs).abs().max() <= 1e-4
    # cutting at 77 tokens, as before, drops the pooled token and gives another embedding
    cut = tok(long + " <|endoftext|>", max_length=77, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        truncated = ref.caption_encoder({k: cut[k] for k in ("input_ids", "attention_mask")})
    assert (truncated - theirs).abs().max() > 100 * 1e-4

    too_long = "a siren wails " * 40  # past the positions: cut before the suffix
    ids = ours.tokenize([too_long])["input_ids"][0]
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert len(ids) == ours.text_limit() == 128 and int(ids[-1]) == eos
    assert torch.isfinite(ours.encode_text([too_long])).all()
