"""Rows of a collection's embedding matrix read by id from its ``.npy`` shards, without mapping them.

A search that re-ranks a few hundred candidates out of 10^7 rows needs those rows only. Reading
them through a memory map would leave every page the kernel reads around them (and its read-ahead)
in the process's resident set; ``os.pread`` copies just the rows asked for, so the search process
stays at the size of its index, whatever the collection's. The kernel is told the access is
random (``POSIX_FADV_RANDOM``), so a cold read fetches the row and not the megabytes after it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .layout import read_meta

__all__ = ["MAX_OPEN", "ShardRows"]

#: Shard files kept open at once (the least recently read beyond it are closed): a collection of
#: thousands of shards stays under the process's limit on open files.
MAX_OPEN = 128


def _npy_layout(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """``(offset of the data, shape, dtype)`` of a C-ordered ``.npy`` file, from its header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran or len(shape) != 2 or dtype.hasobject:
        raise ValueError(f"{os.fspath(path)!r} is not a C-ordered 2-d numeric matrix (shape {shape}, dtype {dtype})")
    return offset, shape, dtype


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``, over as many reads as the kernel needs (it returns at most about
    2 GiB a call, a network filesystem less); fewer only at the end of the file."""
    parts, got = [], 0
    while got < size:
        part = os.pread(fd, size - got, offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class ShardRows:
    """The rows of a matrix stored as ``.npy`` shards (in row order), read by global row id.

    Files are opened on first use; at most :data:`MAX_OPEN` stay open, and one is closed only when
    no read is using it. Reads are positional, so threads may share an instance.
    """

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        layouts = [_npy_layout(p) for p in self.paths]
        self.offsets = np.cumsum([0] + [shape[0] for _, shape, _ in layouts])
        dims = {shape[1] for _, shape, _ in layouts}
        if len(dims) > 1:
            raise ValueError(f"the shards' widths differ: {sorted(dims)}")
        self.dim = dims.pop() if dims else 0
        self._layouts = layouts
        self._open: OrderedDict[int, int] = OrderedDict()  # shard -> fd, least recently used first
        self._using: dict[int, int] = {}  # shard -> reads in progress
        self._lock = threading.Lock()

    @classmethod
    def of(cls, directory: str | os.PathLike) -> ShardRows:
        """The rows of a finished collection (the output of :mod:`skclap.embed`)."""
        return cls([Path(directory) / s["npy"] for s in read_meta(directory)["shards"]])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _acquire(self, shard: int) -> int:
        with self._lock:
            fd = self._open.get(shard)
            if fd is None:
                fd = os.open(self.paths[shard], os.O_RDONLY)
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                self._open[shard] = fd
            self._open.move_to_end(shard)
            self._using[shard] = self._using.get(shard, 0) + 1
            for old in [s for s in self._open if not self._using.get(s)][: max(0, len(self._open) - MAX_OPEN)]:
                os.close(self._open.pop(old))
            return fd

    def _release(self, shard: int) -> None:
        with self._lock:
            self._using[shard] -= 1

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 ``(len(rows), dim)``: the given row ids' vectors, in that order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"row ids must lie in [0, {len(self)}); got {rows.min()}..{rows.max()}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        shards = np.searchsorted(self.offsets, ordered, side="right") - 1
        i = 0
        while i < len(ordered):
            # one read for each run of consecutive rows of one shard
            j = i + 1
            while j < len(ordered) and shards[j] == shards[i] and ordered[j] - ordered[j - 1] <= 1:
                j += 1
            s = int(shards[i])
            offset, _, dtype = self._layouts[s]
            width = self.dim * dtype.itemsize
            first, last = int(ordered[i] - self.offsets[s]), int(ordered[j - 1] - self.offsets[s])
            size = (last - first + 1) * width
            fd = self._acquire(s)
            try:
                data = _pread_all(fd, size, offset + first * width)
            finally:
                self._release(s)
            if len(data) < size:
                raise OSError(f"{os.fspath(self.paths[s])!r} is shorter than its header says (truncated?): row {last} cannot be read")
            block = np.frombuffer(data, dtype=dtype).reshape(-1, self.dim)
            out[order[i:j]] = block[ordered[i:j] - ordered[i]]
            i = j
        return out

    def close(self) -> None:
        """Close the files no read is using."""
        with self._lock:
            for shard in [s for s in self._open if not self._using.get(s)]:
                os.close(self._open.pop(shard))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may already be gone
            pass
