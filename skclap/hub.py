"""Access to the Hugging Face hub: offline detection (read at call time) and cache-then-hub loading."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

__all__ = ["from_cache_or_hub", "hub_offline"]

_TRUE = ("1", "true", "yes", "on")
T = TypeVar("T")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or at import."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return True
    return bool(constants.HF_HUB_OFFLINE)


def from_cache_or_hub(
    load: Callable[[bool], T], *, local: bool = False, errors: tuple[type[BaseException], ...] = (OSError, ValueError)
) -> T:
    """``load(local_files_only)``: first from the local Hugging Face cache, then, unless offline (or
    ``local``: a directory on disk), from the hub. Raises the last error when neither has it."""
    attempts = [True] if (local or hub_offline()) else [True, False]
    last: BaseException | None = None
    for local_only in attempts:
        try:
            return load(local_only)
        except errors as err:  # not cached / no network / hub error: try the next source
            last = err
    assert last is not None
    raise last
