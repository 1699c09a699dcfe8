"""Loaders for downstream audio-classification datasets in their authors' standard local layouts.

Nothing is downloaded. Each loader reads the folder a user unpacked from the dataset's official
archive and returns a :class:`LabelledAudio`: audio paths, labels (a string, or a tuple of strings for
multi-label sets), the class list, and the evaluation protocol as a test-fold index per clip
(``-1``: only ever used for training), ready for scikit-learn's ``PredefinedSplit``.

A dataset that is not where it is expected raises :class:`DatasetNotFoundError` saying which files
were looked for; a metadata row naming a missing file or an unknown label raises ``ValueError``
naming the row.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import DatasetNotFoundError

__all__ = ["LOADERS", "LabelledAudio", "load_downstream"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".au")


@dataclass
class LabelledAudio:
    """Audio files with labels and a fold protocol."""

    name: str
    root: Path
    paths: list[str]
    labels: list  # str per clip, or tuple[str, ...] per clip for multi-label sets
    classes: list[str]
    test_fold: Any  # int per clip (an array after construction): the fold it is tested in; -1: training only
    multilabel: bool = False

    def __post_init__(self) -> None:
        self.test_fold = np.asarray(self.test_fold, dtype=int)
        if not (len(self.paths) == len(self.labels) == len(self.test_fold)):
            raise ValueError(f"{self.name}: paths, labels and folds differ in length")
        if not self.paths:
            raise ValueError(f"{self.name}: no audio files found under {self.root}")
        known = set(self.classes)
        for path, label in zip(self.paths, self.labels):
            for lab in label if self.multilabel else (label,):
                if lab not in known:
                    raise ValueError(f"{self.name}: {path}: unknown label {lab!r}; expected one of {sorted(known)[:20]}")
        if not (self.test_fold >= 0).any():
            raise ValueError(f"{self.name}: no clip is in a test fold")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n_folds(self) -> int:
        return int(self.test_fold.max()) + 1

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train, test)`` index arrays, one pair per fold (``PredefinedSplit`` semantics)."""
        from sklearn.model_selection import PredefinedSplit

        return list(PredefinedSplit(self.test_fold).split())

    def subset(self, indices: Sequence[int]) -> LabelledAudio:
        idx = np.asarray(indices, dtype=int)
        return LabelledAudio(
            self.name,
            self.root,
            [self.paths[i] for i in idx],
            [self.labels[i] for i in idx],
            self.classes,
            self.test_fold[idx],
            self.multilabel,
        )


# ------------------------------------------------------------------------------------ helpers
def _need(root: Path, dataset: str, source: str, *relative: str) -> None:
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        wanted = ", ".join(str(root / r) for r in missing)
        raise DatasetNotFoundError(
            f"{dataset} not found: expected {wanted}. Point --data-dir at the folder unpacked from "
            f"the official archive ({source}); nothing is downloaded."
        )


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _existing(dataset: str, meta: Path, row: int, path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{dataset}: {meta} row {row} names {path.name}, which is missing ({path})")
    return str(path)


def _read_csv(path: Path, columns: Iterable[str]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in columns if rows and c not in rows[0]] or ([] if rows else ["(no rows)"])
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return rows


def _stratified_folds(labels: Sequence, order: Sequence[str], k: int) -> np.ndarray:
    """Deterministic folds for sets without official ones: within each class, clips in name order
    are dealt round-robin into ``k`` folds."""
    fold = np.zeros(len(labels), dtype=int)
    by_class: dict = defaultdict(list)
    for i, lab in enumerate(labels):
        by_class[lab].append(i)
    for members in by_class.values():
        for rank, i in enumerate(sorted(members, key=lambda j: order[j])):
            fold[i] = rank % k
    return fold


def _from_class_folders(key: str, name: str, root: Path, classes: Sequence[str], folds: int, source: str) -> LabelledAudio:
    """One sub-folder per class (matched case-insensitively), audio files inside."""
    dirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    absent = [c for c in classes if c.lower() not in dirs]
    if absent:
        raise DatasetNotFoundError(
            f"{name} not found: expected one folder per class under {root} ({', '.join(classes)}); "
            f"missing {absent} ({source}); nothing is downloaded."
        )
    paths, labels = [], []
    for c in classes:
        for p in _audio_files(dirs[c.lower()]):
            paths.append(str(p))
            labels.append(c)
    return LabelledAudio(key, root, paths, labels, list(classes), _stratified_folds(labels, paths, folds))


# ----------------------------------------------------------------------------------- datasets
ESC50_CLASSES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing", "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane", "fireworks", "hand_saw",
)  # fmt: skip


def load_esc50(root: Path) -> LabelledAudio:
    """ESC-50 (``ESC-50-master/``): ``meta/esc50.csv`` + ``audio/*.wav``, 5 official folds."""
    _need(root, "ESC-50", "github.com/karolpiczak/ESC-50", "meta/esc50.csv", "audio")
    meta = root / "meta/esc50.csv"
    rows = _read_csv(meta, ("filename", "fold", "category"))
    paths = [_existing("ESC-50", meta, i + 2, root / "audio" / r["filename"]) for i, r in enumerate(rows)]
    return LabelledAudio("esc50", root, paths, [r["category"] for r in rows], list(ESC50_CLASSES), [int(r["fold"]) - 1 for r in rows])


US8K_CLASSES = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)


def load_urbansound8k(root: Path) -> LabelledAudio:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold{1..10}/``, 10 official folds."""
    _need(root, "UrbanSound8K", "urbansounddataset.weebly.com", "metadata/UrbanSound8K.csv", "audio")
    meta = root / "metadata/UrbanSound8K.csv"
    rows = _read_csv(meta, ("slice_file_name", "fold", "class"))
    paths = [_existing("UrbanSound8K", meta, i + 2, root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]) for i, r in enumerate(rows)]
    return LabelledAudio("urbansound8k", root, paths, [r["class"] for r in rows], list(US8K_CLASSES), [int(r["fold"]) - 1 for r in rows])


GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def load_gtzan_genres(root: Path) -> LabelledAudio:
    """GTZAN genres: ``genres/<genre>/<genre>.000NN.au`` (or ``genres_original/`` with wav files,
    or the genre folders directly); 10 folds by track number (``NN mod 10``)."""
    base = next((root / d for d in ("genres", "genres_original", "Data/genres_original") if (root / d).is_dir()), root)
    data = _from_class_folders("gtzan_genres", "GTZAN genres", base, GTZAN_GENRES, 10, "marsyas.info GTZAN genre collection")
    numbers = [re.findall(r"(\d+)", Path(p).stem) for p in data.paths]
    data.test_fold = np.array([int(n[-1]) % 10 if n else f for n, f in zip(numbers, data.test_fold)])
    return data


def load_gtzan_music_speech(root: Path) -> LabelledAudio:
    """GTZAN music/speech (``music_speech/``): ``music_wav/`` and ``speech_wav/``, 10 folds."""
    _need(root, "GTZAN music/speech", "marsyas.info music_speech collection", "music_wav", "speech_wav")
    paths, labels = [], []
    for label in ("music", "speech"):
        for p in _audio_files(root / f"{label}_wav"):
            paths.append(str(p))
            labels.append(label)
    return LabelledAudio("gtzan_music_speech", root, paths, labels, ["music", "speech"], _stratified_folds(labels, paths, 10))


def load_fsd50k(root: Path) -> LabelledAudio:
    """FSD50K: ``FSD50K.ground_truth/{vocabulary,dev,eval}.csv`` + ``FSD50K.{dev,eval}_audio/``;
    multi-label (200 classes), trained on dev (train + val), tested on eval."""
    gt = "FSD50K.ground_truth"
    _need(
        root,
        "FSD50K",
        "zenodo.org/record/4060432",
        f"{gt}/vocabulary.csv",
        f"{gt}/dev.csv",
        f"{gt}/eval.csv",
        "FSD50K.dev_audio",
        "FSD50K.eval_audio",
    )
    with open(root / gt / "vocabulary.csv", newline="", encoding="utf-8") as f:
        classes = [row[1] for row in csv.reader(f) if len(row) >= 2]
    paths, labels, folds = [], [], []
    for split, fold in (("dev", -1), ("eval", 0)):
        meta = root / gt / f"{split}.csv"
        for i, r in enumerate(_read_csv(meta, ("fname", "labels"))):
            paths.append(_existing("FSD50K", meta, i + 2, root / f"FSD50K.{split}_audio" / f"{r['fname']}.wav"))
            labels.append(tuple(r["labels"].split(",")))
            folds.append(fold)
    return LabelledAudio("fsd50k", root, paths, labels, classes, folds, multilabel=True)


DCASE17_CLASSES = (
    "Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Ambulance (siren)", "Police car (siren)",
    "Fire engine, fire truck (siren)", "Civil defense siren", "Screaming",
    "Bicycle", "Skateboard", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train",
)  # fmt: skip


def load_dcase2017_task4(root: Path) -> LabelledAudio:
    """DCASE 2017 task 4 (weakly labelled sounds for smart cars, 17 classes, multi-label):
    ``groundtruth_weak_label_{training,testing}_set.csv`` (tab-separated: file, onset, offset,
    label; found anywhere under the root, e.g. ``metadata/labels/``) and the wav files under the
    root (any sub-folder). Trained on the training set, tested on the testing set."""
    sets = {}
    for split in ("training", "testing"):
        found = sorted(root.rglob(f"groundtruth_weak_label_{split}_set.csv")) if root.is_dir() else []
        if not found:
            _need(
                root,
                "DCASE 2017 task 4",
                "dcase.community/challenge2017/task-large-scale-sound-event-detection",
                f"metadata/labels/groundtruth_weak_label_{split}_set.csv",
            )
        sets[split] = found[0]
    audio = {p.name: p for p in _audio_files(root)}
    paths, labels, folds = [], [], []
    for split, fold in (("training", -1), ("testing", 0)):
        clips: dict[str, list[str]] = {}
        with open(sets[split], newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.reader(f, delimiter="\t")):
                if len(row) < 4:
                    raise ValueError(f"{sets[split]} row {i + 1}: expected file, onset, offset, label (tab-separated); got {row}")
                name = row[0] if row[0].endswith(".wav") else f"{row[0]}.wav"
                clips.setdefault(name, []).append(row[3])
        for name, labs in clips.items():
            path = audio.get(name) or audio.get(f"Y{name}")
            if path is None:
                raise ValueError(f"DCASE 2017 task 4: {sets[split]} names {name}, which is not under {root}")
            paths.append(str(path))
            labels.append(tuple(dict.fromkeys(labs)))
            folds.append(fold)
    return LabelledAudio("dcase2017_task4", root, paths, labels, list(DCASE17_CLASSES), folds, multilabel=True)


TUT2017_CLASSES = (
    "beach", "bus", "cafe/restaurant", "car", "city_center", "forest_path", "grocery_store", "home",
    "library", "metro_station", "office", "park", "residential_area", "train", "tram",
)  # fmt: skip


def load_tut2017(root: Path) -> LabelledAudio:
    """TUT Acoustic Scenes 2017 development set: ``meta.txt`` + ``audio/`` and the official 4 folds
    in ``evaluation_setup/fold{k}_evaluate.txt`` (a clip is tested in the fold that evaluates it)."""
    _need(
        root,
        "TUT Acoustic Scenes 2017",
        "zenodo.org/record/400515",
        "meta.txt",
        "audio",
        *(f"evaluation_setup/fold{k}_evaluate.txt" for k in range(1, 5)),
    )
    test_fold: dict[str, int] = {}
    for k in range(1, 5):
        with open(root / f"evaluation_setup/fold{k}_evaluate.txt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    test_fold[line.split("\t")[0].strip()] = k - 1
    paths, labels, folds = [], [], []
    with open(root / "meta.txt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                raise ValueError(f"{root / 'meta.txt'} line {i + 1}: expected file<TAB>scene; got {line.strip()!r}")
            paths.append(_existing("TUT 2017", root / "meta.txt", i + 1, root / parts[0]))
            labels.append(parts[1])
            folds.append(test_fold.get(parts[0], -1))
    return LabelledAudio("tut2017", root, paths, labels, list(TUT2017_CLASSES), folds)


VOCALSOUND_CLASSES = ("laughter", "sigh", "cough", "throatclearing", "sneeze", "sniff")


def load_vocalsound(root: Path) -> LabelledAudio:
    """VocalSound: ``audio_16k/`` (or ``audio_44k/``) files ``<speaker>_<n>_<label>.wav`` and the
    official speaker-disjoint split ``datafiles/{tr,val,te}.json``; tested on ``te``."""
    audio_dir = next((root / d for d in ("audio_16k", "audio_44k") if (root / d).is_dir()), root / "audio_16k")
    _need(root, "VocalSound", "github.com/YuanGongND/vocalsound", audio_dir.name, "datafiles/te.json", "datafiles/tr.json")
    paths, labels, folds = [], [], []
    for split, fold in (("tr", -1), ("val", -1), ("te", 0)):
        meta = root / "datafiles" / f"{split}.json"
        if not meta.exists():
            continue
        for i, entry in enumerate(json.loads(meta.read_text())["data"]):
            name = Path(entry["wav"]).name
            paths.append(_existing("VocalSound", meta, i + 1, audio_dir / name))
            labels.append(Path(name).stem.rsplit("_", 1)[-1])
            folds.append(fold)
    return LabelledAudio("vocalsound", root, paths, labels, list(VOCALSOUND_CLASSES), folds)


SESA_CLASSES = ("casual", "gunshot", "explosion", "siren")


def load_sesa(root: Path) -> LabelledAudio:
    """SESA (sound events for surveillance): ``train/`` and ``test/`` folders of
    ``<class>_<n>.wav`` files (casual, gunshot, explosion, siren)."""
    _need(root, "SESA", "zenodo.org/record/3519845", "train", "test")
    paths, labels, folds = [], [], []
    for split, fold in (("train", -1), ("test", 0)):
        for p in _audio_files(root / split):
            paths.append(str(p))
            labels.append(p.stem.split("_")[0].lower())
            folds.append(fold)
    return LabelledAudio("sesa", root, paths, labels, list(SESA_CLASSES), folds)


CREMAD_EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def load_crema_d(root: Path) -> LabelledAudio:
    """CREMA-D: ``AudioWAV/<actor>_<sentence>_<EMOTION>_<level>.wav``; 5 actor-disjoint folds
    (actor number mod 5)."""
    _need(root, "CREMA-D", "github.com/CheyneyComputerScience/CREMA-D", "AudioWAV")
    paths, labels, folds = [], [], []
    for p in _audio_files(root / "AudioWAV"):
        parts = p.stem.split("_")
        if len(parts) < 3 or parts[2] not in CREMAD_EMOTIONS or not parts[0].isdigit():
            raise ValueError(f"CREMA-D: {p}: expected <actor>_<sentence>_<emotion>_<level>, emotion in {sorted(CREMAD_EMOTIONS)}")
        paths.append(str(p))
        labels.append(CREMAD_EMOTIONS[parts[2]])
        folds.append(int(parts[0]) % 5)
    return LabelledAudio("crema_d", root, paths, labels, list(CREMAD_EMOTIONS.values()), folds)


RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def load_ravdess(root: Path) -> LabelledAudio:
    """RAVDESS speech audio: ``Actor_NN/MM-VV-EE-II-SS-RR-AA.wav`` (emotion code ``EE``,
    01-08); 5 actor-disjoint folds (actor number mod 5)."""
    actors = sorted(root.glob("Actor_*")) if root.is_dir() else []
    if not actors:
        _need(root, "RAVDESS", "zenodo.org/record/1188976 (Audio_Speech_Actors_01-24.zip)", "Actor_01")
    paths, labels, folds = [], [], []
    for p in (f for a in actors for f in _audio_files(a)):
        parts = p.stem.split("-")
        if len(parts) != 7 or not all(x.isdigit() for x in parts) or not 1 <= int(parts[2]) <= 8:
            raise ValueError(f"RAVDESS: {p}: expected 7 numeric fields MM-VV-EE-II-SS-RR-AA with emotion EE in 01..08")
        paths.append(str(p))
        labels.append(RAVDESS_EMOTIONS[int(parts[2]) - 1])
        folds.append(int(parts[6]) % 5)
    return LabelledAudio("ravdess", root, paths, labels, list(RAVDESS_EMOTIONS), folds)


MRIDANGAM_STROKES = ("bheem", "cha", "dheem", "dhin", "num", "ta", "tha", "tham", "thi", "thom")
MRIDANGAM_TONICS = ("B", "C", "C#", "D", "D#", "E")


def _mridangam(root: Path) -> tuple[list[str], list[str], list[str]]:
    base = root / "mridangam_stroke_1.5" if (root / "mridangam_stroke_1.5").is_dir() else root
    tonic_dirs = [base / t for t in MRIDANGAM_TONICS if (base / t).is_dir()]
    if not tonic_dirs:
        _need(base, "Mridangam stroke dataset", "compmusic.upf.edu/mridangam-stroke-dataset", *MRIDANGAM_TONICS)
    paths, strokes, tonics = [], [], []
    for d in tonic_dirs:
        for p in _audio_files(d):
            m = re.search(r"([a-z]+)-([a-g]#?)-\d+$", p.stem.lower())
            if m is None:
                raise ValueError(
                    f"Mridangam: {p}: expected a name ending in <stroke>-<tonic>-<n> (e.g. 224030__akshaylaya__bheem-b-001.wav)"
                )
            paths.append(str(p))
            strokes.append(m.group(1))
            tonics.append(d.name)
    return paths, strokes, tonics


def load_mridangam_stroke(root: Path) -> LabelledAudio:
    """Mridangam strokes (10 classes): ``<tonic>/<id>__<author>__<stroke>-<tonic>-<n>.wav``; 5 folds."""
    paths, strokes, _ = _mridangam(root)
    return LabelledAudio("mridangam_stroke", root, paths, strokes, list(MRIDANGAM_STROKES), _stratified_folds(strokes, paths, 5))


def load_mridangam_tonic(root: Path) -> LabelledAudio:
    """Mridangam tonics (6 classes, the folder names): same files as the strokes; 5 folds."""
    paths, _, tonics = _mridangam(root)
    return LabelledAudio("mridangam_tonic", root, paths, tonics, list(MRIDANGAM_TONICS), _stratified_folds(tonics, paths, 5))


BEIJING_OPERA_CLASSES = ("bangu", "naobo", "daluo", "xiaoluo")


def load_beijing_opera(root: Path) -> LabelledAudio:
    """Beijing Opera percussion: one folder per instrument (bangu, naobo, daluo, xiaoluo); 5 folds."""
    return _from_class_folders(
        "beijing_opera", "Beijing Opera percussion", root, BEIJING_OPERA_CLASSES, 5, "compmusic.upf.edu/bo-perc-dataset"
    )


NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")


def load_nsynth_instrument(root: Path) -> LabelledAudio:
    """NSynth instrument families (11): ``nsynth-{train,valid,test}/examples.json`` + ``audio/``;
    tested on ``nsynth-test``, trained on whichever of train/valid are present."""
    _need(root, "NSynth", "magenta.tensorflow.org/datasets/nsynth", "nsynth-test/examples.json", "nsynth-test/audio")
    paths, labels, folds = [], [], []
    for split, fold in (("train", -1), ("valid", -1), ("test", 0)):
        meta = root / f"nsynth-{split}" / "examples.json"
        if not meta.exists():
            continue
        for i, (note, info) in enumerate(json.loads(meta.read_text()).items()):
            paths.append(_existing("NSynth", meta, i + 1, meta.parent / "audio" / f"{note}.wav"))
            labels.append(info["instrument_family_str"])
            folds.append(fold)
    return LabelledAudio("nsynth_instrument", root, paths, labels, list(NSYNTH_FAMILIES), folds)


SPEECH_COMMANDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)  # fmt: skip


def load_speech_commands(root: Path) -> LabelledAudio:
    """Speech Commands v0.02 (35 keywords): ``<word>/<speaker>_nohash_<n>.wav`` with the official
    ``testing_list.txt`` (test) and ``validation_list.txt`` (left out); the rest trains."""
    _need(root, "Speech Commands", "download.tensorflow.org/data/speech_commands_v0.02.tar.gz", "testing_list.txt", "validation_list.txt")
    listed = {}
    for name, fold in (("validation_list.txt", -2), ("testing_list.txt", 0)):
        for line in (root / name).read_text().split():
            listed[line.strip()] = fold
    paths, labels, folds = [], [], []
    for word in SPEECH_COMMANDS:
        for p in _audio_files(root / word) if (root / word).is_dir() else []:
            fold = listed.get(f"{word}/{p.name}", -1)
            if fold == -2:
                continue
            paths.append(str(p))
            labels.append(word)
            folds.append(fold)
    return LabelledAudio("speech_commands", root, paths, labels, list(SPEECH_COMMANDS), folds)


LOADERS: dict[str, Callable[[Path], LabelledAudio]] = {
    "esc50": load_esc50,
    "urbansound8k": load_urbansound8k,
    "gtzan_genres": load_gtzan_genres,
    "gtzan_music_speech": load_gtzan_music_speech,
    "fsd50k": load_fsd50k,
    "dcase2017_task4": load_dcase2017_task4,
    "tut2017": load_tut2017,
    "vocalsound": load_vocalsound,
    "sesa": load_sesa,
    "crema_d": load_crema_d,
    "ravdess": load_ravdess,
    "mridangam_stroke": load_mridangam_stroke,
    "mridangam_tonic": load_mridangam_tonic,
    "beijing_opera": load_beijing_opera,
    "nsynth_instrument": load_nsynth_instrument,
    "speech_commands": load_speech_commands,
}


def load_downstream(name: str, root: str | Path) -> LabelledAudio:
    """Load dataset ``name`` (a key of :data:`LOADERS`) from its standard layout under ``root``."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(LOADERS)}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"{name}: data directory {path} does not exist (nothing is downloaded)")
    return LOADERS[name](path)
