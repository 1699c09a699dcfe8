"""Embedding cache: re-embedding the same audio with the same model reads a stored vector.

Keys combine the model's fingerprint (a hash of its audio tower's weights and preprocessing) with the
item's identity (path + size + modification time, or a hash of the waveform and its rate). Two stores:

- :class:`MemoryCache` — process-wide, bounded in bytes, least recently used evicted. Estimator
  clones made by ``cross_val_score`` or ``GridSearchCV`` share it, so each clip is embedded once.
- :class:`DiskCache` — one ``.npy`` file per entry under a directory, written atomically (temporary
  file + rename), so concurrent processes never see half a file; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .fileio import write_atomic

if TYPE_CHECKING:
    import torch

__all__ = ["DiskCache", "MemoryCache", "get_cache", "item_key", "memory_cache", "model_fingerprint"]


def _hash_array(h: Any, arr: Any) -> None:
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(arr))
    if a.dtype == object:
        raise TypeError("object array")
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.data)


def item_key(item: Any, sample_rate: int | None) -> str | None:
    """A stable identity for an audio item, or None when it cannot be fingerprinted (never cached)."""
    h = hashlib.blake2b(digest_size=20)
    try:
        if isinstance(item, (str, os.PathLike)):
            p = Path(item).resolve()
            st = p.stat()
            h.update(f"path:{p}:{st.st_size}:{st.st_mtime_ns}".encode())
        elif isinstance(item, Mapping) and "array" in item:
            h.update(f"array@{item.get('sampling_rate', sample_rate)}:".encode())
            _hash_array(h, item["array"])
        elif isinstance(item, Mapping) and "path" in item:
            return item_key(item["path"], None)
        elif isinstance(item, tuple) and len(item) == 2 and np.isscalar(item[1]):
            h.update(f"array@{item[1]!r}:".encode())
            _hash_array(h, item[0])
        else:
            h.update(f"array@{sample_rate}:".encode())
            _hash_array(h, item)
    except (OSError, TypeError, ValueError):
        return None  # missing file, ragged or odd input: the loader reports it properly
    return h.hexdigest()


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    """Hash of a module's parameters and buffers (and ``extra``, e.g. preprocessing settings).

    Memoised per module and invalidated when its :func:`weights_stamp` changes.
    """
    import torch  # here, not at the top: the ONNX engine caches vectors without torch

    from .models.state import weights_stamp

    tensors = list(module.state_dict(keep_vars=True).items())
    stamp = weights_stamp(module)
    memo = _FINGERPRINTS.get(module)
    if memo is not None and memo[0] == stamp:
        digest = memo[1]
    else:
        h = hashlib.blake2b(digest_size=20)
        for name, t in tensors:
            h.update(name.encode())
            _hash_array(h, t.detach().float() if t.dtype == torch.bfloat16 else t)
        digest = h.hexdigest()
        _FINGERPRINTS[module] = (stamp, digest)
    return hashlib.blake2b(f"{digest}|{extra}".encode(), digest_size=20).hexdigest()


class MemoryCache:
    """A thread-safe LRU map from keys to vectors, bounded by total bytes."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        value = np.array(value, dtype=np.float32, copy=True)
        value.setflags(write=False)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and self._data:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)


class DiskCache:
    """Vectors stored as ``<dir>/<key[:2]>/<key>.npy``; safe to share between processes."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            value = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # corrupt entry: recompute
            return None
        if value.dtype != np.float32 or value.ndim != 1 or not np.all(np.isfinite(value)):
            path.unlink(missing_ok=True)
            return None
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.asarray(value, dtype=np.float32)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.save(f, array)

        write_atomic(path, write)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.npy"))


_MEMORY = MemoryCache()


def memory_cache() -> MemoryCache:
    """The process-wide memory cache (``cache=True``)."""
    return _MEMORY


def get_cache(spec: Any) -> MemoryCache | DiskCache | None:
    """``True`` -> the process-wide memory cache; a path -> a disk cache there; ``False``/None -> none."""
    if spec is None or spec is False:
        return None
    if spec is True or spec == "memory":
        return _MEMORY
    if isinstance(spec, (str, os.PathLike)):
        return DiskCache(spec)
    if isinstance(spec, (MemoryCache, DiskCache)):
        return spec
    raise ValueError(f"cache must be True, False, 'memory', a directory path or a cache object; got {spec!r}")
