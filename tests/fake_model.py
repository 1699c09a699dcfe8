"""A CLAP model whose embeddings are chosen by the test: what reaches every consumer through
:class:`skclap.models.protocol.ClapModelProtocol`, so that a test states the geometry it needs
(clips near an axis, prompts that point at the wrong class) without reaching into an estimator."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch


class TableModel(torch.nn.Module):
    """Audio windows embed to the vectors :meth:`add` gave their samples; texts to ``text(t)``.

    Every clip added is one window long (``window_samples`` at ``sample_rate``), so an item is
    one window and its embedding is its table vector. ``logit_scale`` is CLIP's initial one."""

    window_padding = "repeat"
    quiet_window_db = None

    def __init__(
        self,
        text: Callable[[str], np.ndarray],
        dim: int,
        window_samples: int,
        sample_rate: int = 16000,
        logit_scale: float = float(np.log(1 / 0.07)),
    ) -> None:
        super().__init__()
        self.audio_encoder = torch.nn.Identity()  # no weights: the table is what makes an embedding
        self.logit_scale = torch.nn.Parameter(torch.tensor(logit_scale))
        self.config = SimpleNamespace(sample_rate=sample_rate, window_samples=window_samples, proj_dim=dim)
        self.text = text
        self.table: dict[bytes, np.ndarray] = {}
        self.audio_calls = 0

    def add(self, clips: Sequence[np.ndarray], vectors: np.ndarray) -> None:
        for clip, vector in zip(clips, vectors):
            assert len(clip) == self.config.window_samples, "a clip of the table is one window"
            self.table[np.asarray(clip, dtype=np.float32).tobytes()] = np.asarray(vector, dtype=np.float32)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def audio_settings(self) -> dict[str, Any]:
        h = hashlib.blake2b(digest_size=16)  # the cache must not return a vector of another table
        for key in sorted(self.table):
            h.update(key)
            h.update(self.table[key].tobytes())
        return {"family": "table", "table": h.hexdigest()}

    def encode_audio(self, wave: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        self.audio_calls += 1
        rows = [self.table[w.astype(np.float32).tobytes()] for w in wave.detach().cpu().numpy()]
        out = torch.from_numpy(np.stack(rows))
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def encode_text(self, text: Any, normalize: bool = False) -> torch.Tensor:
        out = torch.from_numpy(np.stack([np.asarray(self.text(t), dtype=np.float32) for t in text]))
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out
