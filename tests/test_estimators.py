"""End-to-end behaviour of the estimators: inputs, pipelines, cross-validation, caching, pickling."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from skclap import AudioError, CheckpointError, CLAPCompositionalClassifier, CLAPEmbedder, CLAPLinearProbe, CLAPZeroShotClassifier
from skclap.audio import prepare, windows
from skclap.cache import DiskCache, get_cache
from skclap.checkpoints import resolve_model

from .conftest import gtzan_files, sine
from .helpers import PARTS, EncoderCalls

KW = dict(sample_rate=16000, progress=False, device="cpu")


@pytest.fixture(autouse=True)
def fresh_memory_cache():
    get_cache(True).clear()
    yield
    get_cache(True).clear()


# ------------------------------------------------------------------------------ CLAPEmbedder
def test_input_forms_give_the_same_embeddings(tiny_model_dir, tmp_path):
    import soundfile as sf

    waves = [sine(f, 1.0, 16000) for f in (300, 900, 2000)]
    paths = []
    for i, w in enumerate(waves):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], w, 16000, subtype="FLOAT")
    emb = CLAPEmbedder(model=tiny_model_dir, cache=False, **KW)
    ref = emb.fit_transform(np.stack(waves))
    assert ref.shape == (3, 64) and ref.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1, rtol=1e-5)
    for X in (
        paths,
        np.array(paths, dtype=object),
        pd.Series(paths),
        pd.DataFrame({"path": paths}),
        waves,
        [(w, 16000) for w in waves],
        [{"array": w, "sampling_rate": 16000} for w in waves],
        torch.from_numpy(np.stack(waves)),
    ):
        np.testing.assert_allclose(emb.transform(X), ref, atol=1e-5)
    # Resampled input lands on the same embedding as native-rate input.
    up = [(np.interp(np.arange(0, 16000, 16000 / 44100), np.arange(16000), w), 44100) for w in waves]
    np.testing.assert_allclose(emb.transform(up), ref, atol=0.05)


def test_long_clip_is_the_mean_of_its_windows(tiny_model_dir, tiny_model):
    wave = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1
    got = CLAPEmbedder(model=tiny_model_dir, normalize=False, cache=False, **KW).fit_transform([wave])
    with torch.inference_mode():
        expected = tiny_model.encode_audio(torch.from_numpy(windows(wave, 16000))).mean(0).numpy()
    np.testing.assert_allclose(got[0], expected, atol=1e-5)


def test_text_modality_and_feature_names(tiny_model_dir, tiny_model):
    emb = CLAPEmbedder(model=tiny_model_dir, modality="text", **KW)
    out = emb.fit_transform(["a dog barking", "rain"])
    with torch.inference_mode():
        expected = tiny_model.encode_text(["a dog barking", "rain"], normalize=True).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert list(emb.get_feature_names_out()[:2]) == ["clap_text0", "clap_text1"]
    with pytest.raises(ValueError, match="text item 1 is missing"):
        emb.transform(["ok", None])


def test_set_output_pandas_keeps_the_index(tiny_model_dir):
    X = pd.DataFrame({"clip": [sine(440, 1.0, 16000), sine(880, 1.0, 16000)]}, index=["a", "b"])
    out = CLAPEmbedder(model=tiny_model_dir, **KW).set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["a", "b"] and list(out.columns[:3]) == ["clap0", "clap1", "clap2"]


def test_no_work_in_init_and_clone_is_unfitted(tiny_model_dir):
    emb = CLAPEmbedder(model="/does/not/exist")  # nothing is loaded yet
    with pytest.raises(CheckpointError, match="no checkpoint directory or file at '/does/not/exist'"):
        emb.fit([sine(440, 1.0, 16000)])
    fitted = CLAPEmbedder(model=tiny_model_dir, **KW).fit(np.zeros((2, 100)))
    twin = clone(fitted)
    assert not hasattr(twin, "embedding_dim_") and not hasattr(twin, "_model")
    assert twin.get_params() == fitted.get_params()


def test_clones_share_an_in_memory_model(tiny_model):
    for est in (
        CLAPEmbedder(model=tiny_model, **KW),
        CLAPZeroShotClassifier(model=tiny_model, labels=["a", "b"], **KW),
        CLAPLinearProbe(model=tiny_model, estimator=LogisticRegression(C=3.0), **KW),
    ):
        twin = clone(est)
        assert twin.model is tiny_model  # a frozen feature extractor, not copied per fold
        assert twin.get_params().keys() == est.get_params().keys()
        for name, value in est.get_params(deep=False).items():
            if name != "model" and hasattr(value, "get_params"):
                assert twin.get_params()[name] is not value and twin.get_params()[name].get_params() == value.get_params()
    pipe = Pipeline([("emb", CLAPEmbedder(model=tiny_model, **KW)), ("clf", LogisticRegression())])
    assert clone(pipe).named_steps["emb"].model is tiny_model


def test_pickling_keeps_named_models_light_and_in_memory_models_whole(tiny_model_dir, tiny_model):
    X = np.stack([sine(440, 1.0, 16000), sine(3000, 1.0, 16000)])
    by_path = CLAPEmbedder(model=str(tiny_model_dir), **KW).fit(X)
    expected = by_path.transform(X)
    blob = pickle.dumps(by_path)
    assert len(blob) < 5_000  # the path, not the weights
    np.testing.assert_allclose(pickle.loads(blob).transform(X), expected, atol=1e-6)

    in_memory = CLAPEmbedder(model=tiny_model, **KW).fit(X)
    blob = pickle.dumps(in_memory)
    n_bytes = sum(p.numel() * 4 for p in tiny_model.parameters())
    assert len(blob) > n_bytes
    np.testing.assert_allclose(pickle.loads(blob).transform(X), expected, atol=1e-6)


def test_bad_inputs_are_named(tiny_model_dir, tmp_path):
    emb = CLAPEmbedder(model=tiny_model_dir, cache=False, **KW).fit(np.zeros((1, 10)))
    with pytest.raises(AudioError, match=r"item 1 .*contains NaN"):
        emb.transform([np.zeros(100), np.array([0.0, np.nan])])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        emb.transform([str(tmp_path / "missing.wav")])
    with pytest.raises(AudioError, match=r"item 0 .*need their sample rate"):
        CLAPEmbedder(model=tiny_model_dir, progress=False).fit_transform([np.zeros(100), np.zeros(200)])
    with pytest.raises(ValueError, match="single str"):
        emb.transform("clip.wav")
    with pytest.raises(ValueError, match="The .modality. parameter of CLAPEmbedder must be a str among"):
        CLAPEmbedder(model=tiny_model_dir, modality="video").fit(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="DataFrame with 2 columns"):
        emb.transform(pd.DataFrame({"a": ["x.wav"], "b": ["y.wav"]}))


# -------------------------------------------------------------------- CLAPZeroShotClassifier
def test_zero_shot_matches_manual_prompt_ensembling(tiny_model_dir, tiny_model):
    templates = ["this is a sound of {}.", "a recording of {}"]
    clf = CLAPZeroShotClassifier(
        model=tiny_model_dir,
        labels=["dog_bark", "rain", "siren"],
        templates=templates,
        label_prompts={"dog_bark": "dog barking"},
        **KW,
    ).fit()
    assert clf.prompts_[0] == ["this is a sound of dog barking.", "a recording of dog barking"]
    assert clf.prompts_[1] == ["this is a sound of rain.", "a recording of rain"]
    X = np.stack([sine(f, 1.0, 16000) for f in (200, 1000, 4000)])
    with torch.inference_mode():
        audio = tiny_model.encode_audio(torch.from_numpy(X), normalize=True).numpy()
        classes = []
        for prompts in clf.prompts_:
            t = tiny_model.encode_text(prompts, normalize=True).numpy().mean(0)
            classes.append(t / np.linalg.norm(t))
        scale = float(tiny_model.logit_scale.exp())
    cos = audio @ np.stack(classes).T
    np.testing.assert_allclose(clf.decision_function(X), cos, atol=1e-5)
    logits = scale * cos
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-4)
    np.testing.assert_array_equal(clf.predict(X), np.array(["dog_bark", "rain", "siren"])[cos.argmax(1)])


def test_compositional_classifier_multiplies_the_parts_probabilities(tiny_model_dir, tiny_model):
    """A class made of parts scores the product of one zero-shot classifier per position (pitch,
    instrument), each over its own parts; a missing part is uniform. Checked against a direct
    computation from the model's embeddings."""
    templates = ["this is a sound of {}.", "a {} sound"]
    prompts = {"high": ["high", "high pitched"], "snare drum": "snare"}
    clf = CLAPCompositionalClassifier(model=tiny_model_dir, label_parts=PARTS, templates=templates, label_prompts=prompts, **KW)
    clf.fit()
    assert list(clf.classes_) == sorted(PARTS)  # sorted, as scikit-learn's classifiers keep them
    assert [list(p) for p in clf.parts_] == [["high", "low"], ["cello", "flute", "snare drum"]]
    assert clf.part_index_.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [-1, 2]]
    assert clf.prompts_[4] == ["this is a sound of snare.", "a snare sound"]
    X = np.stack([sine(f, 1.0, 16000) for f in (200, 1000, 4000, 300, 2500)])

    def part_vectors(words):
        out = []
        for w in words:
            texts = prompts.get(w, w)
            texts = [texts] if isinstance(texts, str) else texts
            t = tiny_model.encode_text([tpl.format(x) for x in texts for tpl in templates], normalize=True).numpy().mean(0)
            out.append(t / np.linalg.norm(t))
        return np.stack(out)

    with torch.inference_mode():
        audio = tiny_model.encode_audio(torch.from_numpy(X), normalize=True).numpy().astype(np.float64)
        pitch, instrument = part_vectors(["high", "low"]), part_vectors(["cello", "flute", "snare drum"])
        scale = float(tiny_model.logit_scale.exp())

    def probs(vectors):
        z = scale * audio @ vectors.T
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p_pitch, p_inst = probs(pitch), probs(instrument)
    product = np.stack(
        [
            p_pitch[:, 0] * p_inst[:, 0],  # high cello
            p_pitch[:, 0] * p_inst[:, 1],  # high flute
            p_pitch[:, 1] * p_inst[:, 0],  # low cello
            p_pitch[:, 1] * p_inst[:, 1],  # low flute
            0.5 * p_inst[:, 2],
        ],
        axis=1,
    )
    np.testing.assert_allclose(clf.predict_proba(X), product / product.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(clf.decision_function(X), np.log(product) / scale, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), np.array(sorted(PARTS))[product.argmax(1)])
    # classes from y: the sorted labels, each looked up in label_parts
    fitted = clone(clf).fit(X, ["low cello", "high flute", "snare drum", "low cello", "high flute"])
    assert list(fitted.classes_) == ["high flute", "low cello", "snare drum"] and fitted.part_index_.tolist() == [[0, 0], [1, 1], [-1, 2]]


def test_compositional_classifier_errors_name_the_label(tiny_model_dir):
    labels = list(PARTS)

    def fit(parts, **kw):
        return CLAPCompositionalClassifier(model=tiny_model_dir, labels=labels, label_parts=parts, **{**KW, **kw}).fit()

    with pytest.raises(ValueError, match="no entry for the label 'snare drum'"):
        fit({k: v for k, v in PARTS.items() if k != "snare drum"})
    with pytest.raises(ValueError, match=r"label_parts\['snare drum'\] has 1 parts but .* has 2; write None"):
        fit({**PARTS, "snare drum": ("snare drum",)})
    with pytest.raises(ValueError, match="names no part"):
        fit({**PARTS, "snare drum": (None, None)})
    with pytest.raises(ValueError, match="'high flute' and 'low flute' have the same parts"):
        fit({**PARTS, "low flute": ("high", "flute")})
    with pytest.raises(ValueError, match="templates='auto' chooses templates for whole labels"):
        fit(PARTS, templates="auto")


def test_zero_shot_classes_from_y_and_errors(tiny_model_dir):
    X = np.zeros((4, 100))
    clf = CLAPZeroShotClassifier(model=tiny_model_dir, **KW).fit(X, ["rain", "dog", "rain", "cat"])
    assert list(clf.classes_) == ["cat", "dog", "rain"]
    with pytest.raises(ValueError, match=r"labels that are not in labels: \['bird'\]"):
        CLAPZeroShotClassifier(model=tiny_model_dir, labels=["dog", "cat"], **KW).fit(X, ["dog", "cat", "bird", "dog"])
    with pytest.raises(ValueError, match="labels is empty"):
        CLAPZeroShotClassifier(model=tiny_model_dir, labels=[], **KW).fit()
    with pytest.raises(ValueError, match="exactly one"):
        CLAPZeroShotClassifier(model=tiny_model_dir, labels=["a"], templates=["no slot"], **KW).fit()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CLAPZeroShotClassifier(model=tiny_model_dir, labels=["a"], **KW).predict(X)
    with pytest.raises(ValueError, match="X has 4 items but y has 2"):
        CLAPZeroShotClassifier(model=tiny_model_dir, **KW).fit(X, ["a", "b"])


def test_zero_shot_multilabel(tiny_model_dir):
    X = np.stack([sine(f, 1.0, 16000) for f in (200, 1000, 4000, 300)])
    lists = [["speech"], ["music", "speech"], ["water"], ["music"]]
    clf = CLAPZeroShotClassifier(model=tiny_model_dir, **KW).fit(X, lists)
    assert clf.multilabel_ and list(clf.classes_) == ["music", "speech", "water"]
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), (proba >= 1 / 3).astype(int))
    assert clf.predict(X).sum(axis=1).min() >= 1  # the best tag always passes 1/K
    Y = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    expected = average_precision_score(Y, clf.decision_function(X), average="macro")
    assert clf.score(X, lists) == pytest.approx(expected)
    assert clf.score(X, Y) == pytest.approx(expected)
    strict = clf.set_params(threshold=0.99).fit(X, Y)
    assert strict.predict(X).shape == (4, 3) and list(strict.classes_) == [0, 1, 2]


# --------------------------------------------------------------- pipelines on a folder of audio
def test_pipeline_cross_val_on_gtzan_layout_embeds_each_clip_once(tiny_model_dir, gtzan_dir):
    files, y = gtzan_files(gtzan_dir)
    pipe = Pipeline(
        [("emb", CLAPEmbedder(model=str(tiny_model_dir), progress=False, device="cpu")), ("clf", LogisticRegression(max_iter=2000))]
    )
    model = resolve_model(str(tiny_model_dir), "cpu")
    with EncoderCalls(model) as calls:
        scores = cross_val_score(pipe, files, y, cv=StratifiedKFold(10, shuffle=True, random_state=0))
    one_pass = sum(len(windows(prepare(f, 16000), 16000)) for f in files)
    assert one_pass == 2 * len(files)  # 1.5 s clips, 1 s windows
    assert calls.rows == one_pass  # 10 folds, yet every clip went through the encoder once
    assert scores.mean() >= 0.8  # chance is 1/3


@pytest.mark.multiprocess
def test_linear_probe_and_grid_search_in_worker_processes(tiny_model_dir, gtzan_dir):
    files, y = gtzan_files(gtzan_dir)
    probe = CLAPLinearProbe(model=str(tiny_model_dir), progress=False, device="cpu")
    assert cross_val_score(probe, files, y, cv=3).mean() >= 0.8
    search = GridSearchCV(
        Pipeline(
            [("emb", CLAPEmbedder(model=str(tiny_model_dir), progress=False, device="cpu")), ("clf", LogisticRegression(max_iter=2000))]
        ),
        {"clf__C": [0.1, 10.0]},
        cv=3,
        n_jobs=2,
    )
    search.fit(files, y)
    assert set(search.cv_results_["param_clf__C"]) == {0.1, 10.0}
    assert search.best_score_ >= 0.8


def test_joblib_round_trip_gives_identical_predictions(tiny_model_dir, gtzan_dir, tmp_path):
    files, y = gtzan_files(gtzan_dir)
    probe = CLAPLinearProbe(model=str(tiny_model_dir), estimator=KNeighborsClassifier(3), progress=False, device="cpu").fit(files, y)
    zs = CLAPZeroShotClassifier(model=str(tiny_model_dir), progress=False, device="cpu").fit(files, y)
    for est in (probe, zs):
        joblib.dump(est, tmp_path / "est.joblib")
        again = joblib.load(tmp_path / "est.joblib")
        np.testing.assert_array_equal(again.predict(files), est.predict(files))
        np.testing.assert_allclose(again.predict_proba(files), est.predict_proba(files), atol=1e-6)


def test_linear_probe_multilabel_head_is_wrapped(tiny_model_dir, gtzan_dir):
    files, y = gtzan_files(gtzan_dir)
    tags = [[g] + (["tonal"] if g != "metal" else []) for g in y]
    probe = CLAPLinearProbe(model=str(tiny_model_dir), progress=False, device="cpu").fit(files, tags)
    assert probe.multilabel_ and list(probe.classes_) == ["classical", "metal", "pop", "tonal"]
    pred = probe.predict(files)
    assert pred.shape == (30, 4)
    assert (pred[:, 3] == np.array([g != "metal" for g in y])).mean() >= 0.9
    with pytest.raises(ValueError, match="requires y to be passed"):
        CLAPLinearProbe(model=str(tiny_model_dir)).fit(files, None)


# ----------------------------------------------------------------------------------- caching
def test_disk_cache_is_reused_across_processes_and_repairs_corrupt_entries(tiny_model_dir, gtzan_dir, tmp_path):
    files, _ = gtzan_files(gtzan_dir)
    files = files[:4]
    store = tmp_path / "cache"
    emb = CLAPEmbedder(model=str(tiny_model_dir), cache=str(store), progress=False, device="cpu")
    model = resolve_model(str(tiny_model_dir), "cpu")
    with EncoderCalls(model) as calls:  # each clip is two windows
        first = emb.fit_transform(files)
        assert calls.rows == 8 and len(DiskCache(store)) == 4
        second = clone(emb).fit_transform(files)  # a new estimator, as another process would be
        assert calls.rows == 8
        np.testing.assert_array_equal(first, second)
        entry = sorted(store.glob("*/*.npy"))[0]
        entry.write_bytes(b"garbage")
        third = clone(emb).fit_transform(files)
        assert calls.rows == 10
        np.testing.assert_allclose(third, first, atol=1e-6)
    assert not list(store.glob("*/.tmp-*"))


def test_cache_key_follows_the_weights(tiny_model, gtzan_dir):
    import copy

    files, _ = gtzan_files(gtzan_dir)
    model = copy.deepcopy(tiny_model)
    emb = CLAPEmbedder(model=model, **KW)
    before = emb.fit_transform(files[:2])
    with torch.no_grad():
        model.audio_encoder.projection.linear1.weight.mul_(-1.0)
    after = emb.fit_transform(files[:2])
    assert not np.allclose(before, after, atol=1e-3)
    # A parameter replaced by a new tensor whose version counter happens to match the old one's.
    old = model.audio_encoder.projection.linear1.weight
    new = -old.detach().clone()
    while new._version < old._version:
        new.add_(0.0)
    model.audio_encoder.projection.linear1.weight = torch.nn.Parameter(new)
    assert model.audio_encoder.projection.linear1.weight._version == old._version
    np.testing.assert_allclose(emb.fit_transform(files[:2]), before, atol=1e-5)  # not the cached `after`


def test_linear_probe_finetune_trains_a_copy_of_the_audio_tower(tiny_model_dir, gtzan_dir):
    files, y = gtzan_files(gtzan_dir)
    shared = resolve_model(str(tiny_model_dir), "cpu")
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    probe = CLAPLinearProbe(
        model=str(tiny_model_dir),
        finetune=True,
        progress=False,
        device="cpu",
        finetune_params={"epochs": 6, "batch_size": 10, "lr": 1e-3, "warmup_steps": 2, "log_every": 1},
    ).fit(files, y)
    tuned = probe.finetuned_model_.state_dict()
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())  # untouched
    assert not torch.equal(tuned["audio_encoder.backbone.fc1.weight"], before["audio_encoder.backbone.fc1.weight"])
    assert torch.equal(tuned["text_encoder.projection.linear1.weight"], before["text_encoder.projection.linear1.weight"])
    losses = [r["loss"] for r in probe.finetune_history_]
    assert len(losses) == 18 and np.mean(losses[-3:]) < np.mean(losses[:3])  # cross-entropy goes down
    assert (probe.predict(files) == y).mean() >= 0.9
    again = pickle.loads(pickle.dumps(probe))
    np.testing.assert_allclose(again.predict_proba(files), probe.predict_proba(files), atol=1e-6)
    with pytest.raises(ValueError, match="single-label"):
        CLAPLinearProbe(model=str(tiny_model_dir), finetune=True, progress=False).fit(files, [[g] for g in y])
