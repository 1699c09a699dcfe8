"""Access to the Hugging Face hub: offline detection (read at call time) and cache-then-hub loading."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

__all__ = ["explain_hub_error", "from_cache_or_hub", "hub_offline"]

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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def explain_hub_error(err: BaseException) -> str:
    """What went wrong when fetching from the hub, in a clause, with the original error kept:
    a full disk, an HTTP status, a download cut short, a hub that was not reached, or the error."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            where = f" writing {e.filename}" if e.filename else ""
            return f"no space left on the device{where} ({_first_line(e)}); free space or set HF_HUB_CACHE to a larger disk"
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status is not None and status >= 400:
            return f"the hub answered HTTP {status} ({_first_line(e)})"
    for e in chain:
        if "Consistency check failed" in str(e) or type(e).__name__ in ("RemoteProtocolError", "IncompleteRead", "ChunkedEncodingError"):
            return f"the download was cut short ({_first_line(e)}); run the command again to resume it"
    for e in chain:
        if type(e).__name__ in ("ConnectError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "OfflineModeIsEnabled"):
            return f"the hub was not reached ({_first_line(e)})"
    return _first_line(err)
