"""Checkpoints: skclap's directory format, released files (msclap 2022/2023, laion_clap), one entry point.

A skclap checkpoint is a directory with ``config.json`` (the :class:`CLAPConfig`),
``model.safetensors`` and the tokenizer files. :func:`load_model` takes every form of model name of
:mod:`skclap.registry`. Released files are found in ``$SKCLAP_HOME/<name>/`` (default
``~/.cache/skclap``), then in the Hugging Face cache, then on the hub; when none has them, the error
says which file to place where. Released ``.pth``/``.pt`` files are read without running code in
them (``torch.load(weights_only=True)`` with numpy scalars allowed, or an allow-listed unpickler for
the opcodes that loader cannot parse), memory-mapped, and every key is mapped or reported
(:mod:`skclap.convert`).
"""

from __future__ import annotations

import os
import pickle
import threading
import types
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import convert
from .backends.laion import LaionCLAP, is_laion_checkpoint
from .devices import resolve_device, same_device
from .exceptions import CheckpointError, UnknownModelError
from .frontend import mel_filterbank
from .hub import explain_hub_error, from_cache_or_hub, hub_offline
from .models.clap import CLAPModel, preset_config
from .models.config import CLAPConfig
from .models.protocol import ClapLike, check_clap_model
from .models.serialization import load_state, save_directory, weights_to_follow
from .registry import PRETRAINED, Pretrained, bundled_path, parse_spec, unknown_name_message

__all__ = [
    "cache_dir",
    "clear_model_cache",
    "import_laion",
    "import_msclap",
    "load_model",
    "read_state_dict",
    "resolve_model",
    "resolve_checkpoint",
    "save_model",
    "trainable",
]


def cache_dir() -> Path:
    """skclap's own cache of checkpoints: ``$SKCLAP_HOME`` or ``~/.cache/skclap``."""
    return Path(os.environ.get("SKCLAP_HOME", Path.home() / ".cache" / "skclap")).expanduser()


def resolve_checkpoint(name: str) -> Path:
    """The local path of a registered checkpoint's file, downloading it only when the hub is reachable."""
    if name not in PRETRAINED or PRETRAINED[name].filename is None:
        files = sorted(n for n, p in PRETRAINED.items() if p.filename)
        raise UnknownModelError(f"unknown checkpoint file name {name!r}; registered: {files}, or pass a file's path")
    ckpt = PRETRAINED[name]
    filename = str(ckpt.filename)
    local = cache_dir() / name / filename
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    place = (
        f"Where the hub is reachable, run `{ckpt.download}` (or download {ckpt.url}); or place the file at "
        f"{local} (or set SKCLAP_HOME), or pass its path, e.g. load_model('/path/to/{filename}')."
    )

    def download(local_only: bool) -> str:
        return hf_hub_download(ckpt.repo_id, filename, local_files_only=local_only)

    try:  # every failure is reported with its cause, whatever the hub client raised
        return Path(from_cache_or_hub(download, errors=(Exception,)))
    except Exception as err:
        if hub_offline():
            raise CheckpointError(
                f"checkpoint {name!r} is not available offline (HF_HUB_OFFLINE is set and the file is not cached). {place}"
            ) from err
        raise CheckpointError(
            f"checkpoint {name!r}: downloading {filename} from {ckpt.repo_id} failed: {explain_hub_error(err)}. {place}"
        ) from err


# ---------------------------------------------------------------------------- skclap format
def save_model(model: CLAPModel | LaionCLAP, directory: str | os.PathLike) -> Path:
    """Write ``model`` as a checkpoint directory: skclap's format, or transformers' for LAION models."""
    if isinstance(model, LaionCLAP):
        return model.save_pretrained(directory)
    return save_directory(model, directory)


# ------------------------------------------------------------------------- released files
#: Globals a released checkpoint may name: tensors, ordered dicts, numpy scalars and arrays.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how pickle protocols 0-2 write bytes (numpy scalars' payload)
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _AllowListUnpickler(pickle.Unpickler):
    """Python's unpickler (every protocol) that resolves only :data:`_SAFE_GLOBALS`: anything else,
    e.g. a function a malicious file wants called, is refused before it can run."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module.startswith("numpy.dtypes") and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a checkpoint")


_ALLOW_LIST_PICKLE = types.SimpleNamespace(
    Unpickler=_AllowListUnpickler,
    load=lambda f, **kw: _AllowListUnpickler(f, **kw).load(),
    __name__="skclap_allow_list_pickle",
)


def _numpy_globals() -> list[Any]:
    """numpy scalars and dtypes, under the names numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)
    pickle them: laion_clap's optimizer state holds numpy scalars."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype, *dtypes]


def _torch_load(path: Path) -> Any:
    """Read a torch file without running code in it. Files in torch's zip format are memory-mapped,
    so that optimizer state and other entries never used cost no memory."""
    kw: dict[str, Any] = {"map_location": "cpu", "mmap": zipfile.is_zipfile(path)}
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_globals()):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, weights_only=True, **kw)
    except pickle.UnpicklingError:
        # torch's weights-only unpickler stops at some opcodes of pickle protocols 3 and 4; the
        # allow-list unpickler reads every protocol, running nothing.
        return torch.load(path, weights_only=False, pickle_module=_ALLOW_LIST_PICKLE, **kw)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a released ``.pth``/``.pt`` file (its ``"model"`` or ``"state_dict"`` entry, or
    the file itself), without the ``module.`` prefix of data-parallel training."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {os.fspath(path)!r}")
    try:
        obj = _torch_load(path)
    except Exception as err:  # pickle errors, zip errors, disallowed globals ...
        raise CheckpointError(f"{path} could not be read as a torch checkpoint: {type(err).__name__}: {err}") from None
    state = None
    if isinstance(obj, dict):
        state = obj.get("model", obj.get("state_dict", obj))
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors, or one under 'model' or 'state_dict')")
    return convert.strip_module(state)


def _check_unknown(conv: convert.Converted, path: Path, what: str) -> None:
    if conv.unknown:
        raise CheckpointError(f"{path} has keys that are not part of the {what}: {conv.unknown[:8]}")


def _check_mel_filters(stored: torch.Tensor | None, ours: np.ndarray, path: Path, settings: str) -> None:
    """A file's stored mel filters ``(n_freqs, n_mels)`` must be the ones our front-end computes."""
    if stored is None:
        return
    if tuple(stored.shape) != ours.shape or not np.allclose(stored.float().numpy(), ours, atol=1e-5):
        raise CheckpointError(f"{path}: its mel filterbank {tuple(stored.shape)} does not match the configured front-end ({settings})")


def import_msclap(
    path: str | os.PathLike,
    tokenizer: Any = None,
    config: CLAPConfig | None = None,
    device: str | torch.device | None = None,
) -> CLAPModel:
    """Load a file in the reference code's format: ``CLAP_weights_2022.pth`` (CNN14 + BERT) or
    ``CLAP_weights_2023.pth`` (HTS-AT + GPT-2), told apart by their keys.

    Every key is mapped onto skclap's modules or reported. The text encoder's weights come from the
    file; ``tokenizer`` (a directory, hub id or tokenizer object; default the config's:
    ``bert-base-uncased`` / ``gpt2``) supplies the vocabulary. ``config`` defaults to the release's.
    """
    path = Path(path)
    state = read_state_dict(path)
    fmt = convert.detect_format(state)
    if fmt not in ("msclap-2022", "msclap-2023"):
        raise CheckpointError(f"{path} has keys that are not part of the msclap CLAP model: {list(state)[:8]}")
    conv = convert.msclap_2023(state) if fmt == "msclap-2023" else convert.msclap_2022(state)
    _check_unknown(conv, path, "msclap CLAP model")
    config = config if config is not None else preset_config(fmt)
    if isinstance(tokenizer, (str, os.PathLike)):
        config.text.tokenizer = os.fspath(tokenizer)
        tokenizer = None
    f = config.frontend
    rate = f.mel_filter_rate or f.sample_rate
    ours = mel_filterbank(rate, f.n_fft, f.n_mels, f.fmin, f.fmax).T
    _check_mel_filters(
        conv.frontend.get("logmel_extractor.melW"),
        ours,
        path,
        f"sr={rate}, n_fft={f.n_fft}, n_mels={f.n_mels}, fmin={f.fmin}, fmax={f.fmax}",
    )
    with weights_to_follow():
        model = CLAPModel(config, tokenizer=tokenizer)
    load_state(model, conv.state, str(path))
    model.source = os.fspath(path)
    return model.to(device or "cpu").eval()


def laion_feature_extractor(fused: bool) -> Any:
    """laion_clap's audio settings as a ``ClapFeatureExtractor``: 48 kHz, 10 s, 64 mels from 50 to
    14000 Hz, window 1024, hop 480 (the settings of the released HTS-AT models)."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14000,
        truncation="fusion" if fused else "rand_trunc",
        padding="repeatpad",
    )


def import_laion(path: str | os.PathLike, tokenizer: Any = None, device: str | torch.device | None = None) -> LaionCLAP:
    """Load one of laion_clap's original ``.pt`` files (``630k-audioset-best.pt``, the fusion and music
    ones) onto transformers' ``ClapModel``, run by the LAION backend.

    The architecture (HTS-AT width and depths, fusion) is read off the weights; ``tokenizer`` defaults
    to ``roberta-base`` (hub cache, or a directory). The file's mel filters are checked against the
    feature extractor's.
    """
    from transformers import ClapConfig, ClapModel

    from .models.tokenizer import load_tokenizer

    path = Path(path)
    state = read_state_dict(path)
    if convert.detect_format(state) != "laion":
        raise CheckpointError(f"{path} is not a laion_clap checkpoint (no audio_branch/text_branch keys)")
    try:
        cfg = convert.laion_config(state)
    except KeyError as err:
        raise CheckpointError(f"{path}: laion_clap checkpoint without {err.args[0]}; only HTS-AT + RoBERTa models are supported") from None
    conv = convert.laion_to_transformers(state)
    _check_unknown(conv, path, "laion_clap CLAP model")
    fe = laion_feature_extractor(cfg["audio_config"]["enable_fusion"])
    _check_mel_filters(conv.frontend.get("logmel_extractor.melW"), fe.mel_filters_slaney, path, "48 kHz, 64 mels, 50-14000 Hz")
    with torch.random.fork_rng(devices=[]), weights_to_follow():
        model = ClapModel(ClapConfig(**cfg))
    load_state(model, conv.state, str(path))
    tok = (
        tokenizer
        if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike))
        else load_tokenizer(tokenizer or "roberta-base")
    )
    # laion_clap's CLAP_Module rounds audio through int16 and cuts texts at 77 tokens
    return LaionCLAP(model, fe, tok, source=os.fspath(path), quantize_int16=True, text_max_length=77).to(device or "cpu")


_FILE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def _import_file(path: Path, tokenizer: Any, config: CLAPConfig | None, device: Any) -> CLAPModel | LaionCLAP:
    if path.suffix not in _FILE_SUFFIXES:
        raise CheckpointError(f"{os.fspath(path)!r} is a file but not a torch checkpoint (.pth/.pt); pass a checkpoint directory")
    state = read_state_dict(path)
    if convert.detect_format(state) == "laion":
        return import_laion(path, tokenizer=tokenizer, device=device)
    return import_msclap(path, tokenizer=tokenizer, config=config, device=device)


# ---------------------------------------------------------------------------- entry point
def _load_pretrained(ckpt: Pretrained, device: Any, tokenizer: Any, config: CLAPConfig | None) -> CLAPModel | LaionCLAP:
    if ckpt.format == "hf-clap":
        return LaionCLAP.from_pretrained(ckpt.repo_id, device=device)
    file = resolve_checkpoint(ckpt.name)
    model: CLAPModel | LaionCLAP
    if ckpt.format == "laion":
        model = import_laion(file, tokenizer=tokenizer or ckpt.tokenizer, device=device)
    else:
        cfg = config if config is not None else preset_config(str(ckpt.preset))
        model = import_msclap(file, tokenizer=tokenizer or ckpt.tokenizer, config=cfg, device=device)
    model.source = ckpt.name
    return model


def load_model(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = "auto",
    tokenizer: Any = None,
    config: CLAPConfig | None = None,
) -> CLAPModel | LaionCLAP:
    """Load a CLAP model by any name of :mod:`skclap.registry`: released weights (``"msclap-2023"``,
    ``"laion-630k-audioset-best"``, ``"laion/clap-htsat-fused"``), ``"preset:NAME"`` (random
    weights), ``"hf-hub:ID"``, or a path (a skclap or transformers directory, a released file).
    ``device``: ``"auto"`` or None (CUDA, then MPS, then CPU) or a device, as everywhere in skclap.
    A name registered nowhere raises :class:`~skclap.UnknownModelError` (a ``ValueError``); a file
    that is missing, unreadable or does not fit, or a download that fails, :class:`~skclap.CheckpointError`."""
    device = resolve_device(device)
    spec = parse_spec(name_or_path)
    if spec.kind == "preset":
        model = CLAPModel.from_preset(spec.value, tokenizer=tokenizer)
        return model.to(device)
    if spec.kind == "bundled":
        model = CLAPModel.from_pretrained(bundled_path(spec.value), device, tokenizer)
        model.source = spec.value
        return model
    if spec.kind == "pretrained":
        return _load_pretrained(PRETRAINED[spec.value], device, tokenizer, config)
    if spec.kind == "hf-hub":
        return LaionCLAP.from_pretrained(spec.value, device=device)
    path = Path(spec.value).expanduser()
    if path.is_dir():
        if is_laion_checkpoint(path):
            return LaionCLAP.from_pretrained(path, device=device)
        return CLAPModel.from_pretrained(path, device, tokenizer)
    if path.is_file():
        return _import_file(path, tokenizer, config, device)
    if _looks_like_path(spec.value):
        raise CheckpointError(
            f"no checkpoint directory or file at {spec.value!r}; a model is a registered name (`skclap info` lists "
            f"them), a checkpoint directory or a released .pth/.pt file"
        )
    raise UnknownModelError(unknown_name_message(spec.value))


def _looks_like_path(text: str) -> bool:
    """A name written as a path: a leading ``/``, ``~`` or ``.``, more than one ``/`` (a hub id has
    one), or a released file's suffix."""
    return (
        text.startswith(("/", "~", ".")) or text.count("/") > 1 or os.sep != "/" and os.sep in text or Path(text).suffix in _FILE_SUFFIXES
    )


# ------------------------------------------------------------------- process-wide model cache
_LOADED: OrderedDict[tuple, CLAPModel | LaionCLAP] = OrderedDict()
_LOADED_MAX = 2
_LOAD_LOCK = threading.Lock()


def _stamp(spec: str) -> tuple:
    """Identity of a checkpoint on disk, so an overwritten checkpoint is loaded again."""
    p = Path(spec).expanduser()
    files = [p / "config.json", p / "model.safetensors"] if p.is_dir() else [p]
    out: list[Any] = [str(p.resolve()) if p.exists() else spec]
    for f in files:
        if f.exists():
            st = f.stat()
            out += [st.st_size, st.st_mtime_ns]
    return tuple(out)


def resolve_model(spec: Any, device: str | torch.device | None = "auto") -> ClapLike:
    """The model ``spec`` names, on ``device``: an instance as it is (never moved: on another device
    than an explicit ``device`` it is refused; ``"auto"`` takes its own device), or any name or path
    :func:`load_model` takes, loaded once: the two most recently used are kept for the process
    (:func:`skclap.clear_caches` empties it), so that estimator clones (cross-validation folds,
    grid-search candidates) and repeated calls share them."""
    if spec is None:
        raise ValueError("model is required: a registered name (e.g. 'msclap-2022'), a checkpoint directory, or a CLAPModel")
    if not isinstance(spec, (str, os.PathLike)):
        model = check_clap_model(spec)
        if device not in (None, "auto") and not same_device(model.device, device):
            raise ValueError(
                f"the model is on {model.device} and device={str(device)!r}: skclap does not move a model it is given; "
                f"move it first (model.to({str(device)!r})) or pass device='auto' to use it where it is"
            )
        return model
    dev = resolve_device(device)
    key = (_stamp(os.fspath(spec)), str(dev))
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _LOADED[key] = load_model(spec, device=dev)
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.popitem(last=False)
        _LOADED.move_to_end(key)
        return loaded


def trainable(model: ClapLike, what: str) -> CLAPModel | LaionCLAP:
    """``model`` when skclap can train it (its own architecture or a LAION one); a ``TypeError``
    saying so otherwise (other models embed, but training needs their modules)."""
    if not isinstance(model, (CLAPModel, LaionCLAP)):
        raise TypeError(f"{what} trains the model, and skclap trains CLAPModel and LaionCLAP models; got {type(model).__name__}")
    return model


def clear_model_cache() -> None:
    """Forget the models :func:`resolve_model` keeps for the process."""
    with _LOAD_LOCK:
        _LOADED.clear()
