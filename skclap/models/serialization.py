"""skclap's checkpoint directory for :class:`~skclap.CLAPModel`: ``config.json``, ``model.safetensors``
and the tokenizer files; and a strict ``load_state_dict`` that reports every key that does not fit."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..exceptions import CheckpointError
from ..fileio import write_atomic

__all__ = ["CONFIG_NAME", "DERIVED", "FORMAT", "WEIGHTS_NAME", "load_directory", "load_state", "save_directory", "weights_to_follow"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "skclap-clap"

#: Buffers a model recomputes from its configuration; never read from a file.
DERIVED = re.compile(r"(\.attn_mask$|\.relative_position_index$|\.position_ids$|\.token_type_ids$|\.attn\.(bias|masked_bias)$)")


def save_directory(model: Any, directory: str | os.PathLike) -> Path:
    """Write ``model`` as a skclap checkpoint directory (each file replaced atomically)."""
    from safetensors.torch import save_file

    from .tokenizer import save_tokenizer

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": FORMAT}))
    meta = {"format": FORMAT, **model.config.to_dict()}
    write_atomic(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
    save_tokenizer(model.tokenizer, out)
    return out


def load_directory(path: str | os.PathLike, model_class: Any, device: str | torch.device | None = None, tokenizer: Any = None) -> Any:
    """Load a skclap checkpoint directory into ``model_class`` (:class:`~skclap.CLAPModel`, whose
    ``from_pretrained`` calls this; its config class is ``model_class.config_class``)."""
    path = Path(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}: not a skclap checkpoint directory")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg_path} holds a JSON {type(meta).__name__}, not an object of config fields")
    if meta.pop("format", None) != FORMAT:
        raise CheckpointError(f'{cfg_path} is not a skclap config (no "format": "{FORMAT}")')
    try:
        config = model_class.config_class.from_dict(meta)
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
        from .tokenizer import load_tokenizer

        tok = load_tokenizer(path)
    try:
        with weights_to_follow():
            model = model_class(config, tokenizer=tok)
    except (TypeError, ValueError) as err:  # a tower that is not registered, or options it does not take
        raise CheckpointError(f"{cfg_path}: {err}") from None
    load_state(model, state, str(weights))
    model.source = str(path)
    return model.to(device or "cpu").eval()


@contextmanager
def weights_to_follow() -> Iterator[None]:
    """Build a model whose every parameter is about to be overwritten by :func:`load_state` (strict:
    a key the file lacks is an error, never a random weight left in place): the random
    initialisation is skipped, which is most of a full-size text tower's construction time.
    transformers' own ``no_init_weights``, the context its ``from_pretrained`` builds models in."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        yield


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """``load_state_dict`` that reports every missing, unexpected or mis-shaped key.

    Buffers the model derives from its configuration (:data:`DERIVED`) are kept
    from the model when the file does not hold them.
    """
    own = model.state_dict()
    state = dict(state)
    for k in own:
        if k not in state and DERIVED.search(k):
            state[k] = own[k]
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
            parts.append("shape mismatch: " + show([f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong]))
        raise CheckpointError(f"{origin} does not fit the model configuration: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
