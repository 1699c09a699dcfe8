import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skclap import PRESETS, CLAPConfig, CLAPModel, UnknownModelError, contrastive_loss
from skclap.loss import contrastive_logits


def test_shapes_and_normalisation(tiny_model):
    cfg = tiny_model.config
    wave = torch.randn(3, cfg.window_samples)
    with torch.inference_mode():
        a = tiny_model.encode_audio(wave)
        an = tiny_model.encode_audio(wave, normalize=True)
        t = tiny_model.encode_text(["dog barking", "a high tone", "rain"], normalize=True)
    assert a.shape == (3, cfg.proj_dim) and t.shape == (3, cfg.proj_dim)
    torch.testing.assert_close(an, F.normalize(a, dim=-1))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))


def test_forward_and_similarity(tiny_model):
    wave = torch.randn(2, tiny_model.config.window_samples)
    with torch.inference_mode():
        out = tiny_model(wave, ["one", "two"])
        sim = tiny_model.similarity(out.audio_embeds, out.text_embeds)
    assert math.isclose(float(out.logit_scale), 1 / 0.07, rel_tol=1e-5)
    torch.testing.assert_close(sim, out.logit_scale * out.audio_embeds @ out.text_embeds.T)


def test_audio_batch_independent_in_eval(tiny_model):
    wave = torch.randn(4, tiny_model.config.window_samples)
    with torch.inference_mode():
        full = tiny_model.encode_audio(wave)
        one = tiny_model.encode_audio(wave[1:2])
    torch.testing.assert_close(full[1:2], one, atol=1e-5, rtol=1e-5)


def test_text_padding_does_not_change_embedding(tiny_model):
    with torch.inference_mode():
        alone = tiny_model.encode_text(["dog"])
        padded = tiny_model.encode_text(["dog", "a much longer caption about a dog barking loudly"])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_mean_pooling_text_encoder():
    cfg = PRESETS["tiny"].replace(text={"pooling": "mean"})
    model = CLAPModel(cfg).eval()
    tokens = model.tokenize(["dog", "dog barking loudly"])
    with torch.inference_mode():
        hidden = model.text_encoder.backbone.model(**tokens)[0]
        pooled = model.text_encoder.backbone(**tokens)
    n = int(tokens["attention_mask"][0].sum())
    torch.testing.assert_close(pooled[0], hidden[0, :n].mean(0))
    with pytest.raises(ValueError, match="pooling"):
        CLAPModel(PRESETS["tiny"].replace(text={"pooling": "max"}))


def test_encode_audio_rejects_wrong_rank(tiny_model):
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        tiny_model.encode_audio(torch.zeros(16000))


def test_tokenize_rejects_non_strings(tiny_model):
    with pytest.raises(TypeError, match="text item 1"):
        tiny_model.tokenize(["ok", 3])


def test_presets_seeded():
    a = CLAPModel.from_preset("tiny", seed=3)
    b = CLAPModel.from_preset("tiny", seed=3)
    c = CLAPModel.from_preset("tiny", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    with pytest.raises(UnknownModelError, match="unknown preset"):
        CLAPModel.from_preset("huge")


def test_full_preset_has_paper_dimensions():
    cfg = PRESETS["msclap-2022"]
    f = cfg.frontend
    assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.fmin, f.fmax) == (44100, 1024, 320, 64, 50, 14000)
    assert cfg.window_samples == 5 * 44100
    assert (cfg.audio["name"], cfg.audio["dim"], cfg.text.transformer["hidden_size"], cfg.proj_dim) == ("cnn14", 2048, 768, 1024)
    assert cfg == CLAPConfig()  # the defaults are the 2022 release


# ------------------------------------------------------------------------------------ loss
def reference_loss(a: torch.Tensor, t: torch.Tensor, scale: float) -> float:
    """Symmetric InfoNCE written out with numpy, element by element."""
    a = a.numpy() / np.linalg.norm(a.numpy(), axis=1, keepdims=True)
    t = t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True)
    logits = scale * t @ a.T
    n = len(a)
    t2a = -np.mean([logits[i, i] - np.log(np.exp(logits[i]).sum()) for i in range(n)])
    a2t = -np.mean([logits[i, i] - np.log(np.exp(logits[:, i]).sum()) for i in range(n)])
    return (t2a + a2t) / 2


def test_contrastive_loss_matches_reference_and_is_asymmetric_aware():
    g = torch.Generator().manual_seed(0)
    a, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss = contrastive_loss(a, t, torch.tensor(10.0))
    assert math.isclose(float(loss), reference_loss(a, t, 10.0), rel_tol=1e-5)
    # Rows are texts, columns audio.
    logits = contrastive_logits(a, t, torch.tensor(1.0))
    torch.testing.assert_close(logits[2, 4], F.cosine_similarity(t[2], a[4], dim=0))


def test_contrastive_loss_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 16, generator=g)
    aligned = contrastive_loss(a, a + 0.01 * torch.randn(8, 16, generator=g), torch.tensor(20.0))
    shuffled = contrastive_loss(a, a.roll(1, 0), torch.tensor(20.0))
    assert aligned < 0.05 < math.log(8) < shuffled
    with pytest.raises(ValueError, match="pair up"):
        contrastive_loss(a, a[:4], torch.tensor(1.0))


def test_mel_position_channel(tmp_path):
    from skclap.models.cnn14 import Cnn14

    plain, coord = (
        Cnn14(n_mels=16, channels=(4, 4, 8, 8, 8, 8), out_dim=8),
        Cnn14(n_mels=16, channels=(4, 4, 8, 8, 8, 8), out_dim=8, freq_position=True),
    )
    assert plain.conv_block1.conv1.in_channels == 1 and coord.conv_block1.conv1.in_channels == 2
    x = torch.randn(2, 1, 20, 16)
    with_pos = coord.with_position(x)
    assert with_pos.shape == (2, 2, 20, 16) and torch.equal(with_pos[:, :1], x)
    assert with_pos[0, 1, 0, 0] == -1 and with_pos[0, 1, 7, -1] == 1 and torch.equal(with_pos[0, 1, 0], with_pos[1, 1, 19])
    assert "freq_ramp" not in coord.state_dict()  # derived, not a weight
    # the released architecture stays as it was; the small preset carries the channel, a CNN14 option
    assert not PRESETS["msclap-2022"].audio["freq_position"] and PRESETS["small"].audio["freq_position"]
    model = CLAPModel.from_preset("small", seed=0).eval()
    wave = torch.randn(1, model.config.window_samples) * 0.1
    with torch.inference_mode():
        before = model.encode_audio(wave)
        model.audio_encoder.backbone.conv_block1.conv1.weight[:, 1].zero_()  # cut the position channel
        assert (model.encode_audio(wave) - before).abs().max() > 1e-3
    model.save_pretrained(tmp_path / "m")
    again = CLAPModel.from_pretrained(tmp_path / "m").eval()
    assert again.config.audio["freq_position"]
    with torch.inference_mode():
        torch.testing.assert_close(again.encode_audio(wave), model.encode_audio(wave))
