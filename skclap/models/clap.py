"""The CLAP model: an audio tower (CNN14 or HTS-AT) and a transformer text tower projected into one space."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import CheckpointError
from ..frontend import LogMel
from ..loss import similarity_logits
from .cnn14 import Cnn14
from .descriptors import Descriptors, with_descriptors
from .htsat import HTSAT, HTSAT_TINY, htsat_frames
from .projection import Projection
from .serialization import load_directory, save_directory
from .text import TextBackbone
from .tokenizer import BASIC, basic_vocab, load_tokenizer

__all__ = ["CLAPConfig", "CLAPModel", "CLAPOutput", "PRESETS", "AudioEncoder", "TextEncoder", "preset_config"]

AUDIO_ENCODERS = ("cnn14", "htsat")

BERT_BASE_UNCASED: dict[str, Any] = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

GPT2_BASE: dict[str, Any] = {
    "model_type": "gpt2",
    "vocab_size": 50257,
    "n_positions": 1024,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "embd_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "initializer_range": 0.02,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
}


@dataclass
class CLAPConfig:
    """Everything that defines a CLAP model's shape and preprocessing.

    Defaults are the 2022 release (Elizalde et al.): 44.1 kHz, 5 s clips, 64 mels 50-14000 Hz,
    CNN14 (2048-d), BERT-base uncased ([CLS], 768-d), 1024-d projections. The 2023 release
    (``PRESETS["msclap-2023"]``) is an HTS-AT on 7 s windows and GPT-2.
    """

    # audio front-end
    sample_rate: int = 44100
    clip_seconds: float = 5.0
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    mel_filter_rate: int | None = None  # the rate the mel filters assume; None: sample_rate
    # audio encoder: "cnn14" (channels, classes) or "htsat" (transformers ClapAudioConfig fields)
    audio_encoder: str = "cnn14"
    audio_channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    audio_dim: int = 2048
    audio_classes: int = 527
    audio_freq_position: bool = False  # CNN14 with a mel-position input channel (pitch-aware; not in releases)
    audio_descriptors: bool = False  # level and register descriptors beside the tower (models/descriptors.py; not in releases)
    htsat: dict[str, Any] = field(default_factory=dict)
    # text encoder
    text_config: dict[str, Any] = field(default_factory=lambda: dict(BERT_BASE_UNCASED))
    text_pooling: str = "cls"
    # the longest text in tokens (suffix and special tokens included): msclap pads to 100 (2022) or
    # 77 (2023) tokens but never truncates, so its releases take every text their tower's positions hold
    text_max_length: int = 512
    tokenizer: str = "bert-base-uncased"
    text_suffix: str = ""  # appended to every text before tokenizing (msclap 2023: " <|endoftext|>")
    pad_token: str | None = None  # set on the tokenizer when it has none (msclap 2023: "!")
    # shared space
    proj_dim: int = 1024
    proj_dropout: float = 0.5
    logit_scale_init: float = math.log(1 / 0.07)

    def __post_init__(self) -> None:
        self.audio_channels = tuple(int(c) for c in self.audio_channels)
        if self.sample_rate <= 0 or self.clip_seconds <= 0:
            raise ValueError("sample_rate and clip_seconds must be positive")
        if self.audio_encoder not in AUDIO_ENCODERS:
            raise ValueError(f"audio_encoder must be one of {AUDIO_ENCODERS}; got {self.audio_encoder!r}")
        if self.audio_encoder == "htsat":
            frames = self.window_samples // self.hop_length + 1
            if frames > htsat_frames(self.htsat, self.n_mels):
                raise ValueError(
                    f"a {self.clip_seconds:g} s window is {frames} frames at hop {self.hop_length}; the HTS-AT "
                    f"takes at most {htsat_frames(self.htsat, self.n_mels)}"
                )

    @property
    def window_samples(self) -> int:
        """Samples in one model window (``clip_seconds * sample_rate``)."""
        return int(round(self.clip_seconds * self.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["audio_channels"] = list(self.audio_channels)
        return d

    def audio_settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes an audio embedding (front-end, windows, tower)."""
        d = self.to_dict()
        text = {"text_config", "text_pooling", "text_max_length", "tokenizer", "text_suffix", "pad_token", "logit_scale_init"}
        return {k: v for k, v in d.items() if k not in text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CLAPConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown CLAP config keys: {unknown}")
        return cls(**d)


def _tiny_text(hidden: int, layers: int, heads: int, max_len: int) -> dict[str, Any]:
    return {
        **BERT_BASE_UNCASED,
        "vocab_size": len(basic_vocab()),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": max_len,
    }


def _tiny_gpt2(hidden: int, layers: int, heads: int, max_len: int) -> dict[str, Any]:
    return {
        **GPT2_BASE,
        "vocab_size": len(basic_vocab()),
        "n_embd": hidden,
        "n_layer": layers,
        "n_head": heads,
        "n_positions": max_len,
        "bos_token_id": None,
        "eos_token_id": None,
    }


_PRESETS: dict[str, CLAPConfig] = {
    "msclap-2022": CLAPConfig(),
    # The reference code's HTS-AT builds its front-end from its own module config, not from the
    # release's YAML: mel filters laid out for 32 kHz, 50-14000 Hz, applied to 44.1 kHz audio.
    "msclap-2023": CLAPConfig(
        sample_rate=44100,
        clip_seconds=7.0,
        n_fft=1024,
        hop_length=320,
        n_mels=64,
        fmin=50.0,
        fmax=14000.0,
        mel_filter_rate=32000,
        audio_encoder="htsat",
        audio_dim=768,
        audio_classes=0,
        htsat=dict(HTSAT_TINY),
        text_config=dict(GPT2_BASE),
        text_pooling="last",
        text_max_length=1024,
        tokenizer="gpt2",
        text_suffix=" <|endoftext|>",
        pad_token="!",
    ),
    # Seconds to build and run on a CPU: unit tests and examples.
    "tiny": CLAPConfig(
        sample_rate=16000,
        clip_seconds=1.0,
        n_fft=512,
        hop_length=160,
        n_mels=32,
        fmin=20.0,
        fmax=8000.0,
        audio_channels=(8, 16, 32, 64, 128, 128),
        audio_dim=128,
        audio_classes=0,
        text_config=_tiny_text(hidden=32, layers=2, heads=2, max_len=64),
        text_pooling="mean",
        text_max_length=32,
        tokenizer=BASIC,
        proj_dim=64,
        proj_dropout=0.1,
    ),
    # msclap 2023's family (HTS-AT + GPT-2 with last-token pooling) at the size of "tiny".
    "tiny-htsat": CLAPConfig(
        sample_rate=16000,
        clip_seconds=1.0,
        n_fft=512,
        hop_length=160,
        n_mels=16,
        fmin=20.0,
        fmax=8000.0,
        audio_encoder="htsat",
        audio_dim=64,
        audio_classes=0,
        htsat={
            **HTSAT_TINY,
            "spec_size": 64,
            "window_size": 4,
            "patch_embeds_hidden_size": 32,
            "depths": [1, 1],
            "num_attention_heads": [2, 4],
            "drop_path_rate": 0.0,
        },
        text_config=_tiny_gpt2(hidden=32, layers=2, heads=2, max_len=64),
        text_pooling="last",
        text_max_length=32,
        tokenizer=BASIC,
        proj_dim=64,
        proj_dropout=0.1,
    ),
    # Trains in minutes on a CPU: the offline demo.
    "small": CLAPConfig(
        sample_rate=16000,
        clip_seconds=2.0,
        n_fft=512,
        hop_length=256,
        n_mels=48,
        fmin=20.0,
        fmax=8000.0,
        audio_channels=(16, 32, 64, 128, 256, 256),
        audio_dim=256,
        audio_classes=0,
        audio_freq_position=True,  # binds pitch words: plain CNN14 is nearly transposition-invariant
        # Level and register measured from the log-mel, one direction each in the shared space: "loud"
        # learnt on other instruments then carries to a cello (demo: generalized zero-shot 92.5 % vs 62.9 %).
        audio_descriptors=True,
        # No transformer layer: word + position embeddings, mean-pooled. Trained from scratch on a few
        # thousand captions, attention layers bind a word to the words it was seen with; without them
        # a prompt is the sum of its words, so "high" learnt on other instruments composes with
        # "flute" (held-out attribute binding 87 % vs 65 % with two layers, demo seed 0).
        text_config=_tiny_text(hidden=128, layers=0, heads=4, max_len=64),
        text_pooling="mean",
        text_max_length=48,
        tokenizer=BASIC,
        proj_dim=128,
        proj_dropout=0.1,
    ),
}


class _Presets(Mapping):
    """Read-only view of the named architectures; every lookup returns a fresh deep copy."""

    def __getitem__(self, name: str) -> CLAPConfig:
        return copy.deepcopy(_PRESETS[name])

    def __iter__(self) -> Iterator[str]:
        return iter(_PRESETS)

    def __len__(self) -> int:
        return len(_PRESETS)

    def __repr__(self) -> str:
        return f"PRESETS({', '.join(_PRESETS)})"


#: Named architectures (random weights; released weights are in :mod:`skclap.registry`).
PRESETS: Mapping[str, CLAPConfig] = _Presets()


def preset_config(name: str) -> CLAPConfig:
    """A fresh copy of a named architecture's config."""
    if name not in _PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(_PRESETS)}")
    return PRESETS[name]


class AudioEncoder(nn.Module):
    """Waveforms ``(batch, samples)`` -> projected audio embeddings ``(batch, proj_dim)``."""

    def __init__(self, cfg: CLAPConfig) -> None:
        super().__init__()
        self.frontend = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax, filter_rate=cfg.mel_filter_rate)
        self.backbone: nn.Module
        if cfg.audio_encoder == "htsat":
            self.backbone = HTSAT(cfg.htsat, cfg.n_mels)
            if self.backbone.hidden_size != cfg.audio_dim:
                raise ValueError(f"audio_dim {cfg.audio_dim} does not match the HTS-AT's width {self.backbone.hidden_size}")
        else:
            self.backbone = Cnn14(cfg.n_mels, cfg.audio_channels, cfg.audio_dim, cfg.audio_classes, cfg.audio_freq_position)
        self.descriptors = Descriptors(cfg.n_mels) if cfg.audio_descriptors else None
        extra = Descriptors.size if self.descriptors is not None else 0
        self.projection = Projection(cfg.audio_dim + extra, cfg.proj_dim, cfg.proj_dropout)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):  # the front-end stays in float32
            mel = self.frontend(wave)
        return self.projection(with_descriptors(self.backbone(mel), self.descriptors, mel))


class TextEncoder(nn.Module):
    """Token ids -> projected text embeddings ``(batch, proj_dim)``."""

    def __init__(self, cfg: CLAPConfig) -> None:
        super().__init__()
        self.backbone = TextBackbone(cfg.text_config, cfg.text_pooling)
        self.projection = Projection(self.backbone.hidden_size, cfg.proj_dim, cfg.proj_dropout)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        return self.projection(self.backbone(input_ids, attention_mask, inputs_embeds, **extra))


#: Anything with CLAPModel's surface (config, encode_audio, encode_text, tokenize, logit_scale,
#: audio_encoder, audio_settings, ...): CLAPModel itself and the backends of :mod:`skclap.backends`.
ClapLike = Any


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
        self.logit_scale = nn.Parameter(torch.tensor(float(self.config.logit_scale_init)))
        self._tokenizer = None
        self.tokenizer = tokenizer
        #: Where the weights came from (a checkpoint name or directory); None for in-memory weights.
        self.source: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, seed: int | None = 0, tokenizer: Any = None, **overrides: Any) -> CLAPModel:
        """A randomly initialised model of a named architecture (see :data:`PRESETS`); keyword
        arguments replace fields of its :class:`CLAPConfig` (e.g. ``clip_seconds=1.0``)."""
        config = dataclasses.replace(preset_config(name), **overrides) if overrides else preset_config(name)
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
            self.tokenizer = load_tokenizer(self.config.tokenizer)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        pad = self.config.pad_token
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
        return tokenize_with_suffix(self.tokenizer, texts, self.config.text_suffix, self.text_limit(), self.device)

    def text_limit(self) -> int:
        """The longest text in tokens: ``text_max_length``, and never past the tower's positions."""
        cfg = self.config.text_config
        positions = cfg.get("max_position_embeddings", cfg.get("n_positions"))
        return int(min(self.config.text_max_length, positions)) if positions else int(self.config.text_max_length)

    @property
    def window_padding(self) -> str:
        """How a clip shorter than one window fills it (:data:`skclap.audio.PADDINGS`): msclap tiles."""
        return "repeat"

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
