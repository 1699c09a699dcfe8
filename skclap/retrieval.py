"""Read and search embedded collections (the output of :mod:`skclap.embed`).

Exact search multiplies the query with each shard's memory-mapped ``.npy`` matrix in blocks and
keeps a running top-k, so memory stays at one block whatever the collection's size. For large
collections (around 10^6 rows and up) :func:`build_index` writes a faiss IVF index
(``index.faiss``): an inverted file over k-means cells with exact inner products inside the probed
cells, held in memory. Beyond memory, :mod:`skclap.pq_index` (faiss IVF-PQ, searched from disk) and
:mod:`skclap.lance_store` (a LanceDB table). faiss is an optional dependency (``pip install faiss-cpu``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .fileio import write_atomic
from .layout import INDEXES, LANCE_NAME, PQ_INDEX_NAME, read_meta
from .rows import ShardRows

__all__ = [
    "Collection",
    "EmbeddingMatrix",
    "build_index",
    "collection_encoder",
    "default_store",
    "exact_topk",
    "query_vectors",
    "read_embeddings",
    "search",
]

INDEX_NAME = "index.faiss"


@dataclass
class EmbeddingMatrix:
    """The collection's embeddings as memory-mapped shards; rows in the order of the Parquet rows."""

    shards: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        dim = self.shards[0].shape[1] if self.shards else 0
        return sum(len(s) for s in self.shards), dim

    def __len__(self) -> int:
        return self.shape[0]

    def blocks(self, rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, block)`` pairs of at most ``rows`` rows, read lazily."""
        start = 0
        for shard in self.shards:
            for a in range(0, len(shard), rows):
                yield start + a, shard[a : a + rows]
            start += len(shard)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate(self.shards) if self.shards else np.zeros((0, 0), np.float32)
        return whole if dtype is None else whole.astype(dtype)


def read_embeddings(directory: str | os.PathLike, matrix: bool = False, columns: list[str] | None = None) -> pd.DataFrame | EmbeddingMatrix:
    """An embedded collection as a DataFrame (path, metadata, duration, sample_rate, n_windows,
    embedding), or with ``matrix=True`` as an :class:`EmbeddingMatrix` of memory-mapped shards."""
    meta = read_meta(directory)
    root = Path(directory)
    if matrix:
        return EmbeddingMatrix([np.load(root / s["npy"], mmap_mode="r") for s in meta["shards"]])
    import pyarrow.parquet as pq

    frames = [pq.read_table(root / s["parquet"], columns=columns).to_pandas() for s in meta["shards"]]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "embedding" in frame.columns:
        frame["embedding"] = [np.asarray(v, dtype=np.float32) for v in frame["embedding"]]
    return frame


def exact_topk(matrix: EmbeddingMatrix | np.ndarray, queries: np.ndarray, k: int, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products of each query with the rows: ``(scores, row ids)``, each ``(n_queries, k)``,
    best first (equal scores by row id); one block of rows in memory at a time."""
    import torch

    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    blocks = (
        matrix.blocks(block) if isinstance(matrix, EmbeddingMatrix) else ((a, matrix[a : a + block]) for a in range(0, len(matrix), block))
    )
    q = torch.from_numpy(np.ascontiguousarray(queries))
    best_s = torch.full((len(queries), 0), -torch.inf)
    best_i = torch.zeros((len(queries), 0), dtype=torch.int64)
    for start, rows in blocks:
        # torch reads the memory-mapped block in place (it never writes to it) and its top-k
        # selection is faster than a partition of the whole block
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            r = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        scores = q @ r.T  # (queries, rows)
        s, part = torch.topk(scores, min(k, scores.shape[1]), dim=1, sorted=False)
        best_s, best_i = torch.cat([best_s, s], dim=1), torch.cat([best_i, part + start], dim=1)
        if best_s.shape[1] > k:
            best_s, keep = torch.topk(best_s, k, dim=1, sorted=False)
            best_i = torch.gather(best_i, 1, keep)
    out_s, out_i = best_s.numpy(), best_i.numpy()
    order = np.lexsort((out_i, -out_s), axis=1) if out_s.size else np.zeros_like(out_i)
    return np.take_along_axis(out_s, order, axis=1), np.take_along_axis(out_i, order, axis=1)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ImportError("the approximate index needs faiss: pip install faiss-cpu (exact search works without it)") from None
    return faiss


def build_index(directory: str | os.PathLike, nlist: int | None = None, train_size: int = 65536, seed: int = 0) -> Path:
    """Write ``index.faiss``: a faiss ``IndexIVFFlat`` over inner products (``nlist`` k-means cells,
    default ``4 * sqrt(rows)``, trained on ``train_size`` rows drawn with ``seed``), filled shard by
    shard. Returns its path."""
    faiss = _faiss()
    matrix = read_embeddings(directory, matrix=True)
    n, dim = matrix.shape
    if n == 0:
        raise ValueError(f"{os.fspath(directory)!r} holds no embeddings")
    nlist = int(nlist or max(1, min(n // 39, 4 * int(np.sqrt(n)))))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, max(train_size, 39 * nlist)), replace=False))
    train = ShardRows.of(directory).take(sample)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    for _, block in matrix.blocks():
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    path = Path(directory) / INDEX_NAME
    write_atomic(path, lambda p: faiss.write_index(index, p))
    return path


#: The share of the machine's memory a collection's vectors may take for ``skclap index`` to build
#: the in-memory IVF-Flat index; beyond it, the IVF-PQ index searched from disk.
IN_MEMORY_SHARE = 0.25


def default_store(directory: str | os.PathLike, memory: int | None = None) -> str:
    """The index ``skclap index`` builds unless told: "faiss" (IVF-Flat, every vector in memory)
    while the vectors take at most :data:`IN_MEMORY_SHARE` of ``memory`` (default: this machine's),
    else "faiss-pq" (searched from disk; benchmarks/vector_stores.py measures it at 10^7 rows)."""
    meta = read_meta(directory)
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 1 << 34
    size = int(meta["n_embedded"]) * int(meta["dim"]) * 4
    return "faiss" if size <= IN_MEMORY_SHARE * memory or int(meta["n_embedded"]) < 256 else "faiss-pq"


def query_vectors(encoder: Any, query: Any = None, like: Any = None) -> np.ndarray:
    """L2-normalised query embeddings of an :class:`~skclap.Encoder` (or a model, encoded with the
    default settings): of text ``query`` (a string or a list), or of the audio ``like`` (an item,
    or a list or tuple of items: paths, waveforms, ``(array, rate)`` pairs)."""
    from .encoder import Encoder

    enc = encoder if isinstance(encoder, Encoder) else Encoder(encoder, cache=False)
    if like is not None:
        return enc.audio(like if isinstance(like, (list, tuple)) else [like])
    return enc.text(query if isinstance(query, (list, tuple)) else [query])


def collection_encoder(coll: Collection, model: Any = None, device: Any = "auto") -> Any:
    """The :class:`~skclap.Encoder` that queries ``coll``: its own model (or ``model``), and for
    search by sound the precision its audio was embedded in where the device computes it (else the
    device's default)."""
    from .checkpoints import resolve_model
    from .devices import precision_available
    from .encoder import Encoder, precision_of_label

    clap = resolve_model(model if model is not None else coll.meta["model"], device)
    recorded = precision_of_label(coll.meta.get("settings", {}).get("precision"))
    precision = recorded if recorded is not None and precision_available(recorded, clap.device) else None
    return Encoder(clap, precision=precision, cache=False)


def _metadata_table(root: Path, meta: dict) -> pd.DataFrame:
    """The shards' Parquet columns but the embeddings, one table. Each column is one contiguous
    Arrow array (text as ``large_string``, whose offsets do not overflow past 2 GiB): taking a
    hit's rows from it costs microseconds, where a column of many chunks is first joined whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for shard in meta["shards"]:
        path = root / shard["parquet"]
        table = pq.read_table(path, columns=[c for c in pq.read_schema(path).names if c != "embedding"])
        wide = [pa.field(f.name, pa.large_string()) if pa.types.is_string(f.type) else f for f in table.schema]
        tables.append(table.cast(pa.schema(wide, metadata=table.schema.metadata)))
    if not tables:
        return pd.DataFrame(columns=["path"])
    return pa.concat_tables(tables, promote_options="default").combine_chunks().to_pandas().reset_index(drop=True)


class Collection:
    """An embedded collection opened once for many queries: the embeddings memory-mapped, the
    metadata table (no embeddings) in memory, the faiss index and the per-window embeddings (of
    ``skclap embed --windows``) read when first needed.

    ``index``: "exact", "faiss", "faiss-pq", "lance" or "auto" (the first that exists of
    ``index.faiss``, the IVF-PQ index of :func:`skclap.pq_index.build_pq_index`, the Lance table of
    :func:`skclap.lance_store.build_lance_index`; else exact); ``nprobe``: the faiss cells (default
    128), the IVF-PQ partitions (default :data:`skclap.pq_index.NPROBE`) or the Lance partitions
    (default :data:`skclap.lance_store.NPROBES`) searched.
    """

    def __init__(self, directory: str | os.PathLike, index: str = "auto", nprobe: int | None = None) -> None:
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}; got {index!r}")
        self.root = Path(directory)
        self.meta = read_meta(self.root)
        self.matrix = read_embeddings(self.root, matrix=True)
        assert isinstance(self.matrix, EmbeddingMatrix)
        self.table = _metadata_table(self.root, self.meta)
        self.rows = ShardRows.of(self.root)
        if index == "auto":
            present = [(INDEX_NAME, "faiss"), (PQ_INDEX_NAME, "faiss-pq"), (LANCE_NAME, "lance")]
            index = next((kind for name, kind in present if (self.root / name).exists()), "exact")
        self.index = index  # the store searched: exact, faiss, faiss-pq or lance
        self.use_faiss = index == "faiss"
        self.pq: Any = None
        self.lance: Any = None
        if index == "faiss-pq":
            from .pq_index import PQIndex

            self.pq = PQIndex(self.root, rows=self.rows, **({"nprobe": nprobe} if nprobe else {}))
        if index == "lance":
            from .lance_store import LanceIndex

            self.lance = LanceIndex(self.root, **({"nprobes": nprobe} if nprobe else {}))
        self.nprobe = nprobe or 128
        self._ivf: Any = None
        self._windows: dict[int, pd.DataFrame] = {}
        self._columns: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def has_windows(self) -> bool:
        return bool(self.meta.get("settings", {}).get("windows"))

    def topk(
        self, queries: np.ndarray, k: int, rows: np.ndarray | None = None, filters: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product for each normalised query: ``(scores, row ids)``, best
        first. ``rows`` (row ids) restricts the search to those rows; ``filters`` (``{column:
        value}``, a list of values for any of them) to the rows whose metadata match, inside the
        Lance query or the IVF-PQ scan where the collection has one, else by exact search over the
        matching rows."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if filters and self.lance is not None and rows is None:
            return self.lance.topk(queries, k, filters)
        if filters:
            rows = self.matching(filters) if rows is None else np.intersect1d(rows, self.matching(filters))
        if self.pq is not None:
            from .pq_index import EXACT_BELOW

            if rows is None or len(rows) > EXACT_BELOW:  # too many rows to read whole: they go into the scan
                return self.pq.topk(queries, k, allowed=rows)
        if self.lance is not None and rows is None:
            return self.lance.topk(queries, k)
        if rows is not None:
            sub = self.vectors(rows)
            scores, local = exact_topk(sub, queries, k)
            return scores, np.asarray(rows, dtype=np.int64)[local]
        if self.use_faiss:
            if self._ivf is None:
                self._ivf = _faiss().read_index(str(self.root / INDEX_NAME))
                self._ivf.nprobe = self.nprobe
            return self._ivf.search(np.ascontiguousarray(queries), k)
        return exact_topk(self.matrix, queries, k)

    def column_mask(self, col: str, values: Any) -> np.ndarray:
        """Which rows have one of ``values`` in metadata column ``col``, compared as text (as a
        command line or a URL types them)."""
        if col not in self.table.columns:
            raise ValueError(f"filter on {col!r}: not a column of the collection ({sorted(self.table.columns)})")
        return self.table[col].astype(str).isin([str(v) for v in values]).to_numpy()

    def matching(self, filters: Mapping[str, Any]) -> np.ndarray:
        """The row ids whose metadata equal each filter's value (or one of its values)."""
        mask = np.ones(len(self.table), dtype=bool)
        for col, value in filters.items():
            mask &= self.column_mask(col, value if isinstance(value, (list, tuple, set)) else [value])
        return np.flatnonzero(mask)

    def vectors(self, rows: Any) -> np.ndarray:
        """The embeddings of the given row ids, in that order (read without mapping the shards)."""
        return self.rows.take(rows)

    def segments(self, rows: np.ndarray, queries: np.ndarray) -> list[tuple[float, float] | None]:
        """For each row, the start and end seconds of its window closest to its query (``queries``
        one per row), or None when the collection has no per-window embeddings."""
        if not self.has_windows:
            return [None] * len(rows)
        out: list[tuple[float, float] | None] = []
        for row, q in zip(rows, np.atleast_2d(queries)):
            win = self._window_table(int(self._shard(row)))
            mine = win[win["path"] == self.table["path"].iat[int(row)]]
            if mine.empty:
                out.append(None)
                continue
            best = int(np.argmax(np.stack(mine["embedding"].to_numpy()) @ q))
            out.append((float(mine["start"].iat[best]), float(mine["end"].iat[best])))
        return out

    def _shard(self, rows: Any) -> np.ndarray:
        """The shard that holds each row id."""
        return np.searchsorted(self.rows.offsets, rows, side="right") - 1

    def _window_table(self, shard: int) -> pd.DataFrame:
        if shard not in self._windows:
            import pyarrow.parquet as pq

            name = Path(self.meta["shards"][shard]["parquet"]).name
            frame = pq.read_table(self.root / "windows" / name).to_pandas()
            frame["embedding"] = [np.asarray(v, dtype=np.float32) for v in frame["embedding"]]
            self._windows = {shard: frame}  # one shard's windows at a time: memory stays bounded
        return self._windows[shard]

    def records(self, rows: np.ndarray) -> list[dict]:
        """The metadata of the given row ids (path, the manifest's columns, duration, ...), as
        Python values (NaN as None)."""
        if self._columns is None:
            # the columns' own arrays (Arrow-backed text stays Arrow): taking a few rows copies
            # those rows, not a column of Python objects the size of the collection
            self._columns = {c: self.table[c].array for c in self.table.columns}
        rows = np.asarray(rows, dtype=np.int64)
        taken = {c: values.take(rows) for c, values in self._columns.items()}
        out = []
        for i in range(len(rows)):
            rec = {}
            for c, values in taken.items():
                rec[c] = _plain(values[i])
            out.append(rec)
        return out

    def hits(self, queries: Any, scores: np.ndarray, ids: np.ndarray, q: np.ndarray) -> list[dict]:
        """Search results, one record per (query, hit), best first: ``query``, ``rank``, ``score``,
        ``id``, the row's metadata, and its best window's ``segment_start``/``segment_end``."""
        names = queries if isinstance(queries, (list, tuple)) else [queries]
        out: list[dict] = []
        for qi, name in enumerate(names):
            keep = [(float(s), int(r)) for s, r in zip(scores[qi], ids[qi]) if r >= 0]  # faiss pads with -1
            hits = np.array([r for _, r in keep], dtype=np.int64)
            segments = self.segments(hits, np.repeat(q[qi : qi + 1], len(hits), axis=0))
            for rank, ((score, row), record, seg) in enumerate(zip(keep, self.records(hits), segments), start=1):
                extra = {"segment_start": seg[0], "segment_end": seg[1]} if seg is not None else {}
                out.append({"query": os.fspath(name), "rank": rank, "score": score, "id": row, **record, **extra})
        return out


def _plain(v: Any) -> Any:
    """A metadata value as plain Python: missing (NaN, NA, NaT) as None, numpy scalars as numbers,
    pandas times as datetime / timedelta."""
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if pd.api.types.is_scalar(v) and pd.isna(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, pd.Timedelta):
        return v.to_pytimedelta()
    return v.item() if isinstance(v, np.generic) else v


def search(
    directory: str | os.PathLike | Collection,
    query: str | list[str] | None = None,
    *,
    like: Any = None,
    k: int = 10,
    model: Any = None,
    index: str = "auto",
    nprobe: int | None = None,
    device: Any = "auto",
    exclude_self: bool = False,
    filters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The ``k`` files most similar to a text ``query`` (or to the audio file(s) ``like``).

    ``model`` defaults to the one the collection was embedded with. ``index``: "exact" (blocked
    matrix products), "faiss" (the IVF index of :func:`build_index`, ``nprobe`` cells searched, 128 by default),
    "faiss-pq" (:func:`skclap.pq_index.build_pq_index`), "lance", or "auto" (the index the
    collection has). ``filters``: ``{column: value}`` (a list of values for any of several): only
    rows whose metadata match, pushed into the query on a Lance table or an IVF-PQ index.
    ``exclude_self``: a ``like`` file that is in the collection
    is left out of its own results (it would come first, with score 1). Returns a table: ``query``,
    ``rank``, ``score`` (cosine), ``id`` (the row), ``path`` and the collection's other columns; for a
    collection embedded with ``windows=True``, ``segment_start`` and ``segment_end``: the seconds of
    the file's window closest to the query.
    """
    if (query is None) == (like is None):
        raise ValueError("pass a text query or an audio file to search `like`, not both")
    coll = directory if isinstance(directory, Collection) else Collection(directory, index=index, nprobe=nprobe)
    q = query_vectors(collection_encoder(coll, model, device), query, like)
    if not (exclude_self and like is not None):
        scores, ids = coll.topk(q, k, filters=filters)
        return pd.DataFrame(coll.hits(query if like is None else like, scores, ids, q))
    likes = list(like) if isinstance(like, (list, tuple)) else [like]
    scores, ids = coll.topk(q, min(k + 1, len(coll)), filters=filters)

    def own_row(p: Any) -> int:
        """The row of a file of the collection (-2: not one of its files)."""
        if not isinstance(p, (str, os.PathLike)):
            return -2
        found = np.flatnonzero(coll.column_mask("path", [str(Path(p).expanduser().absolute())]))
        return int(found[0]) if len(found) else -2

    own = [own_row(p) for p in likes]
    keep = [np.flatnonzero(ids[i] != own[i])[:k] for i in range(len(likes))]
    width = min(len(kept) for kept in keep)
    scores = np.stack([scores[i, kept[:width]] for i, kept in enumerate(keep)])
    ids = np.stack([ids[i, kept[:width]] for i, kept in enumerate(keep)])
    return pd.DataFrame(coll.hits(likes if isinstance(like, (list, tuple)) else like, scores, ids, q))
