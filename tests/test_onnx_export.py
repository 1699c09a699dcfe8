"""ONNX export: the graphs through onnxruntime against the torch model, on user-played recordings and
on the shortest and longest texts, for skclap's architectures and LAION's; the manifest followed
outside the graphs gives the estimators' embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skclap import CLAPEmbedder, load_model
from skclap.audio import prepare, windows
from skclap.onnx_engine import MANIFEST
from skclap.onnx_export import TOLERANCE, export_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def played():
    """20 clips as users play them (any key, notes, melodies, chords, drums; 0.5-10 s; 16-48 kHz)."""
    from skclap.datasets import make_played_set

    return make_played_set(20, seed=3)


def _sessions(out):
    return (
        ort.InferenceSession(str(out / "audio.onnx"), providers=["CPUExecutionProvider"]),
        ort.InferenceSession(str(out / "text.onnx"), providers=["CPUExecutionProvider"]),
    )


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    model = load_model("skclap-instruments", device="cpu")
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "skclap-instruments")


def test_bundled_graphs_match_the_model_on_what_users_play(bundled, played):
    model, out = bundled
    audio, text = _sessions(out)
    rate, length = model.config.sample_rate, model.config.window_samples
    wins = np.concatenate([windows(prepare(item, rate), length, model.window_padding) for item in played.items()])
    assert len(wins) > 40  # clips of up to 10 s: several windows each
    with torch.inference_mode():
        expected = model.encode_audio(torch.from_numpy(wins)).numpy()
    for batch in (1, 7, len(wins)):  # the batch is dynamic
        got = np.concatenate([audio.run(None, {"waveform": wins[i : i + batch]})[0] for i in range(0, len(wins), batch)])
        assert np.abs(got - expected).max() <= TOLERANCE
    assert np.abs(expected[0] - expected[1]).max() > 100 * TOLERANCE
    texts = ["a", "piano", "the soft low sound of a cello " * 20]  # the last is cut at the tokenizer's limit
    tokens = model.tokenize(texts)
    assert tokens["input_ids"].shape[1] == model.text_limit()
    with torch.inference_mode():
        expected_t = model.encode_text(texts).numpy()
    got_t = text.run(None, {k: v.numpy() for k, v in tokens.items()})[0]
    assert np.abs(got_t - expected_t).max() <= TOLERANCE


def test_the_manifest_followed_outside_the_graphs_gives_the_estimators_embeddings(bundled, played):
    """Windows, padding, the quiet-window gate, the mean and L2, as skclap-onnx.json says, over the
    audio graph: the embeddings CLAPEmbedder gives (no torch model involved on this side)."""
    model, out = bundled
    spec = json.loads((out / MANIFEST).read_text())
    assert (spec["sample_rate"], spec["window_samples"], spec["proj_dim"]) == (16000, model.config.window_samples, model.config.proj_dim)
    assert spec["audio"]["window_padding"] == model.window_padding and spec["audio"]["quiet_window_db"] == model.quiet_window_db
    audio, _ = _sessions(out)
    rows = []
    for item in played.items():
        wins = windows(prepare(item, spec["sample_rate"]), spec["window_samples"], spec["audio"]["window_padding"])
        emb = audio.run(None, {"waveform": wins})[0].astype(np.float64)
        gate = spec["audio"]["quiet_window_db"]
        if gate is not None:
            db = 10 * np.log10(np.mean(np.square(wins, dtype=np.float64), axis=1) + 1e-20)
            emb = emb[db >= db.max() - gate]
        mean = emb.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    expected = CLAPEmbedder(model="skclap-instruments", device="cpu", cache=False, progress=False).fit_transform(played.items())
    assert np.abs(np.stack(rows) - expected).max() <= TOLERANCE


def test_htsat_and_gpt2_towers_export(tmp_path):
    """msclap 2023's architecture at a small size (an HTS-AT audio tower, a GPT-2 text tower with
    attention over the tokens): random weights, checked by the export itself and here."""
    model = load_model("preset:tiny-htsat", device="cpu")
    out = export_onnx(model, tmp_path / "htsat")
    audio, text = _sessions(out)
    wave = np.random.default_rng(0).normal(scale=0.1, size=(4, model.config.window_samples)).astype(np.float32)
    with torch.inference_mode():
        expected = model.encode_audio(torch.from_numpy(wave)).numpy()
    assert np.abs(audio.run(None, {"waveform": wave})[0] - expected).max() <= TOLERANCE
    long = "a violin " * 200
    tokens = model.tokenize(["a", long])
    assert tokens["input_ids"].shape[1] == model.text_limit() and tokens["attention_mask"][0].sum() < model.text_limit()
    with torch.inference_mode():
        expected_t = model.encode_text(["a", long]).numpy()
    got = text.run(None, {k: v.numpy() for k, v in tokens.items()})[0]
    assert np.abs(got - expected_t).max() <= TOLERANCE
    assert json.loads((out / MANIFEST).read_text())["text"]["suffix"] == model.config.text.suffix


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_laion_models_export(fused, played, tmp_path):
    """A LAION model in the transformers layout: its front-end (numpy in skclap, as transformers'
    extractor computes it) is in the graph as torch.stft, within float32 rounding of it; a fused
    model's graph is its global branch, which every window up to 10 s takes."""
    from .local_hub import save_transformers_repo

    model = load_model(save_transformers_repo(tmp_path / "laion", fused=fused, bin_only=False), device="cpu")
    modes = {name: m.training for name, m in model.named_modules()}
    out = export_onnx(model, tmp_path / "out")
    assert {name: m.training for name, m in model.named_modules()} == modes  # each module as it was (dropout stays off)
    audio, text = _sessions(out)
    rate, length = model.config.sample_rate, model.config.window_samples
    wins = np.concatenate([windows(prepare(item, rate), length, model.window_padding) for item in played.items()[:8]])
    with torch.inference_mode():
        expected = model.encode_audio(torch.from_numpy(wins)).numpy()
    assert np.abs(audio.run(None, {"waveform": wins})[0] - expected).max() <= TOLERANCE
    texts = ["a", "a dog barking in the rain while a siren wails " * 12]
    tokens = model.tokenize(texts)
    with torch.inference_mode():
        expected_t = model.encode_text(texts).numpy()
    assert np.abs(text.run(None, {k: v.numpy() for k, v in tokens.items()})[0] - expected_t).max() <= TOLERANCE


def test_other_models_are_refused_by_name(tmp_path):
    from .fake_model import ProjectionModel

    with pytest.raises(NotImplementedError, match="ProjectionModel is neither"):
        export_onnx(ProjectionModel(), tmp_path / "out")


def test_command_exports(tmp_path, capsys):
    from skclap.cli import main

    assert main(["export", "preset:tiny", str(tmp_path / "tiny"), "--format", "onnx"]) == 0
    said = capsys.readouterr().out
    assert "audio.onnx" in said and "text.onnx" in said and MANIFEST in said
    assert {"audio.onnx", "text.onnx", MANIFEST, "tokenizer.json"} <= {p.name for p in (tmp_path / "tiny").iterdir()}


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    import skclap.onnx_export as onnx_export

    def fail(clap, dest):
        raise RuntimeError("the exported audio graph differs from the model by 0.5")

    monkeypatch.setattr(onnx_export, "_check_export", fail)
    with pytest.raises(RuntimeError, match="differs from the model"):
        export_onnx("preset:tiny", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # no folder, no half-written graphs beside it
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_onnx("preset:tiny", tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_the_check_compares_directions_and_refuses_a_turned_vector():
    """The export's check takes the graph's output as consumers do, L2-normalised: a vector at another
    scale in the same direction passes, one turned by more than the tolerance fails, and so does
    another shape."""
    from skclap.onnx_export import _check

    class Graph:  # onnxruntime's InferenceSession.run: a list of outputs
        def __init__(self, out):
            self.out = out

        def run(self, names, feeds):
            return [self.out]

    expected = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32) * 10
    assert _check(Graph(expected * 1.001), {}, expected, "audio") < 1e-6  # rounding that scales with the vector
    turned = expected.copy()
    turned[1, 0] += 0.05 * np.linalg.norm(expected[1])
    with pytest.raises(RuntimeError, match="differs from the model"):
        _check(Graph(turned), {}, expected, "audio")
    with pytest.raises(RuntimeError, match="gives shape"):
        _check(Graph(expected[:2]), {}, expected, "audio")
