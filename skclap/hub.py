"""Access to the Hugging Face hub: offline detection (read at call time) and cache-then-hub loading."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = ["check_hub_reachable", "explain_hub_error", "from_cache_or_hub", "hub_offline"]

#: Seconds to wait for the hub to accept a connection before a download is attempted.
REACH_TIMEOUT = 5.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")

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


def check_hub_reachable(timeout: float = REACH_TIMEOUT) -> None:
    """Raise ``ConnectionError`` at once when the hub's host does not resolve or accept a connection
    within ``timeout`` seconds. The hub client retries a request that cannot connect, with waits in
    between, for tens of seconds before it fails; a machine without a network should hear so at
    once. Behind a proxy (``HTTPS_PROXY`` ...) the client's own connection is the only test."""
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(
            f"the hub at {constants.ENDPOINT} did not answer ({type(err).__name__}: {err}); "
            "without a network, set HF_HUB_OFFLINE=1 and load from files on disk"
        ) from None


def from_cache_or_hub(
    load: Callable[[bool], T], *, local: bool = False, errors: tuple[type[BaseException], ...] = (OSError, ValueError)
) -> T:
    """``load(local_files_only)``: first from the local Hugging Face cache, then, unless offline (or
    ``local``: a directory on disk), from the hub. Raises the last error when neither has it."""
    attempts = [True] if (local or hub_offline()) else [True, False]
    last: BaseException | None = None
    for local_only in attempts:
        try:
            if not local_only:
                check_hub_reachable()
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
