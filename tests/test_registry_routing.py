"""Every registered release loads by name, offline, from where the error message says to put it, and
works in the estimators, ``skclap evaluate`` and ``skclap train --init``. Each release's file is
written here in its own format from a small model of the same family (so that it runs in seconds);
its registry entry is pointed at that small architecture. Writing the files needs the inverse of
the converters' key maps, so the round trip also checks those maps."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from skclap import CLAPEmbedder, CLAPModel, CLAPZeroShotClassifier, load_model
from skclap.backends import LaionCLAP
from skclap.checkpoints import laion_feature_extractor
from skclap.cli import main as cli
from skclap.registry import PRETRAINED

from .conftest import LAION_DIR, sine
from .downstream_fixtures import esc50
from .helpers import msclap_state

_HTSAT_BACK = [
    (r"^batch_norm\.", "bn0."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.attention\.self\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
]


def htsat_back(state: dict, src: str, dst: str) -> dict:
    """transformers' ClapAudioEncoder keys -> the reference HTS-AT's (query/key/value fused into qkv)."""
    out, qkv = {}, {}
    for key, value in state.items():
        if not key.startswith(src) or key.endswith("relative_position_index"):
            continue
        k = key[len(src) :]
        m = re.search(r"\.attention\.self\.(query|key|value)\.(weight|bias)$", k)
        if m:
            qkv.setdefault((k[: m.start()], m.group(2)), {})[m.group(1)] = value
            continue
        for pattern, new in _HTSAT_BACK:
            k = re.sub(pattern, new, k)
        out[dst + k] = value
    for (stem, kind), parts in qkv.items():
        out[f"{dst}{stem}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out


def msclap_2023_state(model: CLAPModel) -> dict:
    state = model.state_dict()
    out = htsat_back(state, "audio_encoder.backbone.model.audio_encoder.", "audio_encoder.base.htsat.")
    for k, v in state.items():
        if k.startswith("audio_encoder.projection.") or k == "logit_scale":
            out[k] = v
        elif k.startswith("text_encoder.backbone.model."):
            out["caption_encoder.base." + k[len("text_encoder.backbone.model.") :]] = v
        elif k.startswith("text_encoder.projection."):
            out["caption_encoder.projection." + k[len("text_encoder.projection.") :]] = v
    return {"module." + k: v for k, v in out.items()}


def laion_state(model: LaionCLAP) -> dict:
    state = model.clap.state_dict()
    out = htsat_back(state, "audio_model.audio_encoder.", "audio_branch.")
    for k, v in state.items():
        if k.startswith("text_model.") and not k.endswith(("position_ids", "token_type_ids")):
            out["text_branch." + k[len("text_model.") :]] = v
        elif m := re.match(r"^(audio|text)_projection\.linear([12])\.(weight|bias)$", k):
            out[f"{m.group(1)}_projection.{0 if m.group(2) == '1' else 2}.{m.group(3)}"] = v
        elif k.startswith("logit_scale"):
            out[k] = v
    out["text_transform.sequential.0.weight"] = torch.zeros(2, 2)  # laion_clap's training-only MLP
    return out


def small_laion() -> LaionCLAP:
    """The small LAION model of the tests with a text tower of 64-wide heads, as RoBERTa's are (the
    number of heads is not stored in a laion_clap file)."""
    from transformers import ClapConfig, ClapModel

    base = load_model(LAION_DIR)
    cfg = base.clap.config.to_dict()
    cfg["text_config"].update(hidden_size=64, num_attention_heads=1, intermediate_size=96)
    with torch.random.fork_rng():
        torch.manual_seed(6)
        model = ClapModel(ClapConfig(**{k: cfg[k] for k in ("audio_config", "text_config", "projection_dim")}))
    return LaionCLAP(model, laion_feature_extractor(fused=False), base.tokenizer)


@pytest.fixture()
def releases(tmp_path, monkeypatch):
    """Small files in each release format at $SKCLAP_HOME/<name>/<file>; entries pointed at them."""
    home = tmp_path / "home"
    monkeypatch.setenv("SKCLAP_HOME", str(home))
    originals = {}
    tiny, htsat, laion = CLAPModel.from_preset("tiny", seed=3), CLAPModel.from_preset("tiny-htsat", seed=4), small_laion()
    # a laion_clap file is preprocessed as laion_clap does: audio through int16, texts cut at 77 tokens
    laion = LaionCLAP(laion.clap, laion.feature_extractor, laion.tokenizer, quantize_int16=True, text_max_length=77)
    for name, ckpt in PRETRAINED.items():
        if ckpt.filename is None:
            continue  # transformers-format hub repositories: see test_laion_backend
        path = home / name / ckpt.filename
        path.parent.mkdir(parents=True)
        if ckpt.format == "laion":
            torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in laion_state(laion).items()}}, path, pickle_protocol=4)
            monkeypatch.setitem(PRETRAINED, name, dataclasses.replace(ckpt, tokenizer=str(LAION_DIR)))
            originals[name] = laion
        elif ckpt.preset == "msclap-2023":
            torch.save({"model": msclap_2023_state(htsat)}, path)
            monkeypatch.setitem(PRETRAINED, name, dataclasses.replace(ckpt, preset="tiny-htsat", tokenizer="skclap-basic"))
            originals[name] = htsat
        else:
            torch.save({"model": msclap_state(tiny)}, path)
            monkeypatch.setitem(PRETRAINED, name, dataclasses.replace(ckpt, preset="tiny", tokenizer="skclap-basic"))
            originals[name] = tiny
    return originals


def test_every_released_name_loads_its_weights_and_embeds(releases):
    assert {"msclap-2022", "msclap-2023", "laion-630k-audioset-best", "laion-music-speech-audioset"} <= set(releases)
    clips = [sine(330, 1.5, 16000), sine(2000, 0.7, 16000)]
    for name, original in releases.items():
        model = load_model(name)
        assert type(model) is type(original) and model.source == name, name
        own = original.state_dict()
        assert all(torch.equal(v, own[k]) for k, v in model.state_dict().items()), name
        emb = CLAPEmbedder(model=name, sample_rate=16000, progress=False, device="cpu", cache=False).fit_transform(clips)
        with torch.inference_mode():
            direct = CLAPEmbedder(model=original, sample_rate=16000, progress=False, device="cpu", cache=False).fit_transform(clips)
        np.testing.assert_allclose(emb, direct, atol=1e-6, err_msg=name)
        zs = CLAPZeroShotClassifier(model=name, labels=["low", "high"], sample_rate=16000, progress=False, device="cpu").fit()
        assert zs.predict_proba(clips).shape == (2, 2)


@pytest.mark.parametrize("name", ["msclap-2023", "laion-630k-fusion-best"])
def test_cli_evaluate_and_train_take_released_names(releases, name, tmp_path, capsys):
    data = esc50(tmp_path / "data")
    assert (
        cli(
            [
                "evaluate",
                "--task",
                "esc50",
                "--data-dir",
                str(data),
                "--model",
                name,
                "--mode",
                "zeroshot",
                "--out",
                str(tmp_path / "eval"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "esc50" in (tmp_path / "eval" / "results.csv").read_text().lower()
    manifest = tmp_path / "m.csv"
    rows = ["audio,caption"] + [f"{p},a tone number {i}" for i, p in enumerate(sorted((data / "audio").glob("*.wav"))[:8])]
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                str(manifest),
                "--out",
                str(out),
                "--init",
                name,
                "--batch-size",
                "4",
                "--max-steps",
                "1",
                "--lr",
                "0",
                "--weight-decay",
                "0",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    trained = load_model(out)
    original = releases[name]
    own = dict(original.named_parameters())
    assert all(torch.equal(p, own[n]) for n, p in trained.named_parameters())  # lr 0: the released weights


def test_skclap_info_lists_every_registered_model(capsys):
    assert cli(["info"]) == 0
    out = capsys.readouterr().out
    for name in [*PRETRAINED, "preset:tiny", "preset:tiny-htsat", "preset:msclap-2023"]:
        assert name in out, name
