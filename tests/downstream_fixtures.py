"""Tiny copies of the downstream datasets in their real folder and metadata layouts.

Each writer puts a few short tones (a frequency per class, so a probe has something to learn) where
the official archive puts its audio, with the official metadata files and columns, and returns the
folder to give ``--data-dir``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(path: Path, k: int, rate: int = 16000, seconds: float = 0.4, fmt: str | None = None) -> None:
    """Class ``k`` sounds at ``220 * 1.5**k`` Hz (with a little noise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    x = 0.5 * np.sin(2 * np.pi * 220 * 1.5**k * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), rate, format=fmt)


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)


def esc50(root: Path) -> Path:
    d = root / "ESC-50-master"
    rows = []
    for fold in range(1, 6):
        for k, (target, cat) in enumerate(((0, "dog"), (1, "rooster"))):
            name = f"{fold}-{100 + k}-A-{target}.wav"
            tone(d / "audio" / name, k, rate=44100)
            rows.append([name, fold, target, cat, "True", 100 + k, "A"])
    _csv(d / "meta/esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return d


def urbansound8k(root: Path) -> Path:
    d = root / "UrbanSound8K"
    rows = []
    for fold in range(1, 11):
        for k, (cid, cls) in enumerate(((3, "dog_bark"), (8, "siren"))):
            name = f"{1000 + fold}-{cid}-0-{k}.wav"
            tone(d / "audio" / f"fold{fold}" / name, k, rate=22050)
            rows.append([name, 1000 + fold, 0.0, 0.4, 1, fold, cid, cls])
    _csv(d / "metadata/UrbanSound8K.csv", ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    return d


def gtzan_genres(root: Path) -> Path:
    d = root / "genres"
    for k, genre in enumerate(("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")):
        for n in range(10 if k < 2 else 1):  # two genres fill all folds, the others one track each
            tone(d / genre / f"{genre}.{n:05d}.au", k % 2, rate=22050, fmt="AU")
    return d


def gtzan_music_speech(root: Path) -> Path:
    d = root / "music_speech"
    for k, label in enumerate(("music", "speech")):
        for n in range(10):
            tone(d / f"{label}_wav" / f"{label}{n}.wav", k, rate=22050)
    return d


FSD_VOCAB = ["Bark", "Dog", "Siren", "Speech"]


def fsd50k(root: Path) -> Path:
    d = root / "FSD50K"
    gt = d / "FSD50K.ground_truth"
    _csv(gt / "vocabulary.csv", [], [[i, name, f"/m/{i:04d}"] for i, name in enumerate(FSD_VOCAB)])
    tags = [("Bark", "Dog"), ("Siren",), ("Speech",), ("Bark", "Dog"), ("Siren", "Speech"), ("Speech",)]
    dev = []
    for i, t in enumerate(tags):
        tone(d / "FSD50K.dev_audio" / f"{10 + i}.wav", FSD_VOCAB.index(t[0]), rate=44100)
        dev.append([10 + i, ",".join(t), ",".join("/m/x" for _ in t), "train" if i < 4 else "val"])
    _csv(gt / "dev.csv", ["fname", "labels", "mids", "split"], dev)
    ev = []
    for i, t in enumerate([("Bark", "Dog"), ("Siren",), ("Speech", "Siren")]):
        tone(d / "FSD50K.eval_audio" / f"{90 + i}.wav", FSD_VOCAB.index(t[0]), rate=44100)
        ev.append([90 + i, ",".join(t), ",".join("/m/x" for _ in t)])
    _csv(gt / "eval.csv", ["fname", "labels", "mids"], ev)
    return d


def dcase2017_task4(root: Path) -> Path:
    d = root / "DCASE2017_task4"
    labels = d / "metadata/labels"
    labels.mkdir(parents=True)
    plan = {
        "training": [("aaa", ["Car alarm"]), ("bbb", ["Train", "Train horn"]), ("ccc", ["Car alarm"]), ("ddd", ["Train"])],
        "testing": [("eee", ["Car alarm"]), ("fff", ["Train", "Train horn"])],
    }
    for split, clips in plan.items():
        lines = []
        for ytid, labs in clips:
            name = f"Y{ytid}_30.000_40.000.wav"
            tone(d / "audio" / split / name, 0 if labs[0] == "Car alarm" else 1, rate=44100)
            lines += [f"{ytid}_30.000_40.000.wav\t30.000\t40.000\t{lab}" for lab in labs]
        (labels / f"groundtruth_weak_label_{split}_set.csv").write_text("\n".join(lines) + "\n")
    return d


def tut2017(root: Path) -> Path:
    d = root / "TUT-acoustic-scenes-2017-development"
    meta, folds = [], {k: [] for k in range(1, 5)}
    for k, scene in enumerate(("beach", "cafe/restaurant")):
        for n in range(4):
            rel = f"audio/{'bc'[k]}{n:03d}_0_10.wav"
            tone(d / rel, k, rate=44100)
            meta.append(f"{rel}\t{scene}\t{'bc'[k]}{n:03d}")
            folds[n + 1].append(f"{rel}\t{scene}")
    (d / "meta.txt").write_text("\n".join(meta) + "\n")
    setup = d / "evaluation_setup"
    setup.mkdir()
    for k in range(1, 5):
        (setup / f"fold{k}_evaluate.txt").write_text("\n".join(folds[k]) + "\n")
        (setup / f"fold{k}_train.txt").write_text("\n".join(x for j in range(1, 5) if j != k for x in folds[j]) + "\n")
    return d


def vocalsound(root: Path) -> Path:
    d = root / "vocalsound"
    splits = {"tr": ["f0003", "m0004"], "val": ["f0005"], "te": ["m0006", "f0007"]}
    for split, speakers in splits.items():
        data = []
        for spk in speakers:
            for k, label in enumerate(("cough", "throatclearing")):
                name = f"{spk}_0_{label}.wav"
                tone(d / "audio_16k" / name, k)
                data.append({"wav": f"/data/vocalsound/audio_16k/{name}", "labels": f"/m/{k}"})
        (d / "datafiles").mkdir(parents=True, exist_ok=True)
        (d / "datafiles" / f"{split}.json").write_text(json.dumps({"data": data}))
    return d


def sesa(root: Path) -> Path:
    d = root / "SESA"
    for split, n in (("train", 3), ("test", 2)):
        for k, label in enumerate(("casual", "gunshot")):
            for i in range(n):
                tone(d / split / f"{label}_{i:03d}.wav", k)
    return d


def crema_d(root: Path) -> Path:
    d = root / "CREMA-D"
    for actor in range(1001, 1006):
        for k, emo in enumerate(("ANG", "SAD")):
            tone(d / "AudioWAV" / f"{actor}_DFA_{emo}_XX.wav", k)
    return d


def ravdess(root: Path) -> Path:
    d = root / "RAVDESS"
    for actor in range(1, 6):
        for k, emo in enumerate((5, 4)):  # angry, sad
            tone(d / f"Actor_{actor:02d}" / f"03-01-{emo:02d}-01-01-01-{actor:02d}.wav", k, rate=48000)
    return d


def mridangam(root: Path) -> Path:
    d = root / "mridangam_stroke_1.5"
    n = 0
    for t, tonic in enumerate(("C#", "D")):
        for k, stroke in enumerate(("bheem", "thi")):
            for i in range(5):
                n += 1
                tone(d / tonic / f"{224000 + n}__akshaylaya__{stroke}-{tonic.lower()}-{i:03d}.wav", k + 2 * t, rate=44100)
    return d


def beijing_opera(root: Path) -> Path:
    d = root / "BeijingOpera"
    for k, inst in enumerate(("Bangu", "Naobo", "Daluo", "Xiaoluo")):
        for i in range(5 if k < 2 else 1):
            tone(d / inst / f"{inst.lower()}-{i}.wav", k % 2, rate=44100)
    return d


def nsynth_instrument(root: Path) -> Path:
    d = root / "nsynth"
    for split, n in (("train", 3), ("test", 2)):
        examples = {}
        for k, fam in enumerate(("guitar", "synth_lead")):
            for i in range(n):
                note = f"{fam}_acoustic_{i:03d}-060-100"
                tone(d / f"nsynth-{split}" / "audio" / f"{note}.wav", k)
                examples[note] = {"note_str": note, "instrument_family_str": fam, "instrument_family": k, "pitch": 60}
        (d / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples))
    return d


def speech_commands(root: Path) -> Path:
    d = root / "speech_commands_v0.02"
    test, val = [], []
    for k, word in enumerate(("yes", "no")):
        for i in range(5):
            name = f"{word}/{i:08x}_nohash_0.wav"
            tone(d / name, k)
            (test if i == 0 else val if i == 1 else []).append(name)
    tone(d / "_background_noise_" / "white_noise.wav", 3)
    (d / "testing_list.txt").write_text("\n".join(test) + "\n")
    (d / "validation_list.txt").write_text("\n".join(val) + "\n")
    return d


WRITERS = {
    "esc50": esc50,
    "urbansound8k": urbansound8k,
    "gtzan_genres": gtzan_genres,
    "gtzan_music_speech": gtzan_music_speech,
    "fsd50k": fsd50k,
    "dcase2017_task4": dcase2017_task4,
    "tut2017": tut2017,
    "vocalsound": vocalsound,
    "sesa": sesa,
    "crema_d": crema_d,
    "ravdess": ravdess,
    "mridangam_stroke": mridangam,
    "mridangam_tonic": mridangam,
    "beijing_opera": beijing_opera,
    "nsynth_instrument": nsynth_instrument,
    "speech_commands": speech_commands,
}


def write_all(root: Path) -> Path:
    """Every dataset under one root, each in its standard folder name."""
    done = set()
    for writer in WRITERS.values():
        if writer not in done:
            writer(root)
            done.add(writer)
    return root
