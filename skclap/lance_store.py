"""An embedded collection as a LanceDB table, with an IVF-PQ index on disk: search that reads the
index and the candidates from disk instead of holding the vectors in memory, with metadata filters
pushed into the query.

``build_lance_index(DIR)`` (``skclap index DIR --store lance``) writes ``DIR/collection.lance``: one
row per embedded file, in the collection's row order — ``id`` (the row), the Parquet columns
(``path``, the manifest's columns, ``duration``, ``sample_rate``, ``n_windows``) and ``vector`` —
then its IVF-PQ index over inner products. :class:`LanceIndex` answers top-k queries: the index
proposes ``refine`` times ``k`` candidates from ``nprobes`` partitions, their full vectors re-rank
them exactly, and an equality filter on metadata columns is applied before the search (``where``).
LanceDB is embedded (a folder, no server) and Arrow-native; it is an optional dependency
(``pip install 'skclap[lance]'``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NPROBES", "REFINE", "LanceIndex", "build_lance_index", "index_parameters", "where_clause", "write_lance"]

from .layout import LANCE_NAME, META_NAME, read_meta
from .pq_index import index_parameters

_TABLE = "collection"


def _lancedb() -> Any:
    try:
        import lancedb
    except ImportError:
        raise ImportError("a LanceDB store needs lancedb: pip install 'skclap[lance]'") from None
    return lancedb


def _batches(directory: Path, meta: dict) -> Iterator[Any]:
    """The collection's rows, shard by shard, as Arrow record batches (one shard in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = 0
    for shard in meta["shards"]:
        table = pq.read_table(directory / shard["parquet"])
        table = table.drop_columns([c for c in ("embedding",) if c in table.column_names])  # the vectors come from the matrix
        vectors = np.load(directory / shard["npy"])
        dim = vectors.shape[1] if vectors.ndim == 2 else meta["dim"]
        ids = pa.array(np.arange(start, start + table.num_rows, dtype=np.int64))
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
        table = table.add_column(0, "id", ids).append_column("vector", pa.FixedSizeListArray.from_arrays(flat, dim))
        start += table.num_rows
        yield from table.to_batches()


def write_lance(directory: str | os.PathLike) -> Path:
    """Write (or rewrite) ``DIR/collection.lance`` from a finished collection; returns its path."""
    root = Path(directory)
    meta = read_meta(root)
    batches = _batches(root, meta)
    first = next(batches, None)
    if first is None:
        raise ValueError(f"{os.fspath(directory)!r} holds no embeddings")

    def rows() -> Iterator[Any]:
        yield first
        yield from batches

    _lancedb().connect(root).create_table(_TABLE, data=rows(), schema=first.schema, mode="overwrite")
    return root / LANCE_NAME


#: Partitions a search reads, and candidates re-ranked on their full vectors (in multiples of k):
#: benchmarks/vector_stores.py measured these against recall and latency at 10^7 rows.
NPROBES = 32
REFINE = 100


def build_lance_index(directory: str | os.PathLike, partitions: int | None = None, sub_vectors: int | None = None) -> Path:
    """The Lance table of a collection (written first when missing or older than the collection)
    and its IVF-PQ index over inner products; returns the table's path."""
    root = Path(directory)
    meta = read_meta(root)
    table_dir = root / LANCE_NAME
    db = _lancedb().connect(root)
    stale = (
        not table_dir.is_dir()
        or table_dir.stat().st_mtime < (root / META_NAME).stat().st_mtime
        or db.open_table(_TABLE).count_rows() != meta["n_embedded"]
    )
    if stale:
        write_lance(root)
    table = db.open_table(_TABLE)
    auto_p, auto_s = index_parameters(table.count_rows(), int(meta["dim"]))
    from lancedb.index import IvfPq

    config = IvfPq(distance_type="dot", num_partitions=partitions or auto_p, num_sub_vectors=sub_vectors or auto_s)
    table.create_index("vector", config=config, replace=True)
    return table_dir


def _literal(value: Any, kind: Any) -> str:
    """``value`` as an SQL literal of the column's Arrow type (a number typed as text included)."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return str(int(value))
    if pa.types.is_floating(kind):
        return repr(float(value))
    if pa.types.is_boolean(kind):
        return "TRUE" if str(value).lower() in ("true", "1") else "FALSE"
    return "'" + str(value).replace("'", "''") + "'"


def where_clause(filters: Mapping[str, Any], schema: Any) -> str:
    """The SQL of equality filters (``{"genre": "jazz"}``; a list of values is an ``IN``), every
    column checked against the table's ``schema`` and every value a literal of its column's type."""
    columns = [n for n in schema.names if n not in ("id", "vector")]
    parts = []
    for col, value in filters.items():
        if col not in columns:
            raise ValueError(f"filter on {col!r}: not a column of the collection ({sorted(columns)})")
        kind = schema.field(col).type
        name = "`" + col.replace("`", "``") + "`"
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        try:
            literals = [_literal(v, kind) for v in values]
        except ValueError:
            raise ValueError(f"filter on {col!r}: {values} is not of the column's type ({kind})") from None
        parts.append(f"{name} IN ({', '.join(literals)})")
    return " AND ".join(parts)


class LanceIndex:
    """A collection's Lance table, opened once for many queries (``nprobes`` partitions scanned,
    ``refine`` times ``k`` candidates re-ranked by their full vectors)."""

    def __init__(self, directory: str | os.PathLike, nprobes: int = NPROBES, refine: int = REFINE) -> None:
        root = Path(directory)
        if not (root / LANCE_NAME).is_dir():
            raise FileNotFoundError(f"{os.fspath(root)!r} has no {LANCE_NAME}: skclap index {os.fspath(root)} --store lance writes it")
        self.path = root / LANCE_NAME
        self.table = _lancedb().connect(root).open_table(_TABLE)
        self.schema = self.table.schema
        self.nprobes = nprobes
        self.refine = refine

    def __len__(self) -> int:
        return int(self.table.count_rows())

    def topk(self, queries: np.ndarray, k: int, filters: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, row ids)`` of the top ``k`` rows by inner product for each query, best first,
        padded with ``-inf`` / ``-1`` where fewer rows match."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        where = where_clause(filters, self.schema) if filters else None
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for i, q in enumerate(queries):
            search = self.table.search(q, vector_column_name="vector").distance_type("dot").limit(k).nprobes(self.nprobes)
            search = search.refine_factor(self.refine).select(["id", "_distance"])
            if where:
                search = search.where(where, prefilter=True)
            try:
                got = search.to_arrow()
            except (OSError, RuntimeError, ValueError) as err:  # lance raises its own errors as these
                raise OSError(f"the Lance table {os.fspath(self.path)!r} cannot be searched: {err}") from None
            n = got.num_rows
            # lance's "dot" distance is 1 - the inner product; refined, it is the exact product
            scores[i, :n] = 1.0 - got.column("_distance").to_numpy()
            ids[i, :n] = got.column("id").to_numpy()
        return scores, ids
