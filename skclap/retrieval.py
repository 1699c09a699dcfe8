"""Read and search embedded collections (the output of :mod:`skclap.embed`).

Exact search multiplies the query with each shard's memory-mapped ``.npy`` matrix in blocks and
keeps a running top-k, so memory stays at one block whatever the collection's size. For large
collections (around 10^6 rows and up) :func:`build_index` writes a faiss IVF index
(``index.faiss``): an inverted file over k-means cells with exact inner products inside the probed
cells. faiss is an optional dependency (``pip install faiss-cpu``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .fileio import write_atomic

__all__ = ["EmbeddingMatrix", "build_index", "exact_topk", "read_embeddings", "search"]

INDEX_NAME = "index.faiss"


def _meta(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "embeddings.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{os.fspath(directory)!r} has no embeddings.json: not a finished `skclap embed` output "
            f"(an interrupted run is finished by running the same command again)"
        )
    return json.loads(path.read_text())


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
    meta = _meta(directory)
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
    best first; one block of rows in memory at a time."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    blocks = (
        matrix.blocks(block) if isinstance(matrix, EmbeddingMatrix) else ((a, matrix[a : a + block]) for a in range(0, len(matrix), block))
    )
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start, rows in blocks:
        scores = np.asarray(rows, dtype=np.float32) @ queries.T  # (rows, queries)
        take = min(k, len(scores))
        part = np.argpartition(-scores, take - 1, axis=0)[:take].T  # (queries, take)
        s = np.take_along_axis(scores.T, part, axis=1)
        best_s = np.concatenate([best_s, s], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, keep, axis=1)
            best_i = np.take_along_axis(best_i, keep, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1) if best_s.size else np.zeros_like(best_i)
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


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
    train = np.concatenate([np.asarray(b)[(sample[(sample >= a) & (sample < a + len(b))] - a)] for a, b in matrix.blocks()])
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    for _, block in matrix.blocks():
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    path = Path(directory) / INDEX_NAME
    write_atomic(path, lambda p: faiss.write_index(index, p))
    return path


def _query_vectors(meta: dict, query: Any, like: Any, model: Any, device: Any) -> np.ndarray:
    from .checkpoints import resolve_model
    from .inference import embed_audio, embed_text

    clap = resolve_model(model if model is not None else meta["model"], device)
    if like is not None:
        items = like if isinstance(like, (list, tuple)) else [like]
        vec = embed_audio(clap, items, progress=False, cache=None)
    else:
        texts = query if isinstance(query, (list, tuple)) else [query]
        vec = embed_text(clap, list(texts))
    return vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)


def search(
    directory: str | os.PathLike,
    query: str | list[str] | None = None,
    *,
    like: Any = None,
    k: int = 10,
    model: Any = None,
    index: str = "auto",
    nprobe: int = 128,
    device: Any = "auto",
) -> pd.DataFrame:
    """The ``k`` files most similar to a text ``query`` (or to the audio file(s) ``like``).

    ``model`` defaults to the one the collection was embedded with. ``index``: "exact" (blocked
    matrix products), "faiss" (the IVF index of :func:`build_index`, ``nprobe`` cells searched), or
    "auto" (faiss when an index exists). Returns a table: ``query``, ``rank``, ``score`` (cosine),
    ``path`` and the collection's other columns.
    """
    if (query is None) == (like is None):
        raise ValueError("pass a text query or an audio file to search `like`, not both")
    if index not in ("auto", "exact", "faiss"):
        raise ValueError(f"index must be 'auto', 'exact' or 'faiss'; got {index!r}")
    root = Path(directory)
    meta = _meta(root)
    q = _query_vectors(meta, query, like, model, device)
    use_faiss = index == "faiss" or (index == "auto" and (root / INDEX_NAME).is_file())
    if use_faiss:
        faiss = _faiss()
        ivf = faiss.read_index(str(root / INDEX_NAME))
        ivf.nprobe = nprobe
        scores, ids = ivf.search(np.ascontiguousarray(q, dtype=np.float32), k)
    else:
        scores, ids = exact_topk(read_embeddings(root, matrix=True), q, k)
    return _result_table(root, meta, query if like is None else like, scores, ids)


def _result_table(root: Path, meta: dict, queries: Any, scores: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    import pyarrow.parquet as pq

    names = queries if isinstance(queries, (list, tuple)) else [queries]
    offsets = np.cumsum([0] + [s["rows"] for s in meta["shards"]])
    rows: list[dict] = []
    tables: dict[int, Any] = {}
    for qi, name in enumerate(names):
        for rank, (score, row) in enumerate(zip(scores[qi], ids[qi]), start=1):
            if row < 0:  # faiss pads with -1 when fewer than k rows are found
                continue
            shard = int(np.searchsorted(offsets, row, side="right") - 1)
            if shard not in tables:
                path = root / meta["shards"][shard]["parquet"]
                schema = pq.read_schema(path)
                tables[shard] = pq.read_table(path, columns=[c for c in schema.names if c != "embedding"])
            record = tables[shard].slice(int(row - offsets[shard]), 1).to_pylist()[0]
            rows.append({"query": os.fspath(name), "rank": rank, "score": float(score), **record})
    return pd.DataFrame(rows)
