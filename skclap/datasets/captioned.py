"""Readers for the audio-captioning sets that retrieval papers report on, AudioCaps and Clotho, in
their released layouts.

Nothing is downloaded. A reader returns a :class:`CaptionedAudio`: the clips found, each clip's own
captions, and what was left out — a clip whose file is missing or cannot be read is reported with its
captions and dropped together with them, so that every caption stays attached to its own clip.

Where each layout detail comes from:

- AudioCaps CSVs (``audiocap_id, youtube_id, start_time, caption``, one row per caption; ``train``
  one caption a clip, ``val``/``test`` five): cdjkim/audiocaps ``dataset/README.md`` and
  ``dataset/{train,val,test}.csv``. AudioCaps releases no audio: each user downloads the clips from
  YouTube, and the common download scripts name them differently (see :data:`AUDIOCAPS_NAMES`).
- Clotho CSVs (``file_name, caption_1 … caption_5``) and audio folders ``development/``,
  ``validation/``, ``evaluation/``: the Zenodo release (record 3490684, version 2.1 adds
  ``validation``), as xieh97/dcase2022-audio-retrieval ``scripts/__init__.py`` reads it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..exceptions import DatasetNotFoundError

__all__ = ["AUDIOCAPS_NAMES", "CaptionedAudio", "LeftOutClip", "load_audiocaps", "load_clotho"]

#: How AudioCaps clips are named on disk by the common download scripts, tried in this order
#: (``{ext}``: wav, then flac):
#:
#: - ``{youtube_id}_{start_time}.{ext}`` — Labbeti/aac-datasets ``datasets/audiocaps.py``
#:   (``fname = f"{youtube_id}_{start_time}.{audio_format}"``, flac by default);
#: - ``Y{youtube_id}.{ext}`` — the AudioSet convention, qiuqiangkong/audioset_tagging_cnn
#:   ``utils/dataset.py`` (``'Y' + audio_id + '.wav'``: a leading ``-`` in an id breaks command lines);
#: - ``{youtube_id}_{start_ms}_{end_ms}.{ext}`` — xieh97/audiocaps-dl ``download.py``
#:   (``get_audio_fname``: start and end in milliseconds, clips of 10 s).
AUDIOCAPS_NAMES: tuple[str, ...] = ("{yid}_{start}", "Y{yid}", "{yid}_{start_ms}_{end_ms}")
_EXTENSIONS = (".wav", ".flac")
_AUDIOCAPS_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_CLOTHO_SPLITS = {
    "development": "development",
    "train": "development",
    "validation": "validation",
    "val": "validation",
    "evaluation": "evaluation",
    "test": "evaluation",
}


@dataclass(frozen=True)
class LeftOutClip:
    """A clip of the metadata that is not in the set, with the captions that went with it."""

    clip: str  # the clip's id: AudioCaps ``{youtube_id}_{start_time}``, Clotho its file name
    captions: tuple[str, ...]
    reason: str  # "missing" or "unreadable: <why>"
    path: str | None = None  # the file that could not be read; None when none was found


@dataclass
class CaptionedAudio:
    """Clips with their captions, in the order their metadata lists them.

    ``paths[i]`` is clip ``ids[i]``'s audio file and ``captions[i]`` its captions; ``left_out`` lists
    the metadata's clips that are missing or unreadable, with their captions.
    """

    name: str
    split: str
    root: Path
    ids: list[str]
    paths: list[str]
    captions: list[list[str]]
    left_out: list[LeftOutClip] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.paths) == len(self.captions)):
            raise ValueError(f"{self.name}: ids, paths and captions differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def caption_pairs(self) -> tuple[list[str], list[int]]:
        """All captions flat, and for each the index of its clip (``text_to_audio`` of
        :func:`skclap.metrics.retrieval_metrics`)."""
        texts = [c for caps in self.captions for c in caps]
        owner = [i for i, caps in enumerate(self.captions) for _ in caps]
        return texts, owner

    def without(self, drop: dict[int, str]) -> CaptionedAudio:
        """A copy without the clips ``drop`` names (index -> reason), each moved to ``left_out``
        with its captions."""
        keep = [i for i in range(len(self)) if i not in drop]
        gone = [LeftOutClip(self.ids[i], tuple(self.captions[i]), why, self.paths[i]) for i, why in sorted(drop.items())]
        return CaptionedAudio(
            self.name,
            self.split,
            self.root,
            [self.ids[i] for i in keep],
            [self.paths[i] for i in keep],
            [list(self.captions[i]) for i in keep],
            [*self.left_out, *gone],
        )


def _split(name: str, split: str, table: dict[str, str]) -> str:
    key = str(split).lower()
    if key not in table:
        raise ValueError(f"{name}: unknown split {split!r}; choose from {sorted(set(table))}")
    return table[key]


def _first_file(candidates: Iterable[Path], what: str) -> Path:
    candidates = list(candidates)
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetNotFoundError(f"{what} not found; looked for: " + ", ".join(str(p) for p in candidates))


def _readable(path: Path) -> str | None:
    """None when soundfile can read the file's header and it holds samples, else why not: an
    unreadable file is left out here rather than failing the embedding of the whole set."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for a damaged header
        return f"unreadable: {type(err).__name__}: {err}"
    return None if info.frames > 0 else "unreadable: no samples"


def _assemble(
    name: str,
    split: str,
    root: Path,
    clips: dict[str, list[str]],
    locate: Callable[[str], Path | None],
    check_audio: bool,
) -> CaptionedAudio:
    ids, paths, captions, left = [], [], [], []
    for clip, caps in clips.items():
        path = locate(clip)
        why = "missing" if path is None else _readable(path) if check_audio else None
        if why is not None:
            left.append(LeftOutClip(clip, tuple(caps), why, None if path is None else str(path)))
            continue
        ids.append(clip)
        paths.append(str(path))
        captions.append(caps)
    if not ids:
        raise DatasetNotFoundError(f"{name} {split}: none of the {len(clips)} clips listed has readable audio under {root}")
    return CaptionedAudio(name, split, root, ids, paths, captions, left)


def _audiocaps_dirs(root: Path, split: str) -> list[Path]:
    # aac-datasets keeps audio/<split>/, audiocaps-dl writes AudioCaps/<split>/; a flat folder also works.
    return [d for d in (root / "audio" / split, root / split, root / "audio", root) if d.is_dir()]


def _audiocaps_locator(dirs: list[Path], starts: dict[str, tuple[str, str]]) -> Callable[[str], Path | None]:
    def locate(clip: str) -> Path | None:
        yid, start = starts[clip]
        start_s = float(start)
        fields = {"yid": yid, "start": start, "start_ms": int(start_s * 1000), "end_ms": int((start_s + 10) * 1000)}
        stems = [pattern.format(**fields) for pattern in AUDIOCAPS_NAMES]
        for d in dirs:
            for stem in stems:
                for ext in _EXTENSIONS:
                    if (d / f"{stem}{ext}").is_file():
                        return d / f"{stem}{ext}"
        return None

    return locate


def load_audiocaps(root: str | Path, split: str = "test", *, check_audio: bool = True) -> CaptionedAudio:
    """Read AudioCaps: ``{split}.csv`` (``audiocap_id, youtube_id, start_time, caption``, one row per
    caption, in ``root`` or ``root/dataset/`` as cdjkim/audiocaps ships them) and the clips.

    A clip is one ``(youtube_id, start_time)``; its captions are its rows in file order (``test`` and
    ``val``: five, ``train``: one). AudioCaps ships no audio; its clips are looked for in
    ``root/audio/{split}/``, ``root/{split}/``, ``root/audio/`` and ``root``, named as any of the
    common download scripts names them (:data:`AUDIOCAPS_NAMES`): ``{youtube_id}_{start_time}.wav``
    or ``.flac`` (aac-datasets), ``Y{youtube_id}.wav`` (the AudioSet convention) or
    ``{youtube_id}_{start_ms}_{end_ms}.wav`` (audiocaps-dl). ``split``: ``train``, ``val``
    (``validation``) or ``test``. ``check_audio``: read each file's header, leaving unreadable ones
    out (reported in ``left_out``) instead of failing later.
    """
    root = Path(root).expanduser()
    split = _split("AudioCaps", split, _AUDIOCAPS_SPLITS)
    table = _first_file([root / f"{split}.csv", root / "dataset" / f"{split}.csv"], f"AudioCaps {split}.csv")
    clips: dict[str, list[str]] = {}
    starts: dict[str, tuple[str, str]] = {}
    with open(table, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                yid, start, caption = row["youtube_id"].strip(), row["start_time"].strip(), row["caption"].strip()
            except (KeyError, AttributeError):
                raise ValueError(f"{table}:{n}: expected columns audiocap_id, youtube_id, start_time, caption") from None
            clip = f"{yid}_{start}"
            starts[clip] = (yid, start)
            clips.setdefault(clip, []).append(caption)
    locate = _audiocaps_locator(_audiocaps_dirs(root, split), starts)
    return _assemble("AudioCaps", split, root, clips, locate, check_audio)


def load_clotho(root: str | Path, split: str = "evaluation", *, check_audio: bool = True) -> CaptionedAudio:
    """Read Clotho: ``clotho_captions_{split}.csv`` (``file_name, caption_1 … caption_5``, in
    ``root`` or ``root/clotho_csv_files/``) and the audio under ``root/{split}/`` (as the Zenodo
    archives ``clotho_audio_{split}.7z`` unpack) or ``root/clotho_audio_files/{split}/``.

    Each clip keeps its five captions in column order. ``split``: ``development`` (``train``),
    ``validation`` (``val``) or ``evaluation`` (``test``, the split retrieval papers report).
    ``check_audio`` as in :func:`load_audiocaps`.
    """
    root = Path(root).expanduser()
    split = _split("Clotho", split, _CLOTHO_SPLITS)
    name = f"clotho_captions_{split}.csv"
    table = _first_file([root / name, root / "clotho_csv_files" / name], f"Clotho {name}")
    clips: dict[str, list[str]] = {}
    with open(table, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            columns = [k for k in row if k and k.startswith("caption_")]
            if "file_name" not in row or not columns:
                raise ValueError(f"{table}:{n}: expected columns file_name, caption_1 … caption_5")
            columns.sort(key=lambda k: int(k.split("_")[1]))
            clips[row["file_name"]] = [row[k].strip() for k in columns if row[k] and row[k].strip()]
    dirs = [d for d in (root / split, root / "clotho_audio_files" / split) if d.is_dir()]

    def locate(file_name: str) -> Path | None:
        return next((d / file_name for d in dirs if (d / file_name).is_file()), None)

    return _assemble("Clotho", split, root, clips, locate, check_audio)
