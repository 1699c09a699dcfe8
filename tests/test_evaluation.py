"""Downstream evaluation: loaders on each dataset's real layout, fold protocol, metrics, runner, table, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skclap import CLAPEmbedder
from skclap.cache import get_cache
from skclap.checkpoints import resolve_model
from skclap.cli import main as cli
from skclap.datasets.downstream import LOADERS, load_downstream
from skclap.evaluation import (
    TASKS,
    evaluate,
    evaluate_task,
    get_task,
    mean_average_precision,
    results_markdown,
)
from skclap.exceptions import DatasetNotFoundError

from . import downstream_fixtures as fx
from .helpers import EncoderCalls


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return fx.write_all(tmp_path_factory.mktemp("downstream"))


@pytest.fixture(autouse=True)
def fresh_memory_cache():
    get_cache(True).clear()
    yield
    get_cache(True).clear()


def test_registry_covers_the_papers_sixteen_tasks_in_eight_domains():
    assert len(TASKS) == 16 and set(TASKS) == set(LOADERS)
    assert len({t.domain for t in TASKS.values()}) == 8
    assert {t.metric for t in TASKS.values()} == {"accuracy", "mAP"}
    assert TASKS["fsd50k"].metric == "mAP" and TASKS["esc50"].metric == "accuracy"
    assert (TASKS["esc50"].paper_zero_shot, TASKS["urbansound8k"].paper_zero_shot, TASKS["fsd50k"].paper_zero_shot) == (
        0.826,
        0.7324,
        0.3024,
    )
    assert get_task("ESC50") is TASKS["esc50"] and get_task("crema-d") is TASKS["crema_d"]
    with pytest.raises(ValueError, match="unknown task 'esc51'"):
        get_task("esc51")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_loads_from_its_layout_with_a_sound_fold_protocol(data_root, name):
    data = TASKS[name].load(data_root)
    assert len(data) >= 6 and len(data.folds()) == data.n_folds
    tested = np.concatenate([test for _, test in data.folds()])
    assert sorted(tested) == sorted(np.flatnonzero(data.test_fold >= 0))  # each test clip tested exactly once
    for train, test in data.folds():
        assert not set(train) & set(test)  # no test clip in its own training fold
        assert set(train) | set(test) == set(range(len(data)))
    labels = [lab for item in data.labels for lab in (item if data.multilabel else (item,))]
    assert set(labels) <= set(data.classes)
    assert all(str(p).startswith(str(data_root)) for p in data.paths)


def test_loaders_read_the_official_metadata(data_root):
    esc = TASKS["esc50"].load(data_root)
    assert len(esc.classes) == 50 and esc.n_folds == 5
    assert {(p.rsplit("/", 1)[1][0], f) for p, f in zip(esc.paths, esc.test_fold)} == {(str(k + 1), k) for k in range(5)}
    us = TASKS["urbansound8k"].load(data_root)
    assert us.n_folds == 10 and all(f"/fold{f + 1}/" in p for p, f in zip(us.paths, us.test_fold))
    tut = TASKS["tut2017"].load(data_root)  # folds from evaluation_setup/fold{k}_evaluate.txt
    assert [int(p.rsplit("/", 1)[1][1:4]) for p in np.array(tut.paths)[tut.test_fold == 2]] == [2, 2]
    fsd = TASKS["fsd50k"].load(data_root)
    assert fsd.multilabel and fsd.classes == fx.FSD_VOCAB and ("Bark", "Dog") in fsd.labels
    assert (fsd.test_fold == 0).sum() == 3 and (fsd.test_fold == -1).sum() == 6  # dev trains, eval tests
    dcase = TASKS["dcase2017_task4"].load(data_root)
    assert dcase.multilabel and len(dcase.classes) == 17 and ("Train", "Train horn") in dcase.labels
    sc = TASKS["speech_commands"].load(data_root)  # validation list left out, background noise ignored
    assert len(sc) == 8 and (sc.test_fold == 0).sum() == 2 and not any("_background_noise_" in p for p in sc.paths)
    vs = TASKS["vocalsound"].load(data_root)
    assert set(vs.labels) == {"cough", "throatclearing"} and (vs.test_fold == 0).sum() == 4
    gtzan = TASKS["gtzan_genres"].load(data_root)  # .au files, fold = track number mod 10
    assert all(p.endswith(".au") for p in gtzan.paths) and len(gtzan.classes) == 10
    assert all(int(p[-6:-3]) % 10 == f for p, f in zip(gtzan.paths, gtzan.test_fold))
    tonic = TASKS["mridangam_tonic"].load(data_root)
    stroke = TASKS["mridangam_stroke"].load(data_root)
    assert set(tonic.labels) == {"C#", "D"} and set(stroke.labels) == {"bheem", "thi"} and tonic.paths == stroke.paths


@pytest.mark.parametrize("name", ["crema_d", "ravdess"])
def test_emotion_folds_are_actor_disjoint(data_root, name):
    data = TASKS[name].load(data_root)

    def actor(p):
        stem = p.rsplit("/", 1)[1]
        return stem.split("_")[0] if name == "crema_d" else stem.split("-")[6]

    for train, test in data.folds():
        assert not {actor(data.paths[i]) for i in train} & {actor(data.paths[i]) for i in test}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_dataset_says_where_the_files_are_expected(tmp_path, name):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)) as err:
        load_downstream(name, tmp_path)
    assert "nothing is downloaded" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_downstream(name, tmp_path / "nowhere")


def test_bad_metadata_names_the_row(tmp_path):
    root = fx.esc50(tmp_path)
    meta = root / "meta/esc50.csv"
    rows = [line.split(",") for line in meta.read_text().splitlines()]

    def write(rows):
        meta.write_text("\n".join(",".join(r) for r in rows) + "\n")

    rows[3][3] = "unicorn"
    write(rows)
    with pytest.raises(ValueError, match="unknown label 'unicorn'"):
        load_downstream("esc50", root)
    rows[3][3] = "dog"
    rows[4][0] = "9-999-A-0.wav"
    write(rows)
    with pytest.raises(ValueError, match=r"row 5 names 9-999-A-0.wav, which is missing"):
        load_downstream("esc50", root)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_downstream("esc500", root)


def test_mean_average_precision_matches_a_per_class_reference():
    rng = np.random.default_rng(0)
    Y = (rng.random((30, 5)) < 0.3).astype(int)
    Y[:, 4] = 0  # a class without positives is left out, not counted as 0
    S = rng.random((30, 5))

    def ap(y, s):  # precision at each positive, averaged
        order = np.argsort(-s)
        hits = y[order]
        return np.mean([hits[: k + 1].mean() for k in np.flatnonzero(hits)])

    expected = np.mean([ap(Y[:, c], S[:, c]) for c in range(4)])
    assert mean_average_precision(Y, S) == pytest.approx(expected, abs=1e-12)
    assert mean_average_precision(Y, S) == pytest.approx(average_precision_score(Y[:, :4], S[:, :4]))
    with pytest.raises(ValueError, match="positive"):
        mean_average_precision(np.zeros((3, 2)), S[:3, :2])


def test_zero_shot_and_probe_match_an_independent_computation(data_root, tiny_model_dir):
    task, data = TASKS["esc50"], TASKS["esc50"].load(data_root)
    rows = evaluate_task(task, data_root, model=tiny_model_dir, progress=False, device="cpu")
    zs, probe = rows
    model = resolve_model(tiny_model_dir, "cpu")
    audio = CLAPEmbedder(model=model, progress=False, device="cpu", cache=False).fit_transform(data.paths)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    with torch.inference_mode():
        text = model.encode_text([f"this is a sound of {c.replace('_', ' ')}." for c in data.classes], normalize=True).numpy()
    pred = np.array(data.classes)[(audio @ text.T).argmax(1)]
    labels = np.array(data.labels)
    per_fold = [np.mean(pred[test] == labels[test]) for _, test in data.folds()]
    assert zs["mode"] == "zeroshot" and zs["mean"] == pytest.approx(np.mean(per_fold)) and zs["std"] == pytest.approx(np.std(per_fold))
    assert zs["fold_scores"] == pytest.approx(per_fold, abs=1e-6) and zs["paper"] == 0.826
    head = [
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(audio[train], labels[train]).score(audio[test], labels[test])
        for train, test in data.folds()
    ]
    assert probe["mode"] == "probe" and probe["fold_scores"] == pytest.approx(head, abs=1e-6) and probe["paper"] is None


def test_multilabel_task_scores_mean_average_precision(data_root, tiny_model_dir):
    data = TASKS["fsd50k"].load(data_root)
    zs, probe = evaluate_task("fsd50k", data_root, model=tiny_model_dir, progress=False, device="cpu")
    model = resolve_model(tiny_model_dir, "cpu")
    test = np.flatnonzero(data.test_fold == 0)
    audio = CLAPEmbedder(model=model, progress=False, device="cpu", cache=False).fit_transform([data.paths[i] for i in test])
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    with torch.inference_mode():
        text = model.encode_text([f"this is a sound of {c.lower()}." for c in data.classes], normalize=True).numpy()
    Y = np.array([[c in data.labels[i] for c in data.classes] for i in test], dtype=int)
    assert zs["mean"] == pytest.approx(mean_average_precision(Y, audio @ text.T), abs=1e-6)
    assert 0 < probe["mean"] <= 1 and probe["folds"] == 1


def test_zero_shot_and_probe_share_embeddings(data_root, tiny_model_dir):
    model = resolve_model(tiny_model_dir, "cpu")
    data = TASKS["urbansound8k"].load(data_root)
    with EncoderCalls(model) as calls:
        evaluate_task("urbansound8k", data_root, model=model, progress=False, device="cpu")
    assert calls.rows == len(data)  # 0.4 s clips: one window each, through the encoder once for 10 folds x 2 modes


def test_all_tasks_end_to_end_and_the_table(data_root, tiny_model_dir, tmp_path):
    table = evaluate("all", data_root, model=tiny_model_dir, out_dir=tmp_path, progress=False, device="cpu")
    assert len(table) == 32 and set(table["mode"]) == {"zeroshot", "probe"}
    assert table["mean"].between(0, 1).all() and (table["std"] >= 0).all()
    folds = table.drop_duplicates("task").set_index("task")["folds"]
    assert folds["esc50"] == 5 and folds["urbansound8k"] == 10 and folds["tut2017"] == 4 and folds["fsd50k"] == 1
    saved = pd.read_csv(tmp_path / "results.csv")
    assert list(saved["task"]) == list(table["task"]) and np.allclose(saved["mean"], table["mean"])
    md = (tmp_path / "results.md").read_text()
    header, _, domain, metric, zs_row, probe_row, paper_row = md.splitlines()[:7]
    assert header.count("|") == 18 and header.startswith("| | ESC-50 | FSD50K | US8K")
    assert domain.startswith("| domain | Sound events") and "| mAP |" in metric
    assert zs_row.startswith(f"| {tiny_model_dir} zero-shot | ") and probe_row.startswith(f"| {tiny_model_dir} linear probe | ")
    esc = table[(table["task"] == "esc50") & (table["mode"] == "probe")].iloc[0]
    assert probe_row.split(" | ")[1] == f"{esc['mean']:.4f} ± {esc['std']:.4f}"
    assert paper_row.split(" | ")[1:4] == ["0.8260", "0.3024", "0.7324"] and paper_row.count("–") == 13


def test_results_markdown_marks_missing_cells():
    table = pd.DataFrame(
        [
            {
                "task": "esc50",
                "title": "ESC-50",
                "domain": "Sound events",
                "metric": "accuracy",
                "mode": "zeroshot",
                "mean": 0.5,
                "std": 0.1,
                "folds": 5,
            }
        ]
    )
    md = results_markdown(table, "m")
    assert "| m zero-shot | 0.5000 ± 0.1000 |" in md and "linear probe" not in md
    with pytest.raises(ValueError, match="no results"):
        results_markdown(table.iloc[:0])


def test_cli_evaluate_writes_the_table(data_root, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code = cli(
        [
            "evaluate",
            "--task",
            "sesa",
            "--task",
            "vocalsound",
            "--data-dir",
            str(data_root),
            "--model",
            str(tiny_model_dir),
            "--mode",
            "zeroshot",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    saved = pd.read_csv(out / "results.csv")
    assert list(saved["task"]) == ["sesa", "vocalsound"] and set(saved["mode"]) == {"zeroshot"}
    assert "| | VocalSound | SESA |" in capsys.readouterr().out
    assert any((tmp_path / "cache").rglob("*.npy")) or any((tmp_path / "cache").iterdir())
    # a dataset that is not there is one line and a non-zero exit, what to place where in it
    assert cli(["evaluate", "--task", "esc50", "--data-dir", str(tmp_path), "--model", str(tiny_model_dir), "--no-progress"]) == 1
    assert "nothing is downloaded" in capsys.readouterr().err
    with pytest.raises(DatasetNotFoundError, match="nothing is downloaded"):  # the traceback with --debug
        cli(["--debug", "evaluate", "--task", "esc50", "--data-dir", str(tmp_path), "--model", str(tiny_model_dir), "--no-progress"])
