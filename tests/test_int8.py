"""torch int8 (skclap.int8): a calibrated copy of the bundled model, on clips as users play them
(the user-played sampler, TimGM6mb), against the same model in float32."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skclap import CLAPEmbedder, CLAPModel, load_model
from skclap.datasets import make_played_set
from skclap.inference import precision_label
from skclap.int8 import calibrate_int8, int8_tower
from skclap.training import TrainConfig

pytest.importorskip("pretty_midi")  # the played clips' soundfont
pytestmark = pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines, reason="torch int8 runs on x86 CPUs")


@pytest.fixture(scope="module")
def calibrated():
    return calibrate_int8("skclap-instruments", make_played_set(34, seed=21).items())


@pytest.fixture(scope="module")
def clips():
    return make_played_set(34, seed=22).items()  # other clips than the calibration's


def embed(model, items, **kw):
    return CLAPEmbedder(model=model, cache=False, **kw).fit_transform(items)


def test_int8_vectors_are_close_to_float32_and_computed_in_int8(calibrated, clips):
    fp32 = embed(calibrated, clips)
    int8 = embed(calibrated, clips, precision="int8")
    cos = (fp32 * int8).sum(axis=1)
    assert cos.min() >= 0.98, cos.min()
    assert np.abs(fp32 - int8).max() > 1e-4  # not the float32 tower under another name
    assert any("quantized" in type(m).__module__ and "Conv" in type(m).__name__ for m in int8_tower(calibrated).modules())
    assert calibrated.int8_calibration.min_cosine >= 0.95 and calibrated.int8_calibration.windows >= 34


def test_the_first_convolutions_stay_float32(calibrated):
    convs = calibrated.int8_calibration.float_layers
    assert convs == 4
    kinds = {name: type(m).__module__ for name, m in int8_tower(calibrated).features.convs.named_children()}
    assert all("quantized" not in kinds[str(k)] for k in range(convs))
    assert all("quantized" in kinds[str(k)] for k in range(convs, 12))


def test_a_window_does_not_depend_on_its_batch(calibrated, clips):
    one = embed(calibrated, clips[:9], precision="int8", batch_size=1)
    many = embed(calibrated, clips[:9], precision="int8", batch_size=32)
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_calibration_copies_the_model_and_int8_needs_it(calibrated, clips):
    plain = load_model("skclap-instruments")
    assert calibrated is not plain and not hasattr(plain, "int8_calibration")
    with pytest.raises(ValueError, match="calibrate_int8"):
        embed(plain, clips[:2], precision="int8")
    with pytest.raises(ValueError, match="calibrate_int8"):
        precision_label(plain, "int8")


def test_int8_vectors_have_their_own_cache_identity(calibrated, clips):
    fp32 = CLAPEmbedder(model=calibrated).fit_transform(clips[:4])  # the process-wide memory cache
    int8 = CLAPEmbedder(model=calibrated, precision="int8").fit_transform(clips[:4])
    assert np.abs(fp32 - int8).max() > 1e-4
    other = calibrate_int8(calibrated, make_played_set(17, seed=23).items())
    assert precision_label(other, "int8") != precision_label(calibrated, "int8") != precision_label(calibrated, "fp32")


def test_an_estimator_with_an_int8_model_pickles_and_clones(calibrated, clips):
    est = CLAPEmbedder(model=calibrated, precision="int8", cache=False).fit(clips[:3])
    want = est.transform(clips[:3])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(clips[:3]), want)
    np.testing.assert_array_equal(clone(est).fit(clips[:3]).transform(clips[:3]), want)


def test_a_tower_changed_after_calibration_is_refused(clips):
    model = calibrate_int8("skclap-instruments", make_played_set(17, seed=24).items())
    with torch.no_grad():
        model.audio_encoder.backbone.blocks[3].conv1.weight.mul_(1.5)
    with pytest.raises(ValueError, match="changed since"):
        embed(model, clips[:2], precision="int8")


def test_bad_calibration_requests_are_refused(clips):
    with pytest.raises(ValueError, match="float_layers"):
        calibrate_int8("skclap-instruments", clips[:2], float_layers=0)
    with pytest.raises(ValueError, match="calibration"):
        calibrate_int8("skclap-instruments", [])
    with pytest.raises(NotImplementedError, match="CNN14"):
        calibrate_int8(CLAPModel.from_preset("tiny-htsat", seed=0), clips[:2])
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="int8")  # inference only


def test_skclap_embed_runs_int8_calibrated_on_a_folder(tmp_path):
    import json

    import soundfile as sf

    from skclap.cli import main as cli
    from skclap.retrieval import read_embeddings

    for name, seed, n in (("sounds", 25, 6), ("calibration", 26, 17)):
        (tmp_path / name).mkdir()
        for i, (wave, rate) in enumerate(make_played_set(n, seed=seed).items()):
            sf.write(tmp_path / name / f"clip-{i:02d}.flac", wave, rate)
    common = ["embed", str(tmp_path / "sounds"), "--model", "skclap-instruments", "--no-progress", "--device", "cpu"]
    assert cli([*common, "--out", str(tmp_path / "fp32")]) == 0
    assert cli([*common, "--out", str(tmp_path / "int8"), "--precision", "int8", "--calibration", str(tmp_path / "calibration")]) == 0
    settings = json.loads((tmp_path / "int8" / "embeddings.json").read_text())["settings"]
    assert settings["precision"].startswith("int8-static-")
    a, b = (np.stack(read_embeddings(tmp_path / d)["embedding"]) for d in ("fp32", "int8"))
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    assert (a * b).sum(axis=1).min() >= 0.98 and np.abs(a - b).max() > 1e-4
    assert cli([*common, "--out", str(tmp_path / "none"), "--precision", "int8"]) == 1  # no --calibration: a message, no traceback
    assert cli([*common, "--out", str(tmp_path / "odd"), "--calibration", str(tmp_path / "calibration")]) == 1  # without int8
