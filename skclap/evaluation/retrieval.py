"""Text-audio retrieval on AudioCaps and Clotho as papers report it: both directions in one table,
under a named protocol (:data:`skclap.metrics.RETRIEVAL_PROTOCOLS`), with the chosen model's
published figures beside it where they exist.

Each clip goes through the audio encoder once (cached: a disk cache keeps the vectors across runs),
each caption through the text encoder once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..datasets.captioned import CaptionedAudio, load_audiocaps, load_clotho
from ..encoder import Encoder
from ..exceptions import DatasetNotFoundError
from ..metrics import retrieval_metrics

__all__ = ["PUBLISHED_RETRIEVAL", "RETRIEVAL_TASKS", "RetrievalResult", "RetrievalTask", "evaluate_retrieval"]


@dataclass(frozen=True)
class RetrievalTask:
    """A captioning set evaluated as retrieval."""

    name: str
    title: str
    folder: str  # the folder name under a root holding many datasets
    reader: Callable[..., CaptionedAudio]

    def load(self, data_dir: str | Path, split: str = "test") -> CaptionedAudio:
        """Read ``data_dir`` as the set's folder, or else ``data_dir/<folder>`` (a root holding many)."""
        root = Path(data_dir).expanduser()
        try:
            return self.reader(root, split)
        except DatasetNotFoundError:
            if not (root / self.folder).is_dir():
                raise
        return self.reader(root / self.folder, split)


#: Task name -> RetrievalTask.
RETRIEVAL_TASKS: Mapping[str, RetrievalTask] = MappingProxyType(
    {
        "audiocaps": RetrievalTask("audiocaps", "AudioCaps", "AudioCaps", load_audiocaps),
        "clotho": RetrievalTask("clotho", "Clotho", "Clotho", load_clotho),
    }
)

#: (model name, task) -> the R@1 and mAP@10 figures its paper reports, with where they are printed.
#: Only figures read from the paper, for the checkpoint the name loads, belong here; a model or a
#: measure that is absent prints "–". (LAION's paper does not say which of its table's rows each
#: released checkpoint is: docs/evaluation.md quotes the rows.)
_MSCLAP_2023 = "Elizalde et al. 2023, arXiv 2309.05767v2, Table 2, row HTSAT-22+GPT2 (protocol not stated)"
PUBLISHED_RETRIEVAL: Mapping[tuple[str, str], Mapping[str, Any]] = MappingProxyType(
    {
        ("msclap-2023", "audiocaps"): MappingProxyType(
            {"a2t_R@1": 0.425, "t2a_R@1": 0.356, "a2t_mAP@10": 0.319, "t2a_mAP@10": 0.51, "source": _MSCLAP_2023}
        ),
        ("msclap-2023", "clotho"): MappingProxyType(
            {"a2t_R@1": 0.229, "t2a_R@1": 0.157, "a2t_mAP@10": 0.155, "t2a_mAP@10": 0.257, "source": _MSCLAP_2023}
        ),
    }
)

_DIRECTIONS = (("t2a", "text→audio"), ("a2t", "audio→text"))


@dataclass
class RetrievalResult:
    """One retrieval run: the measures of :func:`~skclap.metrics.retrieval_metrics`, the data that
    were scored (``data.left_out``: clips not scored), and the published figures of the model."""

    task: str
    title: str
    model: str
    protocol: str
    data: CaptionedAudio
    metrics: dict[str, float]
    published: Mapping[str, Any] | None = None

    def table(self) -> pd.DataFrame:
        """A row per direction, a column per measure (and ``published R@1`` / ``published mAP@10``
        where known)."""
        ks = sorted(int(k.split("@")[1]) for k in self.metrics if k.startswith("t2a_R@"))
        rows = []
        for key, label in _DIRECTIONS:
            row: dict[str, Any] = {"direction": label}
            row.update({f"R@{k}": self.metrics[f"{key}_R@{k}"] for k in ks})
            row["mAP@10"] = self.metrics[f"{key}_mAP@10"]
            row["median rank"] = self.metrics[f"{key}_median_rank"]
            row["mean rank"] = self.metrics[f"{key}_mean_rank"]
            if self.published is not None:
                row["published R@1"] = self.published.get(f"{key}_R@1")
                row["published mAP@10"] = self.published.get(f"{key}_mAP@10")
            rows.append(row)
        return pd.DataFrame(rows).set_index("direction")

    def markdown(self) -> str:
        """The table in Markdown, headed by what was scored and under which protocol."""
        table = self.table()
        n_caps = sum(len(c) for c in self.data.captions)
        head = (
            f"{self.model}, {self.title} {self.data.split}: {len(self.data)} clips, {n_caps} captions, "
            f"protocol {self.protocol!r} (text→audio R@1 chance {1 / len(self.data):.2%})"
        )
        lines = [head, "", "| | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
        for label, row in table.iterrows():
            cells = [_fmt(col, row[col]) for col in table.columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if self.published is not None:
            lines += ["", f"published: {self.published['source']}"]
        if self.data.left_out:
            listed = len(self.data) + len(self.data.left_out)
            lines += ["", f"left out with their captions (missing or unreadable): {len(self.data.left_out)} of {listed} clips listed"]
            lines += [f"- {c.clip}: {c.reason}" for c in self.data.left_out]
        return "\n".join(lines) + "\n"


def _fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.1f}" if "rank" in column else f"{value:.4f}"


def get_retrieval_task(name: str | RetrievalTask) -> RetrievalTask:
    if isinstance(name, RetrievalTask):
        return name
    key = str(name).lower()
    if key not in RETRIEVAL_TASKS:
        raise ValueError(f"unknown retrieval task {name!r}; choose from {', '.join(RETRIEVAL_TASKS)}")
    return RETRIEVAL_TASKS[key]


def evaluate_retrieval(
    task: str | RetrievalTask,
    data_dir: str | Path | None = None,
    model: Any = "msclap-2022",
    *,
    protocol: str = "standard",
    split: str = "test",
    ks: Sequence[int] = (1, 5, 10),
    cache: Any = True,
    batch_size: int = 32,
    device: str = "auto",
    precision: str | None = None,
    progress: bool = True,
    data: CaptionedAudio | None = None,
) -> RetrievalResult:
    """Text→audio and audio→text retrieval on ``task`` (``"audiocaps"`` or ``"clotho"``) read from
    ``data_dir`` (the set's folder in its released layout, or a root holding it as ``AudioCaps/`` or
    ``Clotho/``) or given as ``data``.

    ``split``: ``"test"`` (AudioCaps ``test``, Clotho ``evaluation``), or a split name of the reader.
    ``protocol``: ``"standard"``, ``"laion"`` or ``"dcase"``
    (:func:`skclap.metrics.retrieval_metrics`). ``cache`` as in :class:`skclap.Encoder`: a directory
    keeps the audio vectors across runs. A clip the encoder cannot read joins ``data.left_out`` with
    its captions.
    """
    spec = get_retrieval_task(task)
    if data is None:
        if data_dir is None:
            raise ValueError("evaluate_retrieval needs data_dir or data")
        data = spec.load(data_dir, split)
    enc = Encoder(model, device=device, precision=precision, batch_size=batch_size, cache=cache, progress=progress)
    failed: dict[int, str] = {}
    audio = enc.audio(data.paths, on_error=lambda i, err: failed.__setitem__(i, f"unreadable: {err}"))
    if failed:
        audio = np.delete(audio, sorted(failed), axis=0)
        data = data.without(failed)
    texts, owner = data.caption_pairs()
    metrics = retrieval_metrics(audio, enc.text(texts), owner, ks=ks, protocol=protocol)
    label = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    published = PUBLISHED_RETRIEVAL.get((label, spec.name))
    return RetrievalResult(spec.name, spec.title, label, protocol, data, metrics, published)
