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


class ProjectionModel(torch.nn.Module):
    """A CLAP whose audio embedding is a fixed random projection of a window's log block energies,
    and whose text embedding is a vector drawn from the text's hash: every sample of a window moves
    its embedding, so a test of a protocol's loading, windowing and aggregation can fail, at no cost
    of a network. ``laion_adapter()`` gives the same functions in the shape laion_clap's
    ``CLAP_Module.model`` has (``get_audio_embedding`` of feature dicts, ``get_text_embedding``)."""

    window_padding = "repeatpad"
    quiet_window_db = None

    def __init__(self, sample_rate: int = 48000, seconds: float = 10.0, blocks: int = 500, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        window = int(round(sample_rate * seconds))
        assert window % blocks == 0
        self.config = SimpleNamespace(sample_rate=sample_rate, window_samples=window, proj_dim=dim)
        self.blocks, self.dim = blocks, dim
        gen = torch.Generator().manual_seed(seed)
        self.projection = torch.nn.Parameter(
            torch.randn(blocks, dim, generator=gen, dtype=torch.float64) / blocks**0.5, requires_grad=False
        )
        self.audio_encoder = torch.nn.ModuleList()
        self.logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def audio_settings(self) -> dict[str, Any]:
        return {"family": "projection", "blocks": self.blocks}

    def encode_audio(self, wave: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = wave.detach().double().reshape(wave.shape[0], self.blocks, -1)
        energy = torch.log(x.square().mean(dim=-1) + 1e-6) + 40 * x.mean(dim=-1)  # the sign of samples counts too
        out = (energy @ self.projection).float()
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def encode_text(self, text: Any, normalize: bool = False) -> torch.Tensor:
        rows = [
            np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")).normal(size=self.dim) for t in text
        ]
        out = torch.from_numpy(np.stack(rows)).float()
        return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def laion_adapter(self, fusion: bool = False) -> SimpleNamespace:
        """A stand-in ``self`` for laion_clap's ``CLAP_Module`` methods: ``self.model`` embeds what
        laion_clap's ``get_audio_features`` made (its ``"waveform"``) and texts as given (the
        tokenizer passes them through), L2-normalised as laion_clap's ``get_*_embedding`` do."""
        outer = self

        class Inner:
            def eval(self) -> None:
                pass

            def get_audio_embedding(self, dicts: list[dict]) -> torch.Tensor:
                return outer.encode_audio(torch.stack([d["waveform"] for d in dicts]), normalize=True)

            def get_text_embedding(self, texts: list[str]) -> torch.Tensor:
                return outer.encode_text(texts, normalize=True)

        return SimpleNamespace(model=Inner(), enable_fusion=fusion, model_cfg={"audio_cfg": {}}, tokenizer=lambda texts: list(texts))
