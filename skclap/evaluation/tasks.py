"""The downstream tasks of the CLAP paper: 16 tasks in 8 domains, each with its metric, prompts and
fold protocol. The data come from :mod:`skclap.datasets.downstream` loaders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..datasets.downstream import LabelledAudio, load_downstream

__all__ = ["DOMAINS", "TASKS", "Task", "get_task"]

PAPER_PROMPT = "this is a sound of {}."


@dataclass(frozen=True)
class Task:
    """One downstream task."""

    name: str  # registry key, also the dataset loader's name
    title: str  # column header in tables
    domain: str
    metric: str  # "accuracy" or "mAP"
    protocol: str  # how train and test clips are split
    folder: str  # the folder the official archive unpacks to
    templates: tuple[str, ...] = (PAPER_PROMPT,)
    label_prompts: Mapping[str, str] = field(default_factory=dict)
    paper_zero_shot: float | None = None  # reported by Elizalde et al. 2022

    def locate(self, data_dir: str | Path) -> Path:
        """``data_dir/<folder>`` when it exists (a root holding many datasets), else ``data_dir``."""
        root = Path(data_dir).expanduser()
        return root / self.folder if (root / self.folder).is_dir() else root

    def load(self, data_dir: str | Path) -> LabelledAudio:
        return load_downstream(self.name, self.locate(data_dir))

    def prompts(self, classes: list[str]) -> dict[str, str]:
        """The text put into the templates for each class: ``label_prompts`` or the label itself
        with ``_`` read as a space."""
        return {c: self.label_prompts.get(c, c.replace("_", " ").lower()) for c in classes}


def _t(*args, **kwargs) -> Task:
    if "label_prompts" in kwargs:
        kwargs["label_prompts"] = MappingProxyType(dict(kwargs["label_prompts"]))
    return Task(*args, **kwargs)


_TASKS = (
    _t("esc50", "ESC-50", "Sound events", "accuracy", "5 official folds", "ESC-50-master", paper_zero_shot=0.826),
    _t("fsd50k", "FSD50K", "Sound events", "mAP", "dev (train + val) / eval", "FSD50K", paper_zero_shot=0.3024),
    _t("urbansound8k", "US8K", "Sound events", "accuracy", "10 official folds", "UrbanSound8K", paper_zero_shot=0.7324),
    _t("dcase2017_task4", "DCASE17 T4", "Sound events", "mAP", "training / testing set", "DCASE2017_task4"),
    _t(
        "tut2017",
        "TUT2017",
        "Acoustic scenes",
        "accuracy",
        "4 official folds (development set)",
        "TUT-acoustic-scenes-2017-development",
        templates=("this is a sound of a {}.",),
        label_prompts={
            "cafe/restaurant": "cafe or restaurant",
            "city_center": "city center",
            "home": "home",
            "forest_path": "forest path",
            "grocery_store": "grocery store",
            "metro_station": "metro station",
            "residential_area": "residential area",
        },
    ),
    _t("gtzan_music_speech", "GTZAN M/S", "Music", "accuracy", "10 folds, stratified by name", "music_speech"),
    _t(
        "gtzan_genres",
        "GTZAN Genres",
        "Music",
        "accuracy",
        "10 folds by track number",
        "genres",
        templates=("this is a sound of {} music.",),
        label_prompts={"hiphop": "hip hop"},
    ),
    _t(
        "beijing_opera",
        "Opera",
        "Instruments",
        "accuracy",
        "5 folds, stratified by name",
        "BeijingOpera",
        label_prompts={"bangu": "bangu drum", "naobo": "naobo cymbals", "daluo": "daluo large gong", "xiaoluo": "xiaoluo small gong"},
    ),
    _t(
        "nsynth_instrument",
        "NS Instr.",
        "Instruments",
        "accuracy",
        "train (+ valid) / test",
        "nsynth",
        templates=("this is a sound of a {}.",),
    ),
    _t(
        "mridangam_stroke",
        "Mri-S",
        "Instruments",
        "accuracy",
        "5 folds, stratified by name",
        "mridangam_stroke_1.5",
        templates=("this is a sound of the mridangam stroke {}.",),
    ),
    _t(
        "mridangam_tonic",
        "Mri-T",
        "Instruments",
        "accuracy",
        "5 folds, stratified by name",
        "mridangam_stroke_1.5",
        templates=("this is a sound of a mridangam tuned to {}.",),
        label_prompts={"C#": "C sharp", "D#": "D sharp"},
    ),
    _t(
        "crema_d",
        "CREMA-D",
        "Emotion",
        "accuracy",
        "5 actor-disjoint folds",
        "CREMA-D",
        templates=("this is a sound of {} speech.",),
        label_prompts={"anger": "angry", "disgust": "disgusted", "fear": "fearful"},
    ),
    _t(
        "ravdess",
        "RAVDESS",
        "Emotion",
        "accuracy",
        "5 actor-disjoint folds",
        "RAVDESS",
        templates=("this is a sound of {} speech.",),
        label_prompts={"disgust": "disgusted"},
    ),
    _t(
        "speech_commands",
        "KWS",
        "Keyword spotting",
        "accuracy",
        "official train / test lists",
        "speech_commands_v0.02",
        templates=("this is a sound of someone saying {}.",),
    ),
    _t(
        "vocalsound",
        "VocalSound",
        "Vocal sounds",
        "accuracy",
        "official speaker-disjoint train / test",
        "vocalsound",
        label_prompts={"throatclearing": "throat clearing"},
    ),
    _t(
        "sesa",
        "SESA",
        "Surveillance",
        "accuracy",
        "official train / test",
        "SESA",
        label_prompts={"casual": "casual everyday sounds", "siren": "a siren or an alarm"},
    ),
)

#: Task name -> Task, in the paper's column order.
TASKS: Mapping[str, Task] = MappingProxyType({t.name: t for t in _TASKS})
DOMAINS: tuple[str, ...] = tuple(dict.fromkeys(t.domain for t in _TASKS))


def get_task(name: str | Task) -> Task:
    if isinstance(name, Task):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[key]
