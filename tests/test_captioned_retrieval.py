"""AudioCaps and Clotho read in their released layouts, and retrieval on them end to end (issue 46,
items 2 and 3): captions stay attached to their own clip, missing and unreadable clips are reported
with their captions, and ``skclap evaluate --task audiocaps|clotho DIR`` prints both directions with
the figures of :func:`skclap.metrics.retrieval_metrics` on the Encoder's embeddings.

The fixture sets follow the released layouts: Clotho's ``clotho_captions_evaluation.csv``
(``file_name, caption_1 … caption_5``) beside ``evaluation/`` (Zenodo record 3490684; read the same
way by xieh97/dcase2022-audio-retrieval ``scripts/__init__.py``), file names with spaces and commas
as Clotho's are; AudioCaps' ``test.csv`` (``audiocap_id, youtube_id, start_time, caption``,
cdjkim/audiocaps ``dataset/``) with clips named as aac-datasets, the AudioSet convention and
audiocaps-dl name them (:data:`skclap.datasets.AUDIOCAPS_NAMES`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from skclap import Encoder
from skclap.cli import main as cli
from skclap.datasets import CaptionedAudio, DatasetNotFoundError, load_audiocaps, load_clotho
from skclap.evaluation import PUBLISHED_RETRIEVAL, RETRIEVAL_TASKS, RetrievalResult, evaluate, evaluate_retrieval
from skclap.metrics import retrieval_metrics

from .conftest import TINY_DIR, sine

RATE = 16000
WORDS = ("violin", "piano", "flute", "trumpet", "guitar", "cello")


def captions_for(word: str) -> list[str]:
    return [f"a loud {word} note", f"a soft {word} note", f"a {word} playing", f"a long {word} note", f"a short {word} note"]


def write_tone(path: Path, freq: float, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(freq, 0.5, RATE), RATE, format=fmt)


def write_corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")


@pytest.fixture
def clotho_dir(tmp_path) -> Path:
    root = tmp_path / "Clotho"
    names = ["violin, close.wav", "piano room.wav", "flute.wav", "trumpet take 2.wav", "guitar.wav", "cello.wav"]
    for i, name in enumerate(names[:4]):
        write_tone(root / "evaluation" / name, 220.0 * (i + 1))
    write_corrupt(root / "evaluation" / names[5])  # names[4] is missing
    with open(root / "clotho_captions_evaluation.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file_name", *(f"caption_{k}" for k in range(1, 6))])
        for name, word in zip(names, WORDS):
            w.writerow([name, *captions_for(word)])
    return root


@pytest.fixture
def audiocaps_dir(tmp_path) -> Path:
    root = tmp_path / "AudioCaps"
    clips = [("-abc", 30), ("def", 0), ("ghi", 10), ("jkl", 20), ("mno", 40), ("pqr", 50)]
    write_tone(root / "test" / "-abc_30.wav", 220.0)  # aac-datasets
    write_tone(root / "test" / "Ydef.wav", 440.0)  # the AudioSet convention
    write_tone(root / "test" / "ghi_10000_20000.flac", 660.0, "FLAC")  # audiocaps-dl
    write_tone(root / "test" / "jkl_20.flac", 880.0, "FLAC")
    write_corrupt(root / "test" / "pqr_50.wav")  # mno is missing
    with open(root / "test.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        rows = [(yid, start, cap) for (yid, start), word in zip(clips, WORDS) for cap in captions_for(word)]
        # The released files do not group a clip's captions: interleave them.
        rows = rows[::2] + rows[1::2]
        for n, (yid, start, cap) in enumerate(rows):
            w.writerow([100 + n, yid, start, cap])
    return root


def test_clotho_reader_keeps_each_clips_five_captions_and_reports_what_it_left_out(clotho_dir):
    data = load_clotho(clotho_dir, "test")
    assert data.split == "evaluation" and data.ids == ["violin, close.wav", "piano room.wav", "flute.wav", "trumpet take 2.wav"]
    assert [c for c in data.captions] == [captions_for(w) for w in WORDS[:4]]
    assert all(Path(p).parent == clotho_dir / "evaluation" and Path(p).name == i for p, i in zip(data.paths, data.ids))
    left = {c.clip: c for c in data.left_out}
    assert set(left) == {"guitar.wav", "cello.wav"}
    assert left["guitar.wav"].reason == "missing" and left["guitar.wav"].path is None
    assert left["cello.wav"].reason.startswith("unreadable") and list(left["cello.wav"].captions) == captions_for("cello")
    assert RETRIEVAL_TASKS["clotho"].load(clotho_dir.parent).ids == data.ids  # a root holding Clotho/
    texts, owner = data.caption_pairs()
    assert len(texts) == 20 and all(WORDS[o] in t for t, o in zip(texts, owner))


def test_audiocaps_reader_finds_each_common_naming_and_groups_interleaved_rows(audiocaps_dir):
    data = load_audiocaps(audiocaps_dir)  # the test split
    assert data.ids == ["-abc_30", "def_0", "ghi_10", "jkl_20"]
    assert [Path(p).name for p in data.paths] == ["-abc_30.wav", "Ydef.wav", "ghi_10000_20000.flac", "jkl_20.flac"]
    assert [sorted(c) for c in data.captions] == [sorted(captions_for(w)) for w in WORDS[:4]]
    assert {c.clip: c.reason.split(":")[0] for c in data.left_out} == {"mno_40": "missing", "pqr_50": "unreadable"}
    assert sorted(next(c for c in data.left_out if c.clip == "mno_40").captions) == sorted(captions_for(WORDS[4]))


def test_audiocaps_train_has_one_caption_a_clip_and_a_missing_layout_says_where_it_looked(tmp_path):
    root = tmp_path / "ac"
    (root / "dataset").mkdir(parents=True)
    (root / "dataset" / "train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n1,aaa,0,a violin\n2,bbb,5,a flute\n")
    write_tone(root / "audio" / "train" / "aaa_0.wav", 300.0)
    write_tone(root / "audio" / "train" / "bbb_5.wav", 600.0)
    data = load_audiocaps(root, "train")
    assert data.captions == [["a violin"], ["a flute"]] and not data.left_out
    with pytest.raises(DatasetNotFoundError, match="val.csv"):
        load_audiocaps(root, "val")
    with pytest.raises(DatasetNotFoundError, match="clotho_captions_evaluation.csv"):
        load_clotho(root)
    with pytest.raises(ValueError, match="unknown split"):
        load_clotho(root, "dev")


def table_rows(text: str) -> dict[str, dict[str, float]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = {h: float(v) for h, v in zip(head, cells[1:]) if v != "–"}
    return out


@pytest.mark.parametrize("task,protocol", [("clotho", "standard"), ("audiocaps", "laion"), ("clotho", "dcase")])
def test_cli_prints_both_directions_as_retrieval_metrics_computes_them(task, protocol, clotho_dir, audiocaps_dir, tmp_path, capsys):
    root = clotho_dir if task == "clotho" else audiocaps_dir
    args = ["evaluate", "--task", task, str(root), "--model", str(TINY_DIR), "--protocol", protocol, "--device", "cpu"]
    assert cli([*args, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert set(rows) == {"text→audio", "audio→text"}
    data = (load_clotho if task == "clotho" else load_audiocaps)(root)
    enc = Encoder(str(TINY_DIR), device="cpu", cache=False)
    texts, owner = data.caption_pairs()
    want = retrieval_metrics(enc.audio(data.paths), enc.text(texts), owner, protocol=protocol)
    for label, key in (("text→audio", "t2a"), ("audio→text", "a2t")):
        for col in ("R@1", "R@5", "R@10", "mAP@10"):
            assert rows[label][col] == pytest.approx(want[f"{key}_{col}"], abs=5e-5)
        assert rows[label]["median rank"] == pytest.approx(want[f"{key}_median_rank"], abs=0.05)
        assert rows[label]["mean rank"] == pytest.approx(want[f"{key}_mean_rank"], abs=0.05)
    assert (
        "left out with their captions (missing or unreadable): 2 of 6 clips listed" in printed
        and (tmp_path / "out" / "retrieval.md").is_file()
    )


def test_a_clip_the_encoder_cannot_read_leaves_with_its_captions_and_the_cache_spares_a_second_run(clotho_dir, tmp_path):
    data = load_clotho(clotho_dir, check_audio=False)  # the corrupt clip gets as far as the encoder
    assert "cello.wav" in data.ids
    cache = tmp_path / "cache"
    first = evaluate_retrieval("clotho", model=str(TINY_DIR), data=data, cache=cache, device="cpu", progress=False)
    assert "cello.wav" not in first.data.ids and len(first.data) == 4
    gone = next(c for c in first.data.left_out if c.clip == "cello.wav")
    assert gone.reason.startswith("unreadable") and list(gone.captions) == captions_for("cello")
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    assert len(stamps) == 4
    second = evaluate_retrieval("clotho", model=str(TINY_DIR), data=data, cache=cache, device="cpu", progress=False)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == stamps
    assert second.metrics == first.metrics


def test_the_runner_takes_retrieval_tasks_and_the_published_figures_stand_beside(audiocaps_dir, tmp_path):
    table = evaluate("audiocaps", audiocaps_dir, model=str(TINY_DIR), out_dir=tmp_path, protocol="dcase", device="cpu", progress=False)
    assert list(table["direction"]) == ["text→audio", "audio→text"] and set(table["protocol"]) == {"dcase"}
    assert (table["clips"] == 4).all() and (table["left_out"] == 2).all()
    assert (table["R@1"] <= 1).all() and table.loc[1, "R@1"] <= 0.2  # DCASE: a2t R@1 is at most 1/5
    assert "| text→audio |" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="run apart"):
        evaluate(["audiocaps", "esc50"], audiocaps_dir, model=str(TINY_DIR))
    data = CaptionedAudio("AudioCaps", "test", tmp_path, ["a", "b"], ["a.wav", "b.wav"], [["x"], ["y"]])
    metrics = retrieval_metrics(np.eye(2), np.eye(2), [0, 1])
    published = PUBLISHED_RETRIEVAL[("msclap-2023", "audiocaps")]
    text = RetrievalResult("audiocaps", "AudioCaps", "msclap-2023", "standard", data, metrics, published).markdown()
    rows = table_rows(text)
    assert rows["audio→text"]["published R@1"] == 0.425 and rows["text→audio"]["published R@1"] == 0.356
    assert rows["audio→text"]["published mAP@10"] == 0.319 and rows["text→audio"]["published mAP@10"] == 0.51
    assert "arXiv 2309.05767" in text and re.search(r"2 clips, 2 captions", text)
