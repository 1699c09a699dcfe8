"""Checkpoints: skclap's own directory format, the registry of released weights, msclap import.

A skclap checkpoint is a directory with ``config.json`` (the :class:`CLAPConfig`),
``model.safetensors`` and the tokenizer files. Released checkpoints are resolved by name through
:data:`REGISTRY`: first ``$SKCLAP_HOME/<name>/`` (default ``~/.cache/skclap``), then the Hugging Face
cache, then the hub; when none has it, the error says which file to place where.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fileio import write_atomic
from .frontend import mel_filterbank
from .hub import hub_offline
from .models.clap import PRESETS, CLAPConfig, CLAPModel

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "REGISTRY",
    "cache_dir",
    "import_msclap",
    "load_model",
    "resolve_checkpoint",
    "save_model",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "skclap-clap"


class CheckpointError(OSError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


@dataclass(frozen=True)
class Checkpoint:
    """A released checkpoint: where its file lives and how to read it."""

    name: str
    repo_id: str
    filename: str
    format: str  # "msclap" (a torch pickle of the reference code's state dict)
    preset: str  # the architecture in PRESETS
    tokenizer: str
    description: str
    supported: bool = True

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/blob/main/{self.filename}"


REGISTRY: dict[str, Checkpoint] = {
    "msclap-2022": Checkpoint(
        name="msclap-2022",
        repo_id="microsoft/msclap",
        filename="CLAP_weights_2022.pth",
        format="msclap",
        preset="msclap-2022",
        tokenizer="bert-base-uncased",
        description="CLAP 2022 (Elizalde et al.): CNN14 + BERT-base uncased, 128k pairs; ESC-50 zero-shot 82.6 %",
    ),
    "msclap-2023": Checkpoint(
        name="msclap-2023",
        repo_id="microsoft/msclap",
        filename="CLAP_weights_2023.pth",
        format="msclap",
        preset="msclap-2023",
        tokenizer="gpt2",
        description="CLAP 2023: HTSAT + GPT-2 encoders (not supported yet)",
        supported=False,
    ),
}


def cache_dir() -> Path:
    """skclap's own cache of checkpoints: ``$SKCLAP_HOME`` or ``~/.cache/skclap``."""
    return Path(os.environ.get("SKCLAP_HOME", Path.home() / ".cache" / "skclap")).expanduser()


def resolve_checkpoint(name: str) -> Path:
    """The local path of a registered checkpoint's file, downloading it only when the hub is reachable."""
    if name not in REGISTRY:
        raise CheckpointError(f"unknown checkpoint name {name!r}; registered: {sorted(REGISTRY)}, or pass a directory")
    ckpt = REGISTRY[name]
    if not ckpt.supported:
        raise CheckpointError(f"checkpoint {name!r} is not supported yet: {ckpt.description}")
    local = cache_dir() / name / ckpt.filename
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    attempts = [True] if hub_offline() else [True, False]
    for local_only in attempts:
        try:
            return Path(hf_hub_download(ckpt.repo_id, ckpt.filename, local_files_only=local_only))
        except Exception:  # not cached / no network / hub error: fall through to the explanation
            continue
    raise CheckpointError(
        f"checkpoint {name!r} is not available offline. Download {ckpt.filename} from {ckpt.url} and place "
        f"it at {local} (or set SKCLAP_HOME), or pass the file's path directly, e.g. "
        f"load_model('/path/to/{ckpt.filename}')."
    )


# ---------------------------------------------------------------------------- skclap format
def save_model(model: CLAPModel, directory: str | os.PathLike) -> Path:
    """Write ``model`` as a skclap checkpoint directory (each file replaced atomically)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": FORMAT}))
    meta = {"format": FORMAT, **model.config.to_dict()}
    write_atomic(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
    model.tokenizer.save_pretrained(out)
    return out


def _load_dir(path: Path, device: str | torch.device | None, tokenizer: Any) -> CLAPModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}: not a skclap checkpoint directory")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {err}") from None
    if meta.pop("format", None) != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a skclap config (no \"format\": \"{FORMAT}\")")
    try:
        config = CLAPConfig.from_dict(meta)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_path}: {err}") from None
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}")
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} could not be read (truncated or corrupt?): {err}") from None
    tok = tokenizer
    if tok is None and (path / "tokenizer_config.json").is_file():
        from .models.tokenizer import load_tokenizer

        tok = load_tokenizer(path)
    model = CLAPModel(config, tokenizer=tok)
    _load_state(model, state, str(weights))
    model.source = str(path)
    return model.to(device or "cpu").eval()


def _load_state(model: CLAPModel, state: dict[str, torch.Tensor], origin: str) -> None:
    """``load_state_dict`` that reports every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if wrong:
            parts.append(
                "shape mismatch: "
                + show([f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong])
            )
        raise CheckpointError(f"{origin} does not fit the model configuration: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------- msclap import
#: msclap (reference code) prefixes -> skclap module names.
_MSCLAP_PREFIXES = [
    ("audio_encoder.base.", "audio_encoder.backbone."),
    ("audio_encoder.projection.", "audio_encoder.projection."),
    ("caption_encoder.base.", "text_encoder.backbone.model."),
    ("caption_encoder.projection.", "text_encoder.projection."),
    ("logit_scale", "logit_scale"),
]
#: Keys of the reference code that skclap derives instead of storing: the torchlibrosa front-end
#: (checked against ours below) and BERT's position-id buffer.
_MSCLAP_DERIVED = re.compile(
    r"^audio_encoder\.base\.(spectrogram_extractor|logmel_extractor)\.|\.embeddings\.position_ids$"
)


def _read_torch_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, zip errors, disallowed globals ...
        raise CheckpointError(f"{path} could not be read as a torch checkpoint: {type(err).__name__}: {err}") from None
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors, or one under 'model')")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def import_msclap(
    path: str | os.PathLike,
    tokenizer: Any = None,
    config: CLAPConfig | None = None,
    device: str | torch.device | None = None,
) -> CLAPModel:
    """Load a checkpoint in the reference code's format (``CLAP_weights_2022.pth``).

    The file is read with ``torch.load(weights_only=True)``; its ``"model"`` state dict is mapped
    onto skclap's modules, and any key left over or missing is an error. The text encoder's weights
    come from the checkpoint; ``tokenizer`` (a directory, hub id or tokenizer object; default the
    config's, ``bert-base-uncased``) supplies the vocabulary. ``config`` defaults to the 2022 release.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"msclap checkpoint file not found: {os.fspath(path)!r}")
    config = dataclasses.replace(config if config is not None else PRESETS["msclap-2022"])
    if isinstance(tokenizer, (str, os.PathLike)):
        config.tokenizer = os.fspath(tokenizer)
        tokenizer = None
    state = _read_torch_state(path)

    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if _MSCLAP_DERIVED.search(key):
            continue
        for old, new in _MSCLAP_PREFIXES:
            if key.startswith(old):
                mapped[new + key[len(old) :]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{path} has keys that are not part of the msclap CLAP model: {unknown[:8]}")
    _check_msclap_frontend(state, config, path)

    model = CLAPModel(config, tokenizer=tokenizer)
    _load_state(model, mapped, str(path))
    model.source = os.fspath(path)
    return model.to(device or "cpu").eval()


def _check_msclap_frontend(state: dict[str, torch.Tensor], config: CLAPConfig, path: Path) -> None:
    """The checkpoint's stored mel filters must be the ones our front-end computes from the config."""
    mel = state.get("audio_encoder.base.logmel_extractor.melW")
    if mel is None:
        return
    ours = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax).T
    if tuple(mel.shape) != ours.shape or not np.allclose(mel.numpy(), ours, atol=1e-5):
        raise CheckpointError(
            f"{path}: its mel filterbank {tuple(mel.shape)} does not match the configured front-end "
            f"(sr={config.sample_rate}, n_fft={config.n_fft}, n_mels={config.n_mels}, "
            f"fmin={config.fmin}, fmax={config.fmax})"
        )


# ---------------------------------------------------------------------------- entry point
def load_model(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    tokenizer: Any = None,
    config: CLAPConfig | None = None,
) -> CLAPModel:
    """Load a CLAP model: a registered name, a skclap directory, an msclap ``.pth`` file, or a LAION
    CLAP checkpoint in the transformers format (hub id or directory; see :mod:`skclap.backends`)."""
    from .backends.laion import LaionCLAP, is_laion_checkpoint

    name = os.fspath(name_or_path)
    if is_laion_checkpoint(name):
        return LaionCLAP.from_pretrained(name, device=device)
    if name in REGISTRY:
        ckpt = REGISTRY[name]
        file = resolve_checkpoint(name)
        cfg = config if config is not None else PRESETS[ckpt.preset]
        model = import_msclap(file, tokenizer=tokenizer or ckpt.tokenizer, config=cfg, device=device)
        model.source = name
        return model
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_dir(path, device, tokenizer)
    if path.is_file():
        if path.suffix in (".pth", ".pt", ".ckpt", ".bin"):
            return import_msclap(path, tokenizer=tokenizer, config=config, device=device)
        raise CheckpointError(f"{name!r} is a file but not a torch checkpoint (.pth/.pt); pass a skclap directory")
    raise CheckpointError(
        f"no checkpoint named {name!r}: not a registered name ({', '.join(sorted(REGISTRY))}, or the LAION "
        f"checkpoints of skclap.backends.LAION_CHECKPOINTS) "
        f"and no such directory or file"
    )
