"""The CLAP model: an audio tower (CNN14 or HTS-AT) and a transformer text tower projected into one space."""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import CheckpointError, UnknownModelError
from ..frontend import LogMel
from ..loss import similarity_logits
from .config import CLAPConfig
from .projection import Projection
from .serialization import load_directory, save_directory
from .text import TextBackbone
from .tokenizer import load_tokenizer
from .towers import build_audio_tower

__all__ = ["CLAPModel", "CLAPOutput", "PRESETS", "AudioEncoder", "TextEncoder", "preset_config"]


@functools.cache
def _preset_files() -> dict[str, dict[str, Any]]:
    """The named architectures, read once from the package's ``presets/*.json``."""
    out = {}
    for entry in sorted(resources.files(__package__).joinpath("presets").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out[entry.name[: -len(".json")]] = json.loads(entry.read_text())
    return out


def preset_description(name: str) -> str:
    """What a named architecture is for, from its file."""
    return str(_preset_files()[name].get("description", ""))


class _Presets(Mapping):
    """Read-only view of the named architectures; every lookup returns a fresh config."""

    def __getitem__(self, name: str) -> CLAPConfig:
        data = {k: v for k, v in _preset_files()[name].items() if k != "description"}
        return CLAPConfig.from_dict(copy.deepcopy(data))

    def __iter__(self) -> Iterator[str]:
        return iter(_preset_files())

    def __len__(self) -> int:
        return len(_preset_files())

    def __repr__(self) -> str:
        return f"PRESETS({', '.join(_preset_files())})"


#: Named architectures (random weights; released weights are in :mod:`skclap.registry`), as data
#: files in ``skclap/models/presets/``.
PRESETS: Mapping[str, CLAPConfig] = _Presets()


def preset_config(name: str) -> CLAPConfig:
    """A fresh copy of a named architecture's config."""
    if name not in _preset_files():
        raise UnknownModelError(f"unknown preset {name!r}; choose from {sorted(_preset_files())}")
    return PRESETS[name]


class AudioEncoder(nn.Module):
    """Waveforms ``(batch, samples)`` -> projected audio embeddings ``(batch, proj_dim)``."""

    def __init__(self, cfg: CLAPConfig) -> None:
        super().__init__()
        f = cfg.frontend
        self.frontend = LogMel(f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.fmin, f.fmax, filter_rate=f.mel_filter_rate)
        self.backbone = build_audio_tower(cfg.audio, f)  # the tower the config's audio section names
        self.projection = Projection(cast(int, self.backbone.out_dim), cfg.space.dim, cfg.space.dropout)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):  # the front-end stays in float32
            mel = self.frontend(wave)
        return self.projection(self.backbone(mel))


class TextEncoder(nn.Module):
    """Token ids -> projected text embeddings ``(batch, proj_dim)``."""

    def __init__(self, cfg: CLAPConfig) -> None:
        super().__init__()
        self.backbone = TextBackbone(cfg.text.transformer, cfg.text.pooling)
        self.projection = Projection(self.backbone.hidden_size, cfg.space.dim, cfg.space.dropout)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        return self.projection(self.backbone(input_ids, attention_mask, inputs_embeds, **extra))


def tokenize_with_suffix(tokenizer: Any, texts: list[str], suffix: str, limit: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Token ids of ``text + suffix`` for each text, right-padded, as the reference tokenizes each one
    (no truncation). A text longer than ``limit`` tokens is cut before the suffix, so that the token
    a "last" pooling reads (msclap 2023's ``<|endoftext|>``) stays; without a suffix the tokenizer's
    own truncation keeps its special tokens ([CLS] ... [SEP])."""
    if not suffix:
        tokens = tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return {k: v.to(device) for k, v in tokens.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    rows = tokenizer([t + suffix for t in texts], truncation=False)["input_ids"]
    tail = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(rows):
        if len(ids) > limit:
            head = tokenizer(texts[i], truncation=True, max_length=limit - len(tail))["input_ids"]
            rows[i] = list(head) + list(tail)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


class CLAPOutput(NamedTuple):
    audio_embeds: torch.Tensor  # (batch, proj_dim), L2-normalised
    text_embeds: torch.Tensor  # (batch, proj_dim), L2-normalised
    logit_scale: torch.Tensor  # scalar, exp of the learnt log-scale


class CLAPModel(nn.Module):
    """CLAP: audio and text encoders into a shared space, with a learnable temperature.

    ``encode_audio`` takes waveforms already at ``config.sample_rate`` (one window per row); the
    estimators and :mod:`skclap.audio` take care of files, resampling and windowing.
    """

    config_class = CLAPConfig

    def __init__(self, config: CLAPConfig | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config if config is not None else CLAPConfig()
        self.audio_encoder = AudioEncoder(self.config)
        self.text_encoder = TextEncoder(self.config)
        self.logit_scale = nn.Parameter(torch.tensor(float(self.config.space.logit_scale_init)))
        self._tokenizer = None
        self.tokenizer = tokenizer
        #: Where the weights came from (a checkpoint name or directory); None for in-memory weights.
        self.source: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, seed: int | None = 0, tokenizer: Any = None, **sections: dict[str, Any]) -> CLAPModel:
        """A randomly initialised model of a named architecture (see :data:`PRESETS`); keyword
        arguments change fields of its config's sections (:meth:`CLAPConfig.replace`), e.g.
        ``frontend={"clip_seconds": 1.0}``."""
        return cls.from_config(preset_config(name).replace(**sections), seed, tokenizer)

    @classmethod
    def from_config(cls, config: CLAPConfig, seed: int | None = 0, tokenizer: Any = None) -> CLAPModel:
        """A randomly initialised model of ``config``, its weights drawn from ``seed`` (the global
        random state is left as it was; None: drawn from it)."""
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = cls(config, tokenizer=tokenizer)
        else:
            model = cls(config, tokenizer=tokenizer)
        return model.eval()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: Any = None, tokenizer: Any = None) -> CLAPModel:
        """Load a skclap checkpoint directory (what :meth:`save_pretrained` writes). Released weights
        and other formats load by name or path with :func:`skclap.load_model`."""
        if not Path(directory).expanduser().is_dir():
            raise CheckpointError(
                f"{os.fspath(directory)!r} is not a checkpoint directory; registered names and released files "
                f"load with skclap.load_model({os.fspath(directory)!r})"
            )
        return load_directory(Path(directory).expanduser(), cls, device, tokenizer)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer files to ``directory``."""
        return save_directory(self, directory)

    # ------------------------------------------------------------------ text
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self.tokenizer = load_tokenizer(self.config.text.tokenizer)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        pad = self.config.text.pad_token
        if value is not None and pad is not None and getattr(value, "pad_token", None) != pad:
            value.add_special_tokens({"pad_token": pad})
        self._tokenizer = value

    @property
    def audio_backbone(self) -> nn.Module:
        """The audio tower before its projection (what ``freeze_audio`` freezes)."""
        return self.audio_encoder.backbone

    @property
    def text_backbone(self) -> nn.Module:
        """The text transformer before its projection (what ``freeze_text`` freezes)."""
        return self.text_encoder.backbone

    def audio_settings(self) -> dict[str, Any]:
        """What besides the audio tower's weights changes an audio embedding (for cache keys)."""
        return {"family": "skclap", **self.config.audio_settings()}

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text item {i} must be a string; got {type(t).__name__}: {t!r}")
        return tokenize_with_suffix(self.tokenizer, texts, self.config.text.suffix, self.text_limit(), self.device)

    def text_limit(self) -> int:
        """The longest text in tokens: the text section's ``max_length``, and never past the tower's positions."""
        text = self.config.text
        positions = text.transformer.get("max_position_embeddings", text.transformer.get("n_positions"))
        return int(min(text.max_length, positions)) if positions else int(text.max_length)

    @property
    def window_padding(self) -> str:
        """How a clip shorter than one window fills it (:data:`skclap.audio.PADDINGS`): msclap tiles."""
        return "repeat"

    @property
    def quiet_window_db(self) -> float | None:
        """Windows this many dB below an item's loudest are left out of its mean (None: none are)."""
        return self.config.frontend.quiet_window_db

    # ------------------------------------------------------------------ encoders
    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_audio(self, wave: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Waveform windows ``(batch, samples)`` at ``config.sample_rate`` -> ``(batch, proj_dim)``."""
        if wave.ndim != 2:
            raise ValueError(f"encode_audio takes (batch, samples); got shape {tuple(wave.shape)}")
        emb = self.audio_encoder(wave.to(self.device, self.logit_scale.dtype))
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_text(
        self, text: list[str] | dict[str, torch.Tensor], normalize: bool = False, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Texts (or their tokens from :meth:`tokenize`) -> ``(batch, proj_dim)``. ``inputs_embeds``
        ``(batch, tokens, hidden)`` replaces the tokens' word embeddings (see :meth:`text_input_embeddings`)."""
        tokens = text if isinstance(text, dict) else self.tokenize(text)
        emb = self.text_encoder(**tokens, inputs_embeds=inputs_embeds)
        return F.normalize(emb, dim=-1) if normalize else emb

    def text_input_embeddings(self) -> nn.Embedding:
        """The text tower's word-embedding table (what ``inputs_embeds`` of :meth:`encode_text` replaces)."""
        return self.text_encoder.backbone.model.get_input_embeddings()

    def forward(self, audio: torch.Tensor, text: list[str] | dict[str, torch.Tensor]) -> CLAPOutput:
        """Normalised audio and text embeddings and the (exponentiated) logit scale."""
        return CLAPOutput(
            self.encode_audio(audio, normalize=True),
            self.encode_text(text, normalize=True),
            self.logit_scale.exp(),
        )

    def similarity(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos(audio_i, text_j)``, shape ``(n_audio, n_text)``."""
        return similarity_logits(audio_embeds, text_embeds, self.logit_scale.exp())

    def __repr__(self) -> str:  # a one-liner instead of the whole module tree
        n = sum(p.numel() for p in self.parameters())
        src = f", source={self.source!r}" if self.source else ""
        return f"CLAPModel(sample_rate={self.config.sample_rate}, proj_dim={self.config.proj_dim}, params={n / 1e6:.1f}M{src})"
