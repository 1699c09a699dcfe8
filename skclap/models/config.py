"""A CLAP model's configuration, as nested data: front-end, audio tower, text tower, shared space.

``config.json`` holds the four sections::

    {"frontend": {"sample_rate": 44100, "clip_seconds": 5.0, "n_mels": 64, ...},
     "audio": {"name": "cnn14", "channels": [...], "dim": 2048, ...},
     "text": {"transformer": {...transformers config...}, "pooling": "cls", "tokenizer": ..., ...},
     "space": {"dim": 1024, "dropout": 0.5, "logit_scale_init": 2.659}}

The audio section names a tower of :mod:`skclap.models.towers` and carries that tower's own options,
which the tower checks when it is built. Checkpoints written before the sections existed (every field
at the top level) are read by :func:`upgrade_flat_config`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BERT_BASE_UNCASED", "CNN14_2022", "CLAPConfig", "FrontendConfig", "SpaceConfig", "TextConfig", "upgrade_flat_config"]


@dataclass
class FrontendConfig:
    """Sample rate, window length and the log-mel spectrogram (:class:`skclap.frontend.LogMel`)."""

    sample_rate: int = 44100
    clip_seconds: float = 5.0
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    mel_filter_rate: int | None = None  # the rate the mel filters assume; None: sample_rate
    # Windows of a long item more than this many dB below its loudest window (RMS) are left out of
    # its mean: the silence before and after the playing says nothing of what plays. None: every
    # window counts, as the released models' reference code has it.
    quiet_window_db: float | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.clip_seconds <= 0:
            raise ValueError("sample_rate and clip_seconds must be positive")
        if self.quiet_window_db is not None and not self.quiet_window_db > 0:
            raise ValueError(f"quiet_window_db must be a positive number of dB or None; got {self.quiet_window_db}")

    @property
    def window_samples(self) -> int:
        """Samples in one model window (``clip_seconds * sample_rate``)."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Log-mel frames in one window (centred STFT)."""
        return self.window_samples // self.hop_length + 1


#: BERT-base uncased, the 2022 release's text tower (the default).
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


@dataclass
class TextConfig:
    """The text tower: a transformers config, its pooling and how texts are tokenised."""

    transformer: dict[str, Any] = field(
        default_factory=lambda: dict(BERT_BASE_UNCASED)
    )  # a transformers config ({"model_type": "bert", ...})
    pooling: str = "cls"  # "cls", "mean" or "last"
    # the longest text in tokens (suffix and special tokens included): msclap pads to 100 (2022) or
    # 77 (2023) tokens but never truncates, so its releases take every text their tower's positions hold
    max_length: int = 512
    tokenizer: str = "bert-base-uncased"
    suffix: str = ""  # appended to every text before tokenizing (msclap 2023: " <|endoftext|>")
    pad_token: str | None = None  # set on the tokenizer when it has none (msclap 2023: "!")


@dataclass
class SpaceConfig:
    """The shared space: projection width and dropout, and the temperature's starting value."""

    dim: int = 1024
    dropout: float = 0.5
    logit_scale_init: float = math.log(1 / 0.07)


#: The 2022 release's audio tower (the default).
CNN14_2022: dict[str, Any] = {
    "name": "cnn14",
    "channels": [64, 128, 256, 512, 1024, 2048],
    "dim": 2048,
    "classes": 527,
    "freq_position": False,
}

_SECTIONS = {"frontend": FrontendConfig, "text": TextConfig, "space": SpaceConfig}


def _section(cls: type, value: Any, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"the {name!r} section must be an object of fields; got {value!r:.80}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"unknown {name!r} fields {unknown}; {cls.__name__} has {sorted(known)}")
    return cls(**value)


@dataclass
class CLAPConfig:
    """Everything that defines a CLAP model's shape and preprocessing, in four sections.

    Defaults are the 2022 release (Elizalde et al.): 44.1 kHz, 5 s windows, 64 mels 50-14000 Hz,
    CNN14 (2048-d), BERT-base uncased ([CLS], 768-d), 1024-d projections. Named architectures are in
    :data:`skclap.models.PRESETS`.
    """

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    audio: dict[str, Any] = field(default_factory=lambda: dict(CNN14_2022))  # {"name": tower, **its options}
    text: TextConfig = field(default_factory=TextConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            setattr(self, name, _section(cls, getattr(self, name), name))
        if not isinstance(self.audio, dict) or not isinstance(self.audio.get("name"), str):
            raise ValueError(f'the "audio" section names its tower: {{"name": "cnn14", ...}}; got {self.audio!r:.120}')
        self.audio = copy.deepcopy(self.audio)

    # What every model's config offers (the backends' configs have the same three).
    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def window_samples(self) -> int:
        """Samples in one model window."""
        return self.frontend.window_samples

    @property
    def proj_dim(self) -> int:
        """Width of the shared space."""
        return self.space.dim

    def to_dict(self) -> dict[str, Any]:
        """The nested form ``config.json`` holds."""
        return {
            "frontend": dataclasses.asdict(self.frontend),
            "audio": copy.deepcopy(self.audio),
            "text": dataclasses.asdict(self.text),
            "space": dataclasses.asdict(self.space),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CLAPConfig:
        """Read the nested form, or the flat form checkpoints were saved in before (see :func:`upgrade_flat_config`)."""
        d = dict(d)
        if "frontend" not in d and "audio" not in d:
            d = upgrade_flat_config(d)
        unknown = sorted(set(d) - {"frontend", "audio", "text", "space"})
        if unknown:
            raise ValueError(f"unknown CLAP config sections {unknown}; a config has frontend, audio, text and space")
        return cls(**copy.deepcopy(d))

    def replace(self, **sections: dict[str, Any]) -> CLAPConfig:
        """A copy with some fields of some sections changed::

            config.replace(frontend={"clip_seconds": 1.0}, audio={"freq_position": False}, space={"dropout": 0.0})

        An ``audio`` update that names another tower replaces the whole section.
        """
        d = self.to_dict()
        for name, change in sections.items():
            if name not in d:
                raise ValueError(f"unknown config section {name!r}; choose from {sorted(d)}")
            if not isinstance(change, dict):
                raise ValueError(f"{name}= takes a dict of the fields to change; got {change!r:.80}")
            if name == "audio" and change.get("name", d["audio"]["name"]) != d["audio"]["name"]:
                d["audio"] = dict(change)
            else:
                d[name] = {**d[name], **change}
        return CLAPConfig.from_dict(d)

    def audio_settings(self) -> dict[str, Any]:
        """Everything besides the weights that changes an audio embedding (front-end, tower, space)."""
        d = self.to_dict()
        return {"frontend": d["frontend"], "audio": d["audio"], "space": d["space"]}


# The flat form: which section and field each top-level key went to.
_FLAT = {
    **{k: ("frontend", k) for k in ("sample_rate", "clip_seconds", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "mel_filter_rate")},
    "text_config": ("text", "transformer"),
    "text_pooling": ("text", "pooling"),
    "text_max_length": ("text", "max_length"),
    "tokenizer": ("text", "tokenizer"),
    "text_suffix": ("text", "suffix"),
    "pad_token": ("text", "pad_token"),
    "proj_dim": ("space", "dim"),
    "proj_dropout": ("space", "dropout"),
    "logit_scale_init": ("space", "logit_scale_init"),
}
_FLAT_AUDIO = ("audio_encoder", "audio_channels", "audio_dim", "audio_classes", "audio_freq_position", "audio_descriptors", "htsat")


def upgrade_flat_config(flat: dict[str, Any]) -> dict[str, Any]:
    """The nested form of a config saved with every field at the top level (skclap 0.1).

    The CNN14's options become the ``cnn14`` tower's (``audio_channels`` -> ``channels``,
    ``audio_freq_position`` -> ``freq_position``, ...); an HTS-AT's ``htsat`` fields become the
    ``htsat`` tower's. A model that used what is no longer part of skclap raises a ValueError that
    says where it went.
    """
    unknown = sorted(set(flat) - set(_FLAT) - set(_FLAT_AUDIO))
    if unknown:
        raise ValueError(f"unknown CLAP config keys: {unknown}")
    if flat.get("audio_descriptors"):
        raise ValueError(
            "this model has level and register descriptors beside its CNN14 (audio_descriptors: true), which are "
            "no longer part of skclap: they are the audio tower 'cnn14-descriptors' of experiments/composition/ in "
            "skclap's repository; retrain there with that tower to use them"
        )
    out: dict[str, dict[str, Any]] = {"frontend": {}, "text": {}, "space": {}}
    for key, value in flat.items():
        if key in _FLAT:
            section, name = _FLAT[key]
            out[section][name] = value
    tower = flat.get("audio_encoder", "cnn14")
    if tower == "htsat":
        audio = {"name": "htsat", **flat.get("htsat", {})}
    elif tower == "cnn14":
        audio = dict(CNN14_2022)  # the flat form's defaults
        for key, name in (
            ("audio_channels", "channels"),
            ("audio_dim", "dim"),
            ("audio_classes", "classes"),
            ("audio_freq_position", "freq_position"),
        ):
            if key in flat:
                audio[name] = list(flat[key]) if name == "channels" else flat[key]
    else:
        raise ValueError(f"unknown audio_encoder {tower!r} in a flat config; it knew 'cnn14' and 'htsat'")
    return {**out, "audio": audio}
