"""The ONNX engine: CLAPEmbedder(engine="onnxruntime") on an export gives the torch model's
embeddings, in a process where torch cannot be imported; its tokenisation is the model's own; it
refuses what it cannot run, naming it."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skclap import CheckpointError, CLAPEmbedder, load_model
from skclap.onnx_engine import MANIFEST, OnnxCLAP, load_onnx
from skclap.onnx_export import TOLERANCE, export_onnx

pytest.importorskip("onnxruntime")

#: Texts at both ends: one token, and one past every model's token limit.
TEXTS = ["a", "piano", "the soft low sound of a cello, then a trumpet, then a snare drum " * 12]


@pytest.fixture(scope="module")
def played():
    """Clips as users play them: any key, notes, melodies, chords, drums; 0.5-10 s; 16-48 kHz."""
    from skclap.datasets import make_played_set

    return make_played_set(17, seed=5)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    return export_onnx("skclap-instruments", tmp_path_factory.mktemp("onnx") / "skclap-instruments")


def _embedder(model, **kw):
    return CLAPEmbedder(model=model, device="cpu", cache=False, progress=False, **kw)


def test_embedder_matches_the_torch_model_on_what_users_play(bundled, played):
    torch_audio = _embedder("skclap-instruments").fit_transform(played.items())
    onnx = _embedder(bundled, engine="onnxruntime")
    got = onnx.fit_transform(played.items())
    assert got.dtype == np.float32 and got.shape == torch_audio.shape
    assert np.abs(got - torch_audio).max() <= TOLERANCE
    assert np.abs(torch_audio[0] - torch_audio[1]).max() > 100 * TOLERANCE  # the clips differ: a real comparison
    # batches cut windows of one clip apart and put several clips in one: the vectors stay
    assert np.abs(_embedder(bundled, engine="onnxruntime", batch_size=3).fit_transform(played.items()) - got).max() <= 1e-5
    torch_text = _embedder("skclap-instruments", modality="text").fit_transform(TEXTS)
    got_text = _embedder(bundled, engine="onnxruntime", modality="text").fit_transform(TEXTS)
    assert np.abs(got_text - torch_text).max() <= TOLERANCE


def test_a_pipeline_clones_pickles_and_cross_validates(bundled):
    embedder = _embedder(bundled, engine="onnxruntime")
    again = pickle.loads(pickle.dumps(clone(embedder)))
    assert again.get_params() == embedder.get_params()
    from skclap.datasets import make_played_set

    four = make_played_set(16, seed=6, instruments=["flute", "kick drum", "marimba", "trumpet"])
    X, y = four.items(), four.labels
    torch_scores = cross_val_score(make_pipeline(_embedder("skclap-instruments"), LogisticRegression(max_iter=500)), X, y, cv=2)
    onnx_scores = cross_val_score(make_pipeline(again, LogisticRegression(max_iter=500)), X, y, cv=2)
    np.testing.assert_allclose(onnx_scores, torch_scores)


def test_runs_where_torch_cannot_be_imported(bundled, played, tmp_path):
    """A process in which importing torch or transformers fails embeds files, arrays and texts, and
    never loads torch: the vectors are the torch model's."""
    wave, rate = played.items()[0]
    sf.write(tmp_path / "clip.flac", wave, rate)
    items = [str(tmp_path / "clip.flac"), played.items()[1]]
    expected = _embedder("skclap-instruments").fit_transform(items)
    expected_text = _embedder("skclap-instruments", modality="text").fit_transform(TEXTS)
    np.save(tmp_path / "pair.npy", played.items()[1][0])
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        import numpy as np

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError(f"{{name}} is not installed here")

        sys.meta_path.insert(0, NoTorch())
        from skclap import CLAPEmbedder

        items = [{str(tmp_path / "clip.flac")!r}, (np.load({str(tmp_path / "pair.npy")!r}), {played.items()[1][1]})]
        audio = CLAPEmbedder(model={str(bundled)!r}, engine="onnxruntime", progress=False).fit_transform(items)
        text = CLAPEmbedder(model={str(bundled)!r}, engine="onnxruntime", modality="text").fit_transform({TEXTS!r})
        np.save({str(tmp_path / "audio.npy")!r}, audio)
        np.save({str(tmp_path / "text.npy")!r}, text)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert np.abs(np.load(tmp_path / "audio.npy") - expected).max() <= TOLERANCE
    assert np.abs(np.load(tmp_path / "text.npy") - expected_text).max() <= TOLERANCE


def test_tokenisation_is_the_models_own_with_a_suffix_and_a_limit(local_gpt2_dir, tmp_path):
    """msclap 2023's text side at a small size: a GPT-2 tokenizer whose pad token is "!", the
    suffix " <|endoftext|>" whose last token the pooling reads, a text past the limit cut before the
    suffix; the tokenizers library reproduces the model's tokenize, and the engine its text vectors."""
    from transformers import GPT2Config

    from skclap.models import CLAPModel
    from skclap.models.clap import preset_config

    cfg = preset_config("tiny-htsat")
    cfg.text.transformer = {"model_type": "gpt2", **GPT2Config.from_pretrained(local_gpt2_dir).to_diff_dict()}
    cfg.text.tokenizer, cfg.text.suffix, cfg.text.pad_token, cfg.text.max_length = str(local_gpt2_dir), " <|endoftext|>", "!", 40
    model = CLAPModel.from_config(cfg, seed=0).eval()
    out = export_onnx(model, tmp_path / "htsat")
    onnx = OnnxCLAP(out)
    expected = {k: v.numpy() for k, v in model.tokenize(TEXTS).items()}
    got = onnx.tokenize(TEXTS)
    assert sorted(got) == sorted(expected)
    for k in got:
        np.testing.assert_array_equal(got[k], expected[k])
    assert got["attention_mask"][-1].sum() == model.text_limit()
    vectors = _embedder(out, engine="onnxruntime", modality="text").fit_transform(TEXTS)
    assert np.abs(vectors - _embedder(model, modality="text").fit_transform(TEXTS)).max() <= TOLERANCE


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_laion_models_through_the_engine(fused, played, tmp_path):
    """A LAION model (RoBERTa tokenizer; its numpy front-end inside the graph): the engine's clip
    vectors and text vectors are the torch model's."""
    from .local_hub import save_transformers_repo

    model = load_model(save_transformers_repo(tmp_path / "laion", fused=fused, bin_only=False), device="cpu")
    out = export_onnx(model, tmp_path / "out")
    items = played.items()[:6]
    expected = _embedder(model).fit_transform(items)
    assert np.abs(_embedder(out, engine="onnxruntime").fit_transform(items) - expected).max() <= TOLERANCE
    expected_t = {k: v.numpy() for k, v in model.tokenize(TEXTS).items()}
    got_t = OnnxCLAP(out).tokenize(TEXTS)
    assert sorted(got_t) == sorted(expected_t) and all(np.array_equal(got_t[k], expected_t[k]) for k in got_t)


def test_the_cache_keys_the_graph(bundled, played, tmp_path):
    """A disk cache stores one vector per clip and serves it again; another export of other weights
    does not read it."""
    items = played.items()[:4]
    first = CLAPEmbedder(model=bundled, engine="onnxruntime", cache=tmp_path / "cache", progress=False).fit_transform(items)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(items)
    again = CLAPEmbedder(model=bundled, engine="onnxruntime", cache=tmp_path / "cache", progress=False).fit_transform(items)
    np.testing.assert_array_equal(again, first)
    other = export_onnx("preset:tiny", tmp_path / "tiny")
    CLAPEmbedder(model=other, engine="onnxruntime", cache=tmp_path / "cache", progress=False).fit_transform(items)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2 * len(items)


def test_refuses_what_it_cannot_run(bundled, tmp_path):
    with pytest.raises(CheckpointError, match="lacks audio.onnx, text.onnx, tokenizer.json, skclap-onnx.json"):
        _embedder(tmp_path, engine="onnxruntime").fit(["x.wav"])
    with pytest.raises(CheckpointError, match="is not a folder"):
        _embedder("skclap-instruments", engine="onnxruntime").fit(["x.wav"])
    with pytest.raises(ValueError, match="graphs are float32"):
        _embedder(bundled, engine="onnxruntime", precision="bf16").fit(["x.wav"])
    with pytest.raises(ValueError, match="runs on the CPU"):
        CLAPEmbedder(model=bundled, engine="onnxruntime", device="cuda").fit(["x.wav"])
    with pytest.raises(ValueError, match="engine"):
        _embedder(bundled, engine="tensorrt").fit(["x.wav"])
    with pytest.raises(FileNotFoundError, match="missing.wav"):  # as the torch path says it
        _embedder(bundled, engine="onnxruntime").fit_transform([str(tmp_path / "missing.wav")])
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("audio.onnx", "text.onnx", "tokenizer.json", MANIFEST):
        (broken / f).write_bytes((bundled / f).read_bytes())
    (broken / MANIFEST).write_text(json.dumps({"format": "skclap-onnx", "version": 7}))
    with pytest.raises(CheckpointError, match="version 7"):
        load_onnx(broken)
    (broken / MANIFEST).write_text((bundled / MANIFEST).read_text())
    (broken / "audio.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="audio.onnx.*cannot be loaded by onnxruntime"):
        _embedder(broken, engine="onnxruntime").fit_transform(
            [(np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1, 16000)]
        )


def _float_convs(graph) -> int:  # noqa: ANN001
    """Convolutions whose weights are a float32 tensor of the graph (a quantised one's come through
    a DequantizeLinear node)."""
    floats = {t.name for t in graph.graph.initializer if t.data_type == 1}  # onnx.TensorProto.FLOAT
    return sum(1 for n in graph.graph.node if n.op_type == "Conv" and n.input[1] in floats)


def test_an_int8_export_is_calibrated_and_stays_close(tmp_path, played):
    """``--quantize int8``: int8 convolutions calibrated on other clips than the test's; the engine's
    clip vectors stay near the torch model's (a broken quantisation gives cosines near zero), and
    the graph holds int8 weights."""
    import onnx

    from skclap.cli import main
    from skclap.datasets import make_played_set

    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i, (wave, rate) in enumerate(make_played_set(34, seed=11).items()):
        sf.write(calibration / f"{i:02d}.flac", wave, rate)
    out = tmp_path / "int8"
    assert main(["export", "skclap-instruments", str(out), "--quantize", "int8", "--calibration", str(calibration)]) == 0
    record = json.loads((out / MANIFEST).read_text())["audio"]["quantized"]
    assert record["calibration_windows"] >= 34 and record["min_cosine_calibration"] >= 0.95
    graph = onnx.load(str(out / "audio.onnx"))
    int8 = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= 10  # the convolutions' weights
    assert _float_convs(graph) == 4 and record["float_layers"] == 4  # the first two blocks
    expected = _embedder("skclap-instruments").fit_transform(played.items())
    got = _embedder(out, engine="onnxruntime").fit_transform(played.items())
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() >= 0.95 and cosines.mean() >= 0.99
    assert np.abs(got - expected).max() > TOLERANCE  # it is another graph than the float32 one
    more = tmp_path / "int8-3"
    assert (
        main(["export", "skclap-instruments", str(more), "--quantize", "int8", "--calibration", str(calibration), "--float-layers", "3"])
        == 0
    )
    assert _float_convs(onnx.load(str(more / "audio.onnx"))) == 3
    assert json.loads((more / MANIFEST).read_text())["audio"]["quantized"]["float_layers"] == 3
    with pytest.raises(SystemExit, match="--calibration"):
        main(["export", "skclap-instruments", str(tmp_path / "none"), "--quantize", "int8"])
    with pytest.raises(SystemExit, match="goes with --quantize"):
        main(["export", "skclap-instruments", str(tmp_path / "none"), "--float-layers", "3"])
    with pytest.raises(SystemExit, match="1 or more"):
        main(
            [
                "export",
                "skclap-instruments",
                str(tmp_path / "none"),
                "--quantize",
                "int8",
                "--calibration",
                str(calibration),
                "--float-layers",
                "0",
            ]
        )
    with pytest.raises(ValueError, match="calibrated on audio"):
        export_onnx("skclap-instruments", tmp_path / "none", quantize="int8")
