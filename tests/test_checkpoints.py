import json
import pickle

import numpy as np
import pytest
import torch

from skclap import PRESETS, PRETRAINED, CheckpointError, CLAPModel, UnknownModelError, import_msclap, list_models, load_model
from skclap.checkpoints import resolve_checkpoint

from .helpers import msclap_state


def embeddings(model: CLAPModel) -> tuple[torch.Tensor, torch.Tensor]:
    wave = torch.sin(torch.linspace(0, 2000, model.config.window_samples))[None]
    with torch.inference_mode():
        return model.encode_audio(wave), model.encode_text(["a dog barks twice"])


def test_save_and_load_round_trip(tiny_model, tiny_model_dir):
    assert {p.name for p in tiny_model_dir.iterdir()} >= {"config.json", "model.safetensors", "tokenizer_config.json"}
    loaded = CLAPModel.from_pretrained(str(tiny_model_dir))
    assert loaded.config == tiny_model.config
    assert loaded.source == str(tiny_model_dir)
    for a, b in zip(embeddings(tiny_model), embeddings(loaded)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.tokenizer("dog barks")["input_ids"] == tiny_model.tokenizer("dog barks")["input_ids"]


def test_saving_writes_the_tokenizer_as_it_loads_not_as_its_last_call_left_it(tmp_path):
    """A padded, truncated call leaves that state on a fast tokenizer's backend; a saved model must
    not carry it into tokenizer.json, so that re-saving a model changes only what changed."""
    from skclap.registry import bundled_path

    shipped = bundled_path("skclap-instruments")
    model = CLAPModel.from_pretrained(shipped)
    model.tokenize(["a dog", "a much longer text about a dog that barks"])
    assert model.tokenizer.backend_tokenizer.padding is not None  # the state this test is about
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["padding"] is None and saved["truncation"] is None
    assert saved == json.loads((shipped / "tokenizer.json").read_text())
    again = model.tokenize(["a dog", "a much longer text about a dog that barks"])  # the next call sets its own
    assert again["input_ids"].shape[0] == 2 and (again["attention_mask"][0] == 0).any()


def test_model_pickles_with_weights(tiny_model):
    clone = pickle.loads(pickle.dumps(tiny_model))
    for a, b in zip(embeddings(tiny_model), embeddings(clone)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def copy_ckpt(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_truncated_weights_are_reported(tiny_model_dir, tmp_path):
    d = copy_ckpt(tiny_model_dir, tmp_path / "broken")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors could not be read"):
        load_model(d)


def test_config_that_does_not_fit_weights_is_reported(tiny_model_dir, tmp_path):
    d = copy_ckpt(tiny_model_dir, tmp_path / "mismatch")
    cfg = json.loads((d / "config.json").read_text())
    cfg["space"]["dim"] = 32
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch: .*projection"):
        load_model(d)


def test_bad_config_json(tiny_model_dir, tmp_path):
    d = copy_ckpt(tiny_model_dir, tmp_path / "badjson")
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(d)
    (d / "config.json").write_text(json.dumps({"format": "skclap-clap", "bogus": 1}))
    with pytest.raises(CheckpointError, match="unknown CLAP config keys: \\['bogus'\\]"):
        load_model(d)


def test_unknown_names_and_paths(tmp_path):
    with pytest.raises(UnknownModelError, match="no model named 'nope'.*msclap-2022"):
        load_model("nope")
    with pytest.raises(CheckpointError, match="not a skclap checkpoint"):
        load_model(tmp_path)
    with pytest.raises(UnknownModelError, match="'tiny' is an architecture, not released weights: pass 'preset:tiny'"):
        load_model("tiny")
    with pytest.raises(UnknownModelError, match="unknown architecture 'huge'"):
        load_model("preset:huge")
    for bad in ("[]", "null", "3"):  # valid JSON, not an object
        (tmp_path / "config.json").write_text(bad)
        with pytest.raises(CheckpointError, match="config.json holds a JSON (list|NoneType|int), not an object"):
            load_model(tmp_path)


def test_registered_checkpoint_offline_error_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SKCLAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    expected = tmp_path / "home" / "msclap-2022" / "CLAP_weights_2022.pth"
    with pytest.raises(CheckpointError) as info:
        load_model("msclap-2022")
    msg = str(info.value)
    assert "CLAP_weights_2022.pth" in msg and str(expected) in msg and "microsoft/msclap" in msg


def test_registered_checkpoint_resolves_from_skclap_home_and_hf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SKCLAP_HOME", str(tmp_path / "home"))
    placed = tmp_path / "home" / "msclap-2022" / "CLAP_weights_2022.pth"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"x")
    assert resolve_checkpoint("msclap-2022") == placed
    placed.unlink()
    # The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<rev>/file}.
    import huggingface_hub.constants as hc

    hub = tmp_path / "hub"
    repo = hub / "models--microsoft--msclap"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    (snap / "CLAP_weights_2022.pth").write_bytes(b"y")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    assert resolve_checkpoint("msclap-2022").read_bytes() == b"y"


# ------------------------------------------------------------------------------ msclap format
def test_import_msclap_format_round_trip(tiny_model, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": msclap_state(tiny_model), "optimizer": {}}, path)
    loaded = load_model(path, tokenizer="skclap-basic", config=PRESETS["tiny"])
    for a, b in zip(embeddings(tiny_model), embeddings(loaded)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_import_reports_missing_and_unexpected_keys(tiny_model, tmp_path):
    state = msclap_state(tiny_model)
    del state["module.audio_encoder.base.fc1.weight"]
    state["module.audio_encoder.base.extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save({"model": state}, path)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: audio_encoder\.backbone\.fc1\.weight; unexpected keys: audio_encoder\.backbone\.extra\.weight",
    ):
        import_msclap(path, config=PRESETS["tiny"])
    state = msclap_state(tiny_model)
    state["module.something_else.weight"] = torch.zeros(1)
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="not part of the msclap CLAP model"):
        import_msclap(path, config=PRESETS["tiny"])


def test_import_checks_the_stored_mel_filters(tiny_model, tmp_path):
    state = msclap_state(tiny_model)
    state["module.audio_encoder.base.logmel_extractor.melW"] = torch.rand(257, 32)
    path = tmp_path / "w.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="mel filterbank"):
        import_msclap(path, config=PRESETS["tiny"])


class Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_import_refuses_pickled_code_and_garbage(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="could not be read as a torch checkpoint"):
        import_msclap(path, config=PRESETS["tiny"])
    assert "code ran" not in capsys.readouterr().out
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(CheckpointError, match="junk.pth could not be read"):
        import_msclap(junk)
    torch.save([1, 2, 3], junk)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        import_msclap(junk)
    with pytest.raises(CheckpointError, match="not found"):
        import_msclap(tmp_path / "absent.pth")


def test_registry_lists_paper_checkpoint():
    ck = PRETRAINED["msclap-2022"]
    assert (ck.repo_id, ck.filename, ck.tokenizer, ck.format) == (
        "microsoft/msclap",
        "CLAP_weights_2022.pth",
        "bert-base-uncased",
        "msclap",
    )
    assert PRESETS[ck.preset].proj_dim == 1024
    ck = PRETRAINED["msclap-2023"]
    assert (ck.filename, ck.tokenizer, PRESETS[ck.preset].audio["name"]) == ("CLAP_weights_2023.pth", "gpt2", "htsat")


def test_list_models_names_every_model_once():
    rows = list_models()
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    assert {
        "msclap-2022",
        "msclap-2023",
        "laion-630k-audioset-best",
        "laion-music-speech-audioset",
        "laion/clap-htsat-fused",
        "preset:tiny",
        "preset:msclap-2022",
        "preset:msclap-2023",
        "skclap-instruments",
    } <= set(names)
    assert {r.kind for r in rows} == {"bundled", "pretrained", "preset"}
    assert [r.kind for r in rows][0] == "bundled"  # listed first: it needs nothing downloaded
    assert all(r.source.startswith("https://huggingface.co/") for r in rows if r.kind == "pretrained")


def test_presets_are_copied_on_every_read():
    cfg = PRESETS["tiny"]
    cfg.text.transformer["hidden_size"] = 999
    cfg.space.dim = 3
    cfg.audio["channels"][0] = 1
    fresh = PRESETS["tiny"]
    assert fresh.text.transformer["hidden_size"] == 32 and fresh.proj_dim == 64 and fresh.audio["channels"][0] == 8
    assert CLAPModel.from_preset("tiny").config.proj_dim == 64


def test_presets_are_data_files_of_the_package():
    from importlib import resources

    from skclap.models.tokenizer import basic_vocab

    files = {p.name for p in resources.files("skclap.models").joinpath("presets").iterdir()}
    assert {f"{name}.json" for name in PRESETS} == files
    assert PRESETS["tiny"].text.transformer["vocab_size"] == len(basic_vocab())  # the basic tokenizer's, written as a number
    rows = {r.name: r for r in list_models()}
    assert "hears absolute pitch" in rows["preset:small"].description  # each file's description is listed


def test_from_preset_changes_fields_of_sections():
    model = CLAPModel.from_preset("small", seed=0, frontend={"clip_seconds": 1.0}, audio={"freq_position": False})
    cfg = model.config
    assert cfg.frontend.clip_seconds == 1.0 and PRESETS["small"].frontend.clip_seconds == 2.0
    assert not cfg.audio["freq_position"] and cfg.audio["channels"] == PRESETS["small"].audio["channels"]
    assert model.audio_encoder.backbone.conv_block1.conv1.in_channels == 1
    other = PRESETS["tiny"].replace(audio={"name": "htsat", **PRESETS["tiny-htsat"].audio})  # another tower: the whole section
    assert other.audio == PRESETS["tiny-htsat"].audio
    with pytest.raises(ValueError, match="unknown config section 'clip_seconds'"):
        CLAPModel.from_preset("tiny", clip_seconds=1.0)
    with pytest.raises(ValueError, match=r"unknown 'frontend' fields \['no_such_field'\]"):
        CLAPModel.from_preset("tiny", frontend={"no_such_field": 1})
    with pytest.raises(ValueError, match="the cnn14 audio tower has no option 'depths'"):
        CLAPModel.from_preset("tiny", audio={"depths": [2]})


def test_preset_prefix_gives_random_weights(tiny_model):
    model = load_model("preset:tiny")
    assert model.config == tiny_model.config and model.source is None


def test_tokenizer_offline_error_says_what_to_do(tmp_path, local_bert_dir):
    from skclap.models.tokenizer import load_tokenizer

    with pytest.raises(OSError, match="bert-base-uncased.*not in the local Hugging Face cache.*tokenizer=DIR"):
        load_tokenizer("bert-base-uncased")
    with pytest.raises(OSError, match="tokenizer directory not found"):
        load_tokenizer(str(tmp_path / "missing" / "dir"))
    assert load_tokenizer(local_bert_dir)("dog")["input_ids"][0] == 2  # [CLS] of the local vocab


def test_protocol_4_files_with_numpy_scalars_load_without_running_code(tiny_model, tmp_path, capsys):
    """A file pickled at protocol 4 with numpy scalars beside the weights, whose opcodes torch's
    weights-only loader refuses; skclap reads it with an allow-list unpickler."""
    from skclap.checkpoints import read_state_dict

    path = tmp_path / "p4.pt"
    torch.save({"state_dict": msclap_state(tiny_model), "epoch": np.int64(3), "best": np.float64(0.9)}, path, pickle_protocol=4)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    loaded = load_model(path, tokenizer="skclap-basic", config=PRESETS["tiny"])
    for a, b in zip(embeddings(tiny_model), embeddings(loaded)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    evil = tmp_path / "evil4.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Payload()}, evil, pickle_protocol=4)
    with pytest.raises(CheckpointError, match="global 'builtins.print' is not allowed"):
        read_state_dict(evil)
    assert "code ran" not in capsys.readouterr().out


def test_laion_clap_protocol_2_files_load_and_code_is_still_refused(tiny_model, tmp_path, capsys):
    """laion_clap's released .pt files are torch.save's default pickle protocol 2, written under numpy
    1.x: the optimizer's numpy scalars name ``numpy.core.multiarray.scalar`` and ``numpy.dtype``, and
    their bytes ``_codecs.encode`` (how protocols 0-2 write bytes). That is the list of globals the
    hub's pickle scan gives for ``630k-audioset-best.pt``; the stand-in names exactly those."""
    from skclap.checkpoints import read_state_dict

    from .local_hub import laion_checkpoint, pickled_globals, save_protocol_2

    state = msclap_state(tiny_model)
    ckpt = laion_checkpoint(torch.nn.ModuleDict({"audio_projection": torch.nn.Linear(2, 2)}), "run")  # as main.py saves
    ckpt["state_dict"] = state
    path = save_protocol_2(ckpt, tmp_path / "630k-audioset-best.pt")
    assert pickled_globals(path) == {
        "_codecs.encode",
        "numpy.core.multiarray.scalar",
        "numpy.dtype",
        "torch.LongStorage",
        "torch.FloatStorage",
        "torch._utils._rebuild_tensor_v2",
        "collections.OrderedDict",
    }
    loaded = read_state_dict(path)
    assert set(loaded) == {k[len("module.") :] for k in state}
    assert all(torch.equal(loaded[k[len("module.") :]], v) for k, v in state.items())
    model = load_model(path, tokenizer="skclap-basic", config=PRESETS["tiny"])
    for a, b in zip(embeddings(tiny_model), embeddings(model)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    evil = tmp_path / "evil2.pt"
    save_protocol_2({"state_dict": {"x": torch.zeros(1)}, "lr": np.float64(1e-4), "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match=r"'__builtin__\.print' is not allowed"):  # protocol 2's name
        read_state_dict(evil)
    assert "code ran" not in capsys.readouterr().out
