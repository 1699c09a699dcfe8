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
from pathlib import Path

import numpy as np

__all__ = ["ShardRows"]


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


class ShardRows:
    """The rows of a matrix stored as ``.npy`` shards (in row order), read by global row id.

    Files are opened on first use and kept open; reads are positional, so threads may share it.
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
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _fd(self, shard: int) -> int:
        with self._lock:
            if shard not in self._fds:
                fd = os.open(self.paths[shard], os.O_RDONLY)
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                self._fds[shard] = fd
            return self._fds[shard]

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
            data = os.pread(self._fd(s), size, offset + first * width)
            if len(data) < size:
                raise OSError(f"{os.fspath(self.paths[s])!r} is shorter than its header says (truncated?): row {last} cannot be read")
            block = np.frombuffer(data, dtype=dtype).reshape(-1, self.dim)
            out[order[i:j]] = block[ordered[i:j] - ordered[i]]
            i = j
        return out

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may already be gone
            pass
